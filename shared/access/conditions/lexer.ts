/**
 * The tokenizer of IAM condition expressions (the CEL subset of parser.ts). Constructs that CEL has and this subset
 * refuses (numbers, arithmetic, lists, maps, the conditional operator…) become 'bad' tokens, raised only when the
 * parser reaches them, so that refusals come in reading order; raw, bytes and triple-quoted strings and unknown
 * escapes are refused here at once.
 */
import { ConditionError } from './error.js';

/** 'bad' holds a refusal, raised when the parser reaches it (so refusals come in reading order). */
type TokenKind = 'ident' | 'string' | 'op' | 'end' | 'bad';
export interface Token {
  kind: TokenKind;
  value: string;
  /** 1-based character position in the expression. */
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

/** The tokens of the expression, ending with one 'end' token. */
export function tokenize(src: string): Token[] {
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
