/**
 * The `filter` of the Cloud KMS REST v1 list methods (keyRings, cryptoKeys, cryptoKeyVersions, ekmConnections),
 * in the AIP-160 style. A filter is parsed once by `compileFilter` (a hand-written tokenizer and a
 * recursive-descent parser build an AST) and the result is a predicate over resources in the API's own JSON
 * shape: lowerCamelCase fields, enums as NAME strings, timestamps as RFC 3339 strings, labels as a map.
 *
 * Grammar (EBNF; keywords are upper-case, as in AIP-160):
 *
 *   filter      = [ expression ] ;
 *   expression  = sequence { "AND" sequence } ;
 *   sequence    = factor { factor } ;                 juxtaposition means AND
 *   factor      = term { "OR" term } ;                OR binds tighter than AND: a AND b OR c = a AND (b OR c)
 *   term        = ( "NOT" | "-" ) term | simple ;
 *   simple      = restriction | "(" expression ")" ;
 *   restriction = field comparator value ;
 *   field       = name { "." name } ;                 name: letters, digits, "_" and "-"
 *   comparator  = "=" | "!=" | "<" | "<=" | ">" | ">=" | ":" ;
 *   value       = word | string ;                     AND, OR and NOT are values only when quoted
 *   string      = '"' { character | "\" character } '"' ;   \" \\ \n \t \r; \* is a literal asterisk
 *
 * A word is a run of characters other than white space, parentheses, double quotes and the operator characters
 * = ! < > :. A value word may contain ":" after its first character, so `createTime>2024-01-01T00:00:00Z` works
 * unquoted. "-" starts a negation only where a term starts; in a value (`labels.n=-1`) it is a character.
 *
 * Meaning:
 * - The field is looked up by its dotted path (`primary.state`, `labels.team`); a path that passes through an
 *   array looks in every element. A field that is absent (or null) makes every comparison false and `!=` true.
 * - When the field holds an array, a comparison is true when any element satisfies it.
 * - `=` is exact and case-sensitive, except that a `*` in the value (quoted or not) is a wildcard matching any
 *   run of characters (`name=*ring-1*`). `!=` is exactly NOT `=`.
 * - `:` (has): on a string, a case-insensitive substring match (wildcards allowed); on a map or object, the key
 *   exists (`labels:team`); on numbers and booleans, equality. `field:*` means present and non-empty.
 * - When both sides parse as RFC 3339 timestamps they compare as instants (to the nanosecond, offsets applied);
 *   when both are durations ("86400s") they compare as durations; `<`, `<=`, `>`, `>=` compare numbers as
 *   numbers (also decimal strings such as int64 fields) and other strings by code unit.
 * - Booleans compare with `true`/`false` in any case; numbers with numeric values. Enum fields compare with the
 *   enum NAME as stored (`state=ENABLED`).
 *
 * Every syntax error is an RpcError INVALID_ARGUMENT on the field `filter` whose message gives the 1-based
 * character position, what was wrong and what to do. Filters are limited in length and nesting depth, and
 * wildcards are matched without regular expressions, so no input can make parsing or matching slow.
 */
import { RpcError } from '../errors.js';

export type Resource = Record<string, unknown>;
export type Predicate = (resource: Resource) => boolean;

/** The longest filter accepted, in UTF-16 code units (characters for all practical filters). */
const MAX_FILTER_LENGTH = 2000;
/** The deepest nesting accepted; each "(" and each NOT or "-" is one level. */
const MAX_DEPTH = 32;

const EXAMPLE = 'Filters look like: labels.team=alpha AND state=ENABLED';

type Comparator = '=' | '!=' | '<' | '<=' | '>' | '>=' | ':';
const COMPARATORS: ReadonlySet<string> = new Set(['=', '!=', '<', '<=', '>', '>=', ':']);
const OPERATOR_CHARS: ReadonlySet<string> = new Set(['=', '!', '<', '>', ':']);
const FIELD_NAME = /^[\p{L}\p{N}_-]+$/u;

type TokenKind = 'word' | 'string' | 'op' | 'lparen' | 'rparen' | 'and' | 'or' | 'not' | 'minus' | 'end';

interface Token {
  kind: TokenKind;
  /** The source text, for messages. */
  text: string;
  /** For words and strings: the value with escapes resolved, split at wildcards (one part: no wildcard). */
  parts: string[];
  /** Where the token starts in the filter (UTF-16 index). */
  index: number;
}

interface Literal {
  /** The value with escapes resolved (used when there is no wildcard). */
  text: string;
  /** The value split at wildcards; one part means no wildcard. */
  parts: string[];
}

type Node =
  | { kind: 'and'; children: Node[] }
  | { kind: 'or'; children: Node[] }
  | { kind: 'not'; child: Node }
  | { kind: 'compare'; path: string[]; op: Comparator; value: Literal };

type Fail = (index: number, what: string, hint?: string) => never;

/** Parses the filter once; throws RpcError.invalidArgument(message, 'filter') on a syntax error. Empty/blank filter matches everything. */
export function compileFilter(filter: string | undefined): Predicate {
  if (filter === undefined) return matchAll;
  if (typeof filter !== 'string') {
    throw RpcError.invalidArgument(
      'Invalid filter: expected one string. Send the filter parameter once.',
      'filter',
    );
  }
  const fail: Fail = (index, what, hint = EXAMPLE) => {
    throw RpcError.invalidArgument(
      `Invalid filter at position ${position(filter, index)}: ${what}. ${hint}`,
      'filter',
    );
  };
  if (filter.length > MAX_FILTER_LENGTH) {
    fail(
      MAX_FILTER_LENGTH,
      `the filter is ${filter.length} characters long, more than the maximum of ${MAX_FILTER_LENGTH}`,
      'Shorten it, for example by splitting one list call into several with simpler filters.',
    );
  }
  const tokens = tokenize(filter, fail);
  if (tokens.length === 1) return matchAll; // only the end token: a blank filter
  return toPredicate(new Parser(tokens, filter, fail).parse());
}

function matchAll(): boolean {
  return true;
}

/** The 1-based position of a UTF-16 index, counted in Unicode code points as a person would count. */
function position(filter: string, index: number): number {
  let count = 1;
  for (const _ of filter.slice(0, index)) count++;
  return count;
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v';
}

function isWordChar(ch: string): boolean {
  return !isSpace(ch) && ch !== '(' && ch !== ')' && ch !== '"' && !OPERATOR_CHARS.has(ch);
}

function tokenize(filter: string, fail: Fail): Token[] {
  const tokens: Token[] = [];
  const afterComparator = (): boolean => tokens.at(-1)?.kind === 'op';
  let i = 0;
  while (i < filter.length) {
    const ch = filter[i]!;
    const start = i;
    if (isSpace(ch)) {
      i++;
    } else if (ch === '(' || ch === ')') {
      tokens.push({ kind: ch === '(' ? 'lparen' : 'rparen', text: ch, parts: [], index: start });
      i++;
    } else if (OPERATOR_CHARS.has(ch)) {
      const two = filter.slice(i, i + 2);
      const text = two === '!=' || two === '<=' || two === '>=' ? two : ch;
      if (text === '!') {
        fail(
          start,
          'unexpected "!"',
          'Use != for "not equal", or NOT or - to negate a condition, e.g. NOT state=DISABLED.',
        );
      }
      tokens.push({ kind: 'op', text, parts: [], index: start });
      i += text.length;
    } else if (ch === '"') {
      i = readString(filter, start, tokens, fail);
    } else if (ch === '-' && !afterComparator()) {
      tokens.push({ kind: 'minus', text: '-', parts: [], index: start });
      i++;
    } else {
      const inValue = afterComparator();
      i++;
      while (i < filter.length && (isWordChar(filter[i]!) || (inValue && filter[i] === ':'))) i++;
      const text = filter.slice(start, i);
      const kind = text === 'AND' ? 'and' : text === 'OR' ? 'or' : text === 'NOT' ? 'not' : 'word';
      tokens.push({ kind, text, parts: text.split('*'), index: start });
    }
  }
  tokens.push({ kind: 'end', text: '', parts: [], index: filter.length });
  return tokens;
}

/** Reads the quoted string starting at `start`, pushes its token and returns the index after it. */
function readString(filter: string, start: number, tokens: Token[], fail: Fail): number {
  const parts: string[] = [];
  let current = '';
  let i = start + 1;
  for (;;) {
    if (i >= filter.length) {
      fail(
        start,
        'the quoted string that starts here is not closed',
        'End it with a double quote ("); write \\" for a double quote inside it.',
      );
    }
    const c = filter[i]!;
    if (c === '"') break;
    if (c === '\\' && i + 1 < filter.length) {
      const escaped = filter[i + 1]!;
      current += escaped === 'n' ? '\n' : escaped === 't' ? '\t' : escaped === 'r' ? '\r' : escaped;
      i += 2;
    } else if (c === '\\') {
      i++; // a backslash at the very end: the string is not closed, reported above
    } else if (c === '*') {
      parts.push(current);
      current = '';
      i++;
    } else {
      current += c;
      i++;
    }
  }
  parts.push(current);
  tokens.push({ kind: 'string', text: filter.slice(start, i + 1), parts, index: start });
  return i + 1;
}

// ---------------------------------------------------------------------------------------------------------
// Parser

function describe(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'the end of the filter';
    case 'string':
      return `the quoted string ${token.text}`;
    case 'and':
    case 'or':
    case 'not':
      return token.text;
    default:
      return `"${token.text}"`;
  }
}

function startsTerm(token: Token): boolean {
  return (
    token.kind === 'word' ||
    token.kind === 'string' ||
    token.kind === 'lparen' ||
    token.kind === 'not' ||
    token.kind === 'minus'
  );
}

function isComparator(text: string): text is Comparator {
  return COMPARATORS.has(text);
}

class Parser {
  private next = 0;

  constructor(
    private readonly tokens: readonly Token[],
    private readonly filter: string,
    private readonly fail: Fail,
  ) {}

  parse(): Node {
    const node = this.expression(0);
    const token = this.peek();
    if (token.kind === 'rparen') {
      this.fail(token.index, 'unexpected ")" without a matching "("', 'Remove it or add the missing "(".');
    }
    if (token.kind !== 'end') {
      this.fail(
        token.index,
        `unexpected ${describe(token)}`,
        'Each condition is a field, an operator and a value, e.g. state=ENABLED; quote values that contain ' +
          'operators or spaces, e.g. labels.note="a=b".',
      );
    }
    return node;
  }

  private peek(): Token {
    return this.tokens[this.next]!;
  }

  private take(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.next++;
    return token;
  }

  private expression(depth: number): Node {
    const children = [this.sequence(depth)];
    while (this.peek().kind === 'and') {
      this.expectTermAfter(this.take());
      children.push(this.sequence(depth));
    }
    return children.length === 1 ? children[0]! : { kind: 'and', children };
  }

  private sequence(depth: number): Node {
    const children = [this.factor(depth)];
    while (startsTerm(this.peek())) children.push(this.factor(depth));
    return children.length === 1 ? children[0]! : { kind: 'and', children };
  }

  private factor(depth: number): Node {
    const children = [this.term(depth)];
    while (this.peek().kind === 'or') {
      this.expectTermAfter(this.take());
      children.push(this.term(depth));
    }
    return children.length === 1 ? children[0]! : { kind: 'or', children };
  }

  private term(depth: number): Node {
    const token = this.peek();
    if (token.kind === 'not' || token.kind === 'minus') {
      this.take();
      this.checkDepth(token, depth);
      this.expectTermAfter(token);
      return { kind: 'not', child: this.term(depth + 1) };
    }
    if (token.kind === 'lparen') {
      this.take();
      this.checkDepth(token, depth);
      if (this.peek().kind === 'rparen') {
        this.fail(
          this.peek().index,
          'empty parentheses',
          'Put a condition inside them, e.g. (state=ENABLED OR state=DISABLED).',
        );
      }
      const inner = this.expression(depth + 1);
      const close = this.peek();
      if (close.kind !== 'rparen') {
        this.fail(
          close.index,
          `expected ")" to close the "(" at position ${position(this.filter, token.index)}, found ${describe(close)}`,
          'Add the missing ")".',
        );
      }
      this.take();
      return inner;
    }
    return this.restriction();
  }

  private restriction(): Node {
    const field = this.peek();
    if (field.kind === 'string') {
      this.fail(
        field.index,
        `expected a field name, found ${describe(field)}`,
        'Field names are not quoted, only values are, e.g. labels.team="alpha beta".',
      );
    }
    if (field.kind === 'op') {
      this.fail(field.index, `expected a field name before "${field.text}"`, EXAMPLE);
    }
    if (field.kind !== 'word') {
      this.fail(field.index, `expected a condition, found ${describe(field)}`, EXAMPLE);
    }
    this.take();
    const path = field.text.split('.');
    if (!path.every((name) => FIELD_NAME.test(name))) {
      this.fail(
        field.index,
        `"${field.text}" is not a valid field name`,
        'Field names are letters, digits, "_" and "-", with "." between sub-fields, e.g. primary.state or ' +
          'labels.team; combine conditions with AND, OR and NOT.',
      );
    }

    const op = this.peek();
    if (op.kind !== 'op' || !isComparator(op.text)) {
      const upper = field.text.toUpperCase();
      if (upper === 'AND' || upper === 'OR' || upper === 'NOT') {
        this.fail(
          field.index,
          `"${field.text}" was read as a field name, because keywords are upper-case`,
          `Write ${upper} in capitals.`,
        );
      }
      this.fail(
        op.index,
        `expected an operator (=, !=, <, <=, >, >=, :) after "${field.text}", found ${describe(op)}`,
        'Compare the field with a value, e.g. state=ENABLED or labels.team:*; a bare word that searches ' +
          'all fields is not supported.',
      );
    }
    this.take();

    const value = this.peek();
    if (value.kind !== 'word' && value.kind !== 'string') {
      const keyword = value.kind === 'and' || value.kind === 'or' || value.kind === 'not';
      this.fail(
        value.index,
        `expected a value after "${op.text}", found ${describe(value)}`,
        keyword
          ? `To match the word ${value.text} itself, quote it: ${field.text}${op.text}"${value.text}".`
          : EXAMPLE,
      );
    }
    this.take();
    if (value.parts.length > 1 && op.text !== '=' && op.text !== '!=' && op.text !== ':') {
      this.fail(
        value.index,
        `the wildcard "*" cannot be used with "${op.text}"`,
        'Wildcards work with =, != and :; to compare with a literal *, quote and escape it: "\\*".',
      );
    }
    return { kind: 'compare', path, op: op.text, value: { text: value.parts.join('*'), parts: value.parts } };
  }

  private expectTermAfter(token: Token): void {
    const next = this.peek();
    if (!startsTerm(next)) {
      this.fail(
        next.index,
        `expected a condition after ${describe(token)}, found ${describe(next)}`,
        EXAMPLE,
      );
    }
  }

  private checkDepth(token: Token, depth: number): void {
    if (depth >= MAX_DEPTH) {
      this.fail(
        token.index,
        `the filter nests parentheses and negations more than ${MAX_DEPTH} levels deep`,
        'Simplify the filter.',
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Evaluator

function toPredicate(node: Node): Predicate {
  switch (node.kind) {
    case 'and': {
      const children = node.children.map(toPredicate);
      return (resource) => children.every((child) => child(resource));
    }
    case 'or': {
      const children = node.children.map(toPredicate);
      return (resource) => children.some((child) => child(resource));
    }
    case 'not': {
      const child = toPredicate(node.child);
      return (resource) => !child(resource);
    }
    case 'compare':
      return comparison(node.path, node.op, node.value);
  }
}

type Test = (value: unknown) => boolean;

function comparison(path: string[], op: Comparator, literal: Literal): Predicate {
  if (op === '!=') {
    const equal = comparison(path, '=', literal);
    return (resource) => !equal(resource);
  }
  const test = op === ':' ? hasTest(literal) : op === '=' ? equalTest(literal) : orderTest(op, literal);
  return (resource) => resolve(resource, path).some(test);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every value at the path; a path through an array looks in each element. Only own properties count. */
function resolve(resource: Resource, path: string[]): unknown[] {
  let current: unknown[] = [resource];
  for (const name of path) {
    const next: unknown[] = [];
    for (const value of current) collect(value, name, next);
    if (next.length === 0) return next;
    current = next;
  }
  return current;
}

function collect(value: unknown, name: string, into: unknown[]): void {
  if (Array.isArray(value)) {
    for (const element of value) collect(element, name, into);
  } else if (isObject(value) && Object.hasOwn(value, name)) {
    const found = value[name];
    if (found !== undefined && found !== null) into.push(found);
  }
}

function isPresent(value: unknown): boolean {
  if (typeof value === 'string' || Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return value !== undefined && value !== null;
}

function hasTest(literal: Literal): Test {
  if (literal.parts.length > 1 && literal.parts.every((part) => part === '')) return isPresent;
  const lowerParts = literal.parts.map((part) => part.toLowerCase());
  const test: Test = (value) => {
    if (Array.isArray(value)) return value.some(test);
    if (isObject(value)) {
      return literal.parts.length === 1
        ? Object.hasOwn(value, literal.text)
        : Object.keys(value).some((key) => globMatch(key, literal.parts));
    }
    if (typeof value === 'string') return containsInOrder(value.toLowerCase(), lowerParts);
    return compareScalar(value, literal.text, false) === 0;
  };
  return test;
}

function equalTest(literal: Literal): Test {
  const test: Test = (value) => {
    if (Array.isArray(value)) return value.some(test);
    if (literal.parts.length > 1) {
      const scalar = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
      return scalar && globMatch(String(value), literal.parts);
    }
    return compareScalar(value, literal.text, false) === 0;
  };
  return test;
}

function orderTest(op: '<' | '<=' | '>' | '>=', literal: Literal): Test {
  const test: Test = (value) => {
    if (Array.isArray(value)) return value.some(test);
    const order = compareScalar(value, literal.text, true);
    if (order === undefined) return false;
    if (op === '<') return order < 0;
    if (op === '<=') return order <= 0;
    if (op === '>') return order > 0;
    return order >= 0;
  };
  return test;
}

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function order(a: string | number | bigint, b: string | number | bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The order of a field value against a literal: negative, zero or positive, or undefined when they cannot be
 * compared. Times and durations compare as such; numbers numerically; decimal strings numerically when
 * `numericStrings` (for ordering only: `labels.n=007` stays an exact string match).
 */
function compareScalar(value: unknown, text: string, numericStrings: boolean): number | undefined {
  if (typeof value === 'string') {
    const time = parseTimestamp(value);
    const literalTime = time === undefined ? undefined : parseTimestamp(text);
    if (time !== undefined && literalTime !== undefined) return order(time, literalTime);
    const duration = parseDuration(value);
    const literalDuration = duration === undefined ? undefined : parseDuration(text);
    if (duration !== undefined && literalDuration !== undefined) return order(duration, literalDuration);
    if (numericStrings && NUMBER.test(value) && NUMBER.test(text)) return order(Number(value), Number(text));
    return order(value, text);
  }
  if (typeof value === 'number') {
    return NUMBER.test(text) && !Number.isNaN(value) ? order(value, Number(text)) : undefined;
  }
  if (typeof value === 'boolean') {
    const lower = text.toLowerCase();
    if (lower !== 'true' && lower !== 'false') return undefined;
    return order(Number(value), lower === 'true' ? 1 : 0);
  }
  return undefined;
}

/** Whole-string match of a `*` glob given as its literal parts; no regular expressions, linear-ish time. */
function globMatch(subject: string, parts: string[]): boolean {
  const first = parts[0] ?? '';
  if (parts.length === 1) return subject === first;
  const last = parts[parts.length - 1] ?? '';
  if (subject.length < first.length + last.length) return false;
  if (!subject.startsWith(first) || !subject.endsWith(last)) return false;
  return containsInOrder(subject.slice(first.length, subject.length - last.length), parts.slice(1, -1));
}

/** Whether the parts occur in the subject in order without overlapping (an unanchored glob). */
function containsInOrder(subject: string, parts: string[]): boolean {
  let at = 0;
  for (const part of parts) {
    const found = subject.indexOf(part, at);
    if (found < 0) return false;
    at = found + part.length;
  }
  return true;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** An RFC 3339 timestamp as nanoseconds since the epoch, or undefined when it is not one. */
function parseTimestamp(text: string): bigint | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  const offsetHours = Number(m[9] ?? 0);
  const offsetMinutes = Number(m[10] ?? 0);
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return undefined;
  // Built in leap year 2000, then moved to the real year, so that an impossible day (Feb 30, Feb 29 of a
  // common year) shows up as a changed month or day, and years 0-99 are not taken as 1900-1999.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(year);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined;
  const offset = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const nanos = BigInt((m[7] ?? '').padEnd(9, '0'));
  return BigInt(date.getTime() - offset) * 1_000_000n + nanos;
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/** A protobuf JSON duration ("86400s", "1.5s") as nanoseconds, or undefined when it is not one. */
function parseDuration(text: string): bigint | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const nanos = BigInt(m[2] ?? '0') * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -nanos : nanos;
}
