/**
 * The tokenizer of list filters (see parser.ts for the grammar), and the syntax errors of the whole filter
 * language.
 *
 * A word is a run of characters other than white space, parentheses, double quotes and the operator characters
 * = ! < > :. A value word may contain ":" after its first character, so `createTime>2024-01-01T00:00:00Z` works
 * unquoted. "-" starts a negation only where a term starts; in a value (`labels.n=-1`) it is a character.
 * AND, OR and NOT are keywords only in upper case and unquoted. A quoted string resolves the escapes \" \\ \n \t
 * \r; \* is a literal asterisk, while an unescaped * (quoted or not) is a wildcard.
 */
import { RpcError } from '../../errors.js';

type TokenKind = 'word' | 'string' | 'op' | 'lparen' | 'rparen' | 'and' | 'or' | 'not' | 'minus' | 'end';

export interface Token {
  kind: TokenKind;
  /** The source text, for messages. */
  text: string;
  /** For words and strings: the value with escapes resolved, split at wildcards (one part: no wildcard). */
  parts: string[];
  /** Where the token starts in the filter (UTF-16 index). */
  index: number;
}

/** Throws the syntax error at a UTF-16 index of the filter: what was wrong, then what to do. */
export type Fail = (index: number, what: string, hint?: string) => never;

export const EXAMPLE = 'Filters look like: labels.team=alpha AND state=ENABLED';

/**
 * The Fail of one filter: RpcError INVALID_ARGUMENT on the field `filter`, whose message gives the 1-based
 * character position, what was wrong and what to do (by default, an example).
 */
export function failIn(filter: string): Fail {
  return (index, what, hint = EXAMPLE) => {
    throw RpcError.invalidArgument(
      `Invalid filter at position ${position(filter, index)}: ${what}. ${hint}`,
      'filter',
    );
  };
}

/** The 1-based position of a UTF-16 index, counted in Unicode code points as a person would count. */
export function position(filter: string, index: number): number {
  let count = 1;
  for (const _ of filter.slice(0, index)) count++;
  return count;
}

const OPERATOR_CHARS: ReadonlySet<string> = new Set(['=', '!', '<', '>', ':']);

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v';
}

function isWordChar(ch: string): boolean {
  return !isSpace(ch) && ch !== '(' && ch !== ')' && ch !== '"' && !OPERATOR_CHARS.has(ch);
}

/** The tokens of the filter, ending with one 'end' token (a blank filter gives only that). */
export function tokenize(filter: string, fail: Fail): Token[] {
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
