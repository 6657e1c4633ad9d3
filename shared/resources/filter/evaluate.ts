/**
 * The `filter` of the Cloud KMS REST v1 list methods (keyRings, cryptoKeys, cryptoKeyVersions, ekmConnections),
 * in the AIP-160 style. A filter is parsed once by `compileFilter` (tokens: lexer.ts; syntax tree: parser.ts) and
 * the result is a predicate over resources in the API's own JSON shape: lowerCamelCase fields, enums as NAME
 * strings, timestamps as RFC 3339 strings, labels as a map.
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
import { RpcError } from '../../errors.js';
import { parseDuration, parseTimestamp, timestampNanos } from '../../time.js';
import { failIn, tokenize } from './lexer.js';
import { type Comparator, type Literal, type Node, parse } from './parser.js';

export type Resource = Record<string, unknown>;
type Predicate = (resource: Resource) => boolean;

/** The longest filter accepted, in UTF-16 code units (characters for all practical filters). */
const MAX_FILTER_LENGTH = 2000;

/** Parses the filter once; throws RpcError.invalidArgument(message, 'filter') on a syntax error. Empty/blank filter matches everything. */
export function compileFilter(filter: string | undefined): Predicate {
  if (filter === undefined) return matchAll;
  if (typeof filter !== 'string') {
    throw RpcError.invalidArgument(
      'Invalid filter: expected one string. Send the filter parameter once.',
      'filter',
    );
  }
  const fail = failIn(filter);
  if (filter.length > MAX_FILTER_LENGTH) {
    fail(
      MAX_FILTER_LENGTH,
      `the filter is ${filter.length} characters long, more than the maximum of ${MAX_FILTER_LENGTH}`,
      'Shorten it, for example by splitting one list call into several with simpler filters.',
    );
  }
  const tokens = tokenize(filter, fail);
  if (tokens.length === 1) return matchAll; // only the end token: a blank filter
  return toPredicate(parse(tokens, filter, fail));
}

function matchAll(): boolean {
  return true;
}

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
    const time = timestampOf(value);
    const literalTime = time === undefined ? undefined : timestampOf(text);
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

/** An RFC 3339 timestamp as nanoseconds since the epoch, or undefined when it is not one. */
function timestampOf(text: string): bigint | undefined {
  const t = parseTimestamp(text);
  return t === undefined ? undefined : timestampNanos(t);
}
