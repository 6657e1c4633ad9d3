/**
 * The parser and type checker of IAM conditions (google.iam.v1 Binding.condition, a google.type.Expr): the subset
 * of CEL that Cloud KMS policies are written in, parsed once when a policy is set. The result is a typed tree that
 * evaluate.ts turns into a test.
 *
 * Supported (docs/iam.md, "Conditions"):
 *   request.time  compared (<, <=, >, >=, ==, !=) with timestamp("RFC 3339"), either side
 *   resource.name == / != "…", resource.name.startsWith("…"), resource.name.endsWith("…")
 *   resource.type == / != "cloudkms.googleapis.com/KeyRing" (CryptoKey, CryptoKeyVersion, EkmConnection, …)
 *   resource.service == / != "cloudkms.googleapis.com"
 *   &&, ||, !, parentheses, string literals ('…' or "…"), true, false
 *
 * Everything else (other attributes, other functions such as request.time.getHours(), numbers, lists, the
 * conditional operator…) is refused with a ConditionError that names the construct and its position, so that no
 * stored condition silently grants nothing or everything. Comparisons whose answer is fixed by a literal that no
 * Cloud KMS resource can have (resource.type == "storage.googleapis.com/Bucket", resource.name == "keyRings/r")
 * are refused as well. Every type is checked here, so evaluation cannot fail.
 */
import { parseTimestamp, timestampMillis } from '../../time.js';
import { ConditionError } from './error.js';
import { type Token, tokenize } from './lexer.js';

/** Longest expression accepted, in characters, and deepest nesting (an OpenEKM bound, not Google's). */
export const MAX_EXPRESSION_LENGTH = 12_800;
const MAX_DEPTH = 64;

export const KMS_SERVICE = 'cloudkms.googleapis.com';
const RESOURCE_TYPES = [
  'KeyRing',
  'CryptoKey',
  'CryptoKeyVersion',
  'EkmConnection',
  'EkmConfig',
  'Location',
].map((t) => `${KMS_SERVICE}/${t}`);

const SUPPORTED =
  'supported: request.time compared with timestamp("…"), resource.name (==, !=, startsWith, endsWith), resource.type, resource.service, &&, ||, !, parentheses, string literals, true and false';

type Type = 'bool' | 'string' | 'timestamp';
/** A value at evaluation: a timestamp is epoch milliseconds (with a fraction for sub-millisecond digits). */
export type Value = boolean | string | number;
export type Attribute = 'request.time' | 'resource.name' | 'resource.type' | 'resource.service';
export type ComparisonOperator = '==' | '!=' | '<' | '<=' | '>' | '>=';

const COMPARISONS: readonly string[] = ['==', '!=', '<', '<=', '>', '>='];

const ATTRIBUTE_TYPES: Record<Attribute, Type> = {
  'request.time': 'timestamp',
  'resource.name': 'string',
  'resource.type': 'string',
  'resource.service': 'string',
};

/** A type-checked expression; `pos` is the 1-based character position messages point at. */
export type Expr = { type: Type; pos: number } & (
  | { kind: 'literal'; value: Value }
  | { kind: 'attribute'; attribute: Attribute }
  | { kind: 'not'; operand: Expr }
  | { kind: 'and' | 'or'; left: Expr; right: Expr }
  | { kind: 'compare'; op: ComparisonOperator; left: Expr; right: Expr }
  | { kind: 'call'; method: 'startsWith' | 'endsWith'; receiver: Expr; arg: Expr }
);

/** A name that is not a value by itself: the roots `request` and `resource`. */
interface Root {
  root: 'request' | 'resource';
  pos: number;
}

/**
 * Parses and type-checks `expression` into a tree whose type is bool. Throws ConditionError (its message names the
 * construct and where it is) for anything outside the supported subset.
 */
export function parseCondition(expression: string): Expr {
  if (expression.length > MAX_EXPRESSION_LENGTH) {
    throw new ConditionError(
      `the expression is ${expression.length} characters long; at most ${MAX_EXPRESSION_LENGTH} are allowed`,
      MAX_EXPRESSION_LENGTH + 1,
    );
  }
  return new Parser(tokenize(expression)).parse();
}

function literalOf(e: Expr): Value | undefined {
  return e.kind === 'literal' ? e.value : undefined;
}

function attributeOf(e: Expr): Attribute | undefined {
  return e.kind === 'attribute' ? e.attribute : undefined;
}

class Parser {
  private i = 0;
  private depth = 0;

  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    const t = this.tokens[this.i]!;
    if (t.kind === 'bad') throw new ConditionError(t.value, t.pos);
    return t;
  }

  private next(): Token {
    const t = this.peek();
    this.i++;
    return t;
  }

  private isOp(value: string): boolean {
    const t = this.peek();
    return t.kind === 'op' && t.value === value;
  }

  private expect(value: string, what: string): Token {
    const t = this.peek();
    if (t.kind !== 'op' || t.value !== value)
      throw new ConditionError(`expected ${what}, found ${show(t)}`, t.pos);
    return this.next();
  }

  parse(): Expr {
    const node = this.or();
    const t = this.peek();
    if (t.kind !== 'end') throw new ConditionError(`expected && or || or the end, found ${show(t)}`, t.pos);
    if (node.type !== 'bool') {
      throw new ConditionError(`the condition must be true or false, but this is a ${node.type}`, node.pos);
    }
    return node;
  }

  private enter(pos: number): void {
    if (++this.depth > MAX_DEPTH) throw new ConditionError(`nesting is deeper than ${MAX_DEPTH}`, pos);
  }

  private or(): Expr {
    let left = this.and();
    while (this.isOp('||')) {
      const op = this.next();
      const right = this.and();
      left = { kind: 'or', type: 'bool', pos: op.pos, left: bool(left, '||'), right: bool(right, '||') };
    }
    return left;
  }

  private and(): Expr {
    let left = this.relation();
    while (this.isOp('&&')) {
      const op = this.next();
      const right = this.relation();
      left = { kind: 'and', type: 'bool', pos: op.pos, left: bool(left, '&&'), right: bool(right, '&&') };
    }
    return left;
  }

  private relation(): Expr {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.kind === 'ident' && t.value === 'in') {
        throw new ConditionError('the in operator is not supported', t.pos);
      }
      if (t.kind !== 'op' || !COMPARISONS.includes(t.value)) return left;
      this.next();
      left = compare(left, t, this.unary());
    }
  }

  private unary(): Expr {
    const t = this.peek();
    if (t.kind === 'op' && t.value === '!') {
      this.next();
      this.enter(t.pos);
      const operand = bool(this.unary(), '!');
      this.depth--;
      return { kind: 'not', type: 'bool', pos: t.pos, operand };
    }
    return this.member();
  }

  private member(): Expr {
    let value: Expr | Root = this.primary();
    while (this.isOp('.')) {
      this.next();
      const field = this.next();
      if (field.kind !== 'ident') {
        throw new ConditionError(
          `expected a field or function name after ".", found ${show(field)}`,
          field.pos,
        );
      }
      if (this.isOp('(')) {
        value = this.method(value, field);
      } else {
        value = this.field(value, field);
      }
    }
    if ('root' in value) {
      throw new ConditionError(
        value.root === 'request'
          ? 'request by itself is not a value; use request.time'
          : 'resource by itself is not a value; use resource.name, resource.type or resource.service',
        value.pos,
      );
    }
    return value;
  }

  private field(of: Expr | Root, field: Token): Expr {
    const path = 'root' in of ? `${of.root}.${field.value}` : undefined;
    if (path === undefined || !Object.hasOwn(ATTRIBUTE_TYPES, path)) {
      const what = path ?? `the field .${field.value}`;
      throw new ConditionError(
        `${what} is not supported; the attributes are request.time, resource.name, resource.type and resource.service`,
        field.pos,
      );
    }
    const attribute = path as Attribute;
    return {
      kind: 'attribute',
      type: ATTRIBUTE_TYPES[attribute],
      pos: 'root' in of ? of.pos : field.pos,
      attribute,
    };
  }

  private method(of: Expr | Root, name: Token): Expr {
    const receiver = 'root' in of ? this.field(of, name) : of;
    const label =
      attributeOf(receiver) ?? (literalOf(receiver) !== undefined ? 'a literal' : `a ${receiver.type}`);
    const args = this.args();
    if (receiver.type !== 'string' || (name.value !== 'startsWith' && name.value !== 'endsWith')) {
      throw new ConditionError(
        receiver.type === 'timestamp'
          ? `${label}.${name.value}() is not supported: compare request.time with timestamp("…") instead`
          : `${label}.${name.value}() is not supported; ${SUPPORTED}`,
        name.pos,
      );
    }
    if (args.length !== 1 || args[0]!.type !== 'string') {
      throw new ConditionError(`${name.value}() takes one string`, name.pos);
    }
    const arg = args[0]!;
    const literal = literalOf(arg);
    if (attributeOf(receiver) === 'resource.name' && name.value === 'startsWith' && literal !== undefined) {
      checkName(literal as string, arg.pos, true);
    }
    return { kind: 'call', type: 'bool', pos: receiver.pos, method: name.value, receiver, arg };
  }

  private args(): Expr[] {
    const open = this.expect('(', '(');
    this.enter(open.pos);
    const args: Expr[] = [];
    if (!this.isOp(')')) {
      for (;;) {
        args.push(this.or());
        if (!this.isOp(',')) break;
        this.next();
      }
    }
    this.expect(')', ') to close the call');
    this.depth--;
    return args;
  }

  private primary(): Expr | Root {
    const t = this.next();
    if (t.kind === 'string') {
      return { kind: 'literal', type: 'string', pos: t.pos, value: t.value };
    }
    if (t.kind === 'op' && t.value === '(') {
      this.enter(t.pos);
      const inner = this.or();
      this.expect(')', ') to close the parenthesis');
      this.depth--;
      return inner;
    }
    if (t.kind === 'ident') {
      if (t.value === 'true' || t.value === 'false') {
        return { kind: 'literal', type: 'bool', pos: t.pos, value: t.value === 'true' };
      }
      if (t.value === 'request' || t.value === 'resource') {
        if (this.isOp('(')) throw new ConditionError(`${t.value} is not a function`, t.pos);
        return { root: t.value, pos: t.pos };
      }
      if (this.isOp('(')) {
        if (t.value !== 'timestamp') {
          throw new ConditionError(`the function ${t.value}() is not supported; ${SUPPORTED}`, t.pos);
        }
        const args = this.args();
        const arg = args[0];
        const literal = arg === undefined ? undefined : literalOf(arg);
        if (args.length !== 1 || literal === undefined || arg?.type !== 'string') {
          throw new ConditionError(
            'timestamp() takes one string literal, e.g. timestamp("2030-01-01T00:00:00Z")',
            t.pos,
          );
        }
        const time = parseTimestamp(literal as string);
        if (time === undefined) {
          throw new ConditionError(
            `timestamp(${JSON.stringify(literal).slice(0, 60)}) is not an RFC 3339 time; write e.g. "2030-01-01T00:00:00Z"`,
            arg.pos,
          );
        }
        return { kind: 'literal', type: 'timestamp', pos: t.pos, value: timestampMillis(time) };
      }
      throw new ConditionError(
        `unknown name ${t.value}; the attributes are request.time, resource.name, resource.type and resource.service`,
        t.pos,
      );
    }
    throw new ConditionError(`expected a value, found ${show(t)}`, t.pos);
  }
}

function show(t: Token): string {
  if (t.kind === 'end') return 'the end of the expression';
  if (t.kind === 'string') return `the string ${JSON.stringify(t.value).slice(0, 40)}`;
  return `"${t.value}"`;
}

function bool(node: Expr, op: string): Expr {
  if (node.type !== 'bool') {
    throw new ConditionError(`${op} needs true/false operands, but this is a ${node.type}`, node.pos);
  }
  return node;
}

/** resource.name literals must be Cloud KMS names ("projects/…"), or the comparison could never hold. */
function checkName(literal: string, pos: number, prefix: boolean): void {
  const ok = prefix
    ? literal.startsWith('projects/') || 'projects/'.startsWith(literal)
    : literal.startsWith('projects/');
  if (!ok) {
    throw new ConditionError(
      `resource.name is a Cloud KMS resource name like "projects/p/locations/l/keyRings/r/cryptoKeys/k"; ${JSON.stringify(literal).slice(0, 80)} can never match`,
      pos,
    );
  }
}

function checkLiteral(attribute: Attribute, lit: Expr): void {
  const literal = literalOf(lit);
  if (literal === undefined || typeof literal !== 'string') return;
  if (attribute === 'resource.type' && !RESOURCE_TYPES.includes(literal)) {
    throw new ConditionError(
      `${JSON.stringify(literal).slice(0, 80)} is not a Cloud KMS resource type; use one of ${RESOURCE_TYPES.join(', ')}`,
      lit.pos,
    );
  }
  if (attribute === 'resource.service' && literal !== KMS_SERVICE) {
    throw new ConditionError(
      `resource.service is always "${KMS_SERVICE}" here; ${JSON.stringify(literal).slice(0, 80)} can never match`,
      lit.pos,
    );
  }
  if (attribute === 'resource.name') checkName(literal, lit.pos, false);
}

function compare(left: Expr, op: Token, right: Expr): Expr {
  if (left.type !== right.type) {
    throw new ConditionError(`${op.value} compares a ${left.type} with a ${right.type}`, op.pos);
  }
  const ordered = op.value !== '==' && op.value !== '!=';
  if (ordered && left.type !== 'timestamp') {
    throw new ConditionError(
      `${op.value} compares timestamps only (request.time with timestamp("…"))`,
      op.pos,
    );
  }
  const leftAttribute = attributeOf(left);
  const rightAttribute = attributeOf(right);
  if (leftAttribute) checkLiteral(leftAttribute, right);
  if (rightAttribute) checkLiteral(rightAttribute, left);
  return { kind: 'compare', type: 'bool', pos: left.pos, op: op.value as ComparisonOperator, left, right };
}
