/**
 * IAM conditions (google.iam.v1 Binding.condition, a google.type.Expr): the subset of CEL that Cloud KMS policies
 * are written in, parsed once when a policy is set and evaluated when a permission is checked. Pure: no I/O, no
 * clock of its own (the caller passes the request time).
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
 * are refused as well. Evaluation cannot fail: every type is checked when the expression is parsed.
 */

/** What a condition is evaluated against. */
export interface ConditionInput {
  /** The full Cloud KMS resource name the permission is checked on, e.g. projects/p/locations/l/keyRings/r. */
  resource: string;
  /** The request time, epoch milliseconds. */
  time: number;
}

export type CompiledCondition = (input: ConditionInput) => boolean;

export class ConditionError extends Error {
  override readonly name = 'ConditionError';
  constructor(
    message: string,
    /** 1-based character position in the expression. */
    readonly position: number,
  ) {
    super(`${message} (at character ${position})`);
  }
}

/** Longest expression accepted, in characters, and deepest nesting (an OpenEKM bound, not Google's). */
export const MAX_EXPRESSION_LENGTH = 12_800;
const MAX_DEPTH = 64;

export const KMS_SERVICE = 'cloudkms.googleapis.com';
export const RESOURCE_TYPES = [
  'KeyRing',
  'CryptoKey',
  'CryptoKeyVersion',
  'EkmConnection',
  'EkmConfig',
  'Location',
].map((t) => `${KMS_SERVICE}/${t}`);

/** The resource.type of a Cloud KMS resource name ('' for a name that is none of them). */
export function resourceTypeOf(name: string): string {
  const s = name.split('/');
  if (s[0] !== 'projects' || s[2] !== 'locations') return '';
  if (s.length === 4) return `${KMS_SERVICE}/Location`;
  if (s.length === 5 && s[4] === 'ekmConfig') return `${KMS_SERVICE}/EkmConfig`;
  if (s.length === 6 && s[4] === 'ekmConnections') return `${KMS_SERVICE}/EkmConnection`;
  if (s[4] !== 'keyRings') return '';
  if (s.length === 6) return `${KMS_SERVICE}/KeyRing`;
  if (s.length === 8 && s[6] === 'cryptoKeys') return `${KMS_SERVICE}/CryptoKey`;
  if (s.length === 10 && s[6] === 'cryptoKeys' && s[8] === 'cryptoKeyVersions')
    return `${KMS_SERVICE}/CryptoKeyVersion`;
  return '';
}

const SUPPORTED =
  'supported: request.time compared with timestamp("…"), resource.name (==, !=, startsWith, endsWith), resource.type, resource.service, &&, ||, !, parentheses, string literals, true and false';

// ---------------------------------------------------------------------------------------------------------------
// Tokens

/** 'bad' holds a refusal, raised when the parser reaches it (so refusals come in reading order). */
type TokenKind = 'ident' | 'string' | 'op' | 'end' | 'bad';
interface Token {
  kind: TokenKind;
  value: string;
  pos: number;
}

const OPERATORS = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '!', '(', ')', '.', ','];
const REFUSED_OPERATORS: Record<string, string> = {
  '?': 'the conditional operator ?: is not supported',
  ':': 'the conditional operator ?: is not supported',
  '[': 'lists and indexing ([…]) are not supported',
  ']': 'lists and indexing ([…]) are not supported',
  '{': 'maps ({…}) are not supported',
  '}': 'maps ({…}) are not supported',
  '+': 'arithmetic (+) is not supported',
  '-': 'arithmetic and negative numbers (-) are not supported',
  '*': 'arithmetic (*) is not supported',
  '/': 'arithmetic (/) is not supported',
  '%': 'arithmetic (%) is not supported',
  '=': 'use == to compare (a single = is not an operator)',
  '&': 'use && for "and"',
  '|': 'use || for "or"',
};
const ESCAPES: Record<string, string> = {
  '\\': '\\',
  '"': '"',
  "'": "'",
  '`': '`',
  '?': '?',
  n: '\n',
  r: '\r',
  t: '\t',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
};

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const pos = i + 1;
    if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j]!)) j++;
      const word = src.slice(i, j);
      if (/^[rRbB]{1,2}$/.test(word) && (src[j] === '"' || src[j] === "'")) {
        throw new ConditionError('raw (r"…") and bytes (b"…") strings are not supported', pos);
      }
      out.push({ kind: 'ident', value: word, pos });
      i = j;
      continue;
    }
    if (c === '"' || c === "'") {
      if (src.startsWith(c.repeat(3), i)) {
        throw new ConditionError('triple-quoted strings are not supported', pos);
      }
      let j = i + 1;
      let value = '';
      for (;;) {
        if (j >= src.length || src[j] === '\n' || src[j] === '\r') {
          throw new ConditionError(`the string starting here has no closing ${c}`, pos);
        }
        const ch = src[j]!;
        if (ch === c) break;
        if (ch !== '\\') {
          value += ch;
          j++;
          continue;
        }
        const e = src[j + 1] ?? '';
        if (Object.hasOwn(ESCAPES, e)) {
          value += ESCAPES[e];
          j += 2;
        } else if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(src.slice(j + 2, j + 6))) {
          value += String.fromCharCode(Number.parseInt(src.slice(j + 2, j + 6), 16));
          j += 6;
        } else if ((e === 'x' || e === 'X') && /^[0-9A-Fa-f]{2}$/.test(src.slice(j + 2, j + 4))) {
          value += String.fromCharCode(Number.parseInt(src.slice(j + 2, j + 4), 16));
          j += 4;
        } else {
          throw new ConditionError(`the escape \\${e} is not supported in a string`, j + 1);
        }
      }
      out.push({ kind: 'string', value, pos });
      i = j + 1;
      continue;
    }
    if (/[0-9]/.test(c)) {
      out.push({
        kind: 'bad',
        value: 'number literals are not supported (compare request.time with timestamp("…"))',
        pos,
      });
      while (i < src.length && /[0-9.eExXa-fA-FuU]/.test(src[i]!)) i++;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op) {
      out.push({ kind: 'op', value: op, pos });
      i += op.length;
      continue;
    }
    const refused = REFUSED_OPERATORS[c];
    out.push({
      kind: 'bad',
      value: refused ?? `the character ${JSON.stringify(c)} is not part of the language`,
      pos,
    });
    i++;
  }
  out.push({ kind: 'end', value: '', pos: src.length + 1 });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Typed expression nodes, compiled to closures

type Type = 'bool' | 'string' | 'timestamp';
type Value = boolean | string | number;
type Attribute = 'request.time' | 'resource.name' | 'resource.type' | 'resource.service';

interface Node {
  type: Type;
  pos: number;
  eval: (input: ConditionInput) => Value;
  /** Set for literals (string, bool, timestamp("…")). */
  literal?: Value;
  /** Set for attributes. */
  attribute?: Attribute;
}

/** A name that is not a value by itself: the roots `request` and `resource`. */
interface Root {
  root: 'request' | 'resource';
  pos: number;
}

const ATTRIBUTES: Record<string, { type: Type; eval: (i: ConditionInput) => Value }> = {
  'request.time': { type: 'timestamp', eval: (i) => i.time },
  'resource.name': { type: 'string', eval: (i) => i.resource },
  'resource.type': { type: 'string', eval: (i) => resourceTypeOf(i.resource) },
  'resource.service': { type: 'string', eval: () => KMS_SERVICE },
};

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Epoch ms (with a fraction for sub-millisecond digits) of an RFC 3339 timestamp, or undefined. */
export function parseTimestamp(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(2000, mo, 0)).getUTCDate() - (mo === 2 && !leap(y) ? 1 : 0);
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) return undefined;
  let offsetMin = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const date = new Date(Date.UTC(2000, mo - 1, d, h, mi, s));
  date.setUTCFullYear(y);
  const fraction = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  return date.getTime() - offsetMin * 60_000 + fraction;
}

function leap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
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

  parse(): Node {
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

  private or(): Node {
    let left = this.and();
    while (this.isOp('||')) {
      const op = this.next();
      const right = this.and();
      const [l, r] = [bool(left, '||'), bool(right, '||')];
      left = { type: 'bool', pos: op.pos, eval: (i) => (l.eval(i) as boolean) || (r.eval(i) as boolean) };
    }
    return left;
  }

  private and(): Node {
    let left = this.relation();
    while (this.isOp('&&')) {
      const op = this.next();
      const right = this.relation();
      const [l, r] = [bool(left, '&&'), bool(right, '&&')];
      left = { type: 'bool', pos: op.pos, eval: (i) => (l.eval(i) as boolean) && (r.eval(i) as boolean) };
    }
    return left;
  }

  private relation(): Node {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.kind === 'ident' && t.value === 'in') {
        throw new ConditionError('the in operator is not supported', t.pos);
      }
      if (t.kind !== 'op' || !['==', '!=', '<', '<=', '>', '>='].includes(t.value)) return left;
      this.next();
      left = compare(left, t, this.unary());
    }
  }

  private unary(): Node {
    const t = this.peek();
    if (t.kind === 'op' && t.value === '!') {
      this.next();
      this.enter(t.pos);
      const operand = bool(this.unary(), '!');
      this.depth--;
      return { type: 'bool', pos: t.pos, eval: (i) => !(operand.eval(i) as boolean) };
    }
    return this.member();
  }

  private member(): Node {
    let value: Node | Root = this.primary();
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

  private field(of: Node | Root, field: Token): Node {
    const path = 'root' in of ? `${of.root}.${field.value}` : undefined;
    if (path === undefined || !Object.hasOwn(ATTRIBUTES, path)) {
      const what = path ?? `the field .${field.value}`;
      throw new ConditionError(
        `${what} is not supported; the attributes are request.time, resource.name, resource.type and resource.service`,
        field.pos,
      );
    }
    const attribute = path as Attribute;
    const a = ATTRIBUTES[attribute]!;
    return { type: a.type, pos: 'root' in of ? of.pos : field.pos, eval: a.eval, attribute };
  }

  private method(of: Node | Root, name: Token): Node {
    const receiver = 'root' in of ? this.field(of, name) : of;
    const label = receiver.attribute ?? (receiver.literal !== undefined ? 'a literal' : `a ${receiver.type}`);
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
    if (receiver.attribute === 'resource.name' && name.value === 'startsWith' && arg.literal !== undefined) {
      checkName(arg.literal as string, arg.pos, true);
    }
    const start = name.value === 'startsWith';
    return {
      type: 'bool',
      pos: receiver.pos,
      eval: start
        ? (i) => (receiver.eval(i) as string).startsWith(arg.eval(i) as string)
        : (i) => (receiver.eval(i) as string).endsWith(arg.eval(i) as string),
    };
  }

  private args(): Node[] {
    const open = this.expect('(', '(');
    this.enter(open.pos);
    const args: Node[] = [];
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

  private primary(): Node | Root {
    const t = this.next();
    if (t.kind === 'string') {
      const s = t.value;
      return { type: 'string', pos: t.pos, literal: s, eval: () => s };
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
        const b = t.value === 'true';
        return { type: 'bool', pos: t.pos, literal: b, eval: () => b };
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
        if (args.length !== 1 || arg?.literal === undefined || arg.type !== 'string') {
          throw new ConditionError(
            'timestamp() takes one string literal, e.g. timestamp("2030-01-01T00:00:00Z")',
            t.pos,
          );
        }
        const ms = parseTimestamp(arg.literal as string);
        if (ms === undefined) {
          throw new ConditionError(
            `timestamp(${JSON.stringify(arg.literal).slice(0, 60)}) is not an RFC 3339 time; write e.g. "2030-01-01T00:00:00Z"`,
            arg.pos,
          );
        }
        return { type: 'timestamp', pos: t.pos, literal: ms, eval: () => ms };
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

function bool(node: Node, op: string): Node {
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

function checkLiteral(attr: Node, lit: Node): void {
  if (lit.literal === undefined || typeof lit.literal !== 'string') return;
  if (attr.attribute === 'resource.type' && !RESOURCE_TYPES.includes(lit.literal)) {
    throw new ConditionError(
      `${JSON.stringify(lit.literal).slice(0, 80)} is not a Cloud KMS resource type; use one of ${RESOURCE_TYPES.join(', ')}`,
      lit.pos,
    );
  }
  if (attr.attribute === 'resource.service' && lit.literal !== KMS_SERVICE) {
    throw new ConditionError(
      `resource.service is always "${KMS_SERVICE}" here; ${JSON.stringify(lit.literal).slice(0, 80)} can never match`,
      lit.pos,
    );
  }
  if (attr.attribute === 'resource.name') checkName(lit.literal, lit.pos, false);
}

function compare(left: Node, op: Token, right: Node): Node {
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
  if (left.attribute) checkLiteral(left, right);
  if (right.attribute) checkLiteral(right, left);
  const l = left.eval;
  const r = right.eval;
  const test: (a: Value, b: Value) => boolean = {
    '==': (a: Value, b: Value) => a === b,
    '!=': (a: Value, b: Value) => a !== b,
    '<': (a: Value, b: Value) => a < b,
    '<=': (a: Value, b: Value) => a <= b,
    '>': (a: Value, b: Value) => a > b,
    '>=': (a: Value, b: Value) => a >= b,
  }[op.value]!;
  return { type: 'bool', pos: left.pos, eval: (i) => test(l(i), r(i)) };
}

/**
 * Parses and type-checks `expression`; the result evaluates it. Throws ConditionError (its message names the
 * construct and where it is) for anything outside the supported subset.
 */
export function compileCondition(expression: string): CompiledCondition {
  if (expression.length > MAX_EXPRESSION_LENGTH) {
    throw new ConditionError(
      `the expression is ${expression.length} characters long; at most ${MAX_EXPRESSION_LENGTH} are allowed`,
      MAX_EXPRESSION_LENGTH + 1,
    );
  }
  const node = new Parser(tokenize(expression)).parse();
  const run = node.eval;
  return (input) => run(input) === true;
}
