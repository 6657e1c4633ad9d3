/**
 * The parser of list filters: a recursive-descent parser from tokens (lexer.ts) to a syntax tree.
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
 * Nesting is limited in depth, so no input can make parsing deep or slow. A wildcard "*" is accepted with =, !=
 * and : only.
 */
import { EXAMPLE, type Fail, position, type Token } from './lexer.js';

/** The deepest nesting accepted; each "(" and each NOT or "-" is one level. */
const MAX_DEPTH = 32;

export type Comparator = '=' | '!=' | '<' | '<=' | '>' | '>=' | ':';
const COMPARATORS: ReadonlySet<string> = new Set(['=', '!=', '<', '<=', '>', '>=', ':']);
const FIELD_NAME = /^[\p{L}\p{N}_-]+$/u;

export interface Literal {
  /** The value with escapes resolved (used when there is no wildcard). */
  text: string;
  /** The value split at wildcards; one part means no wildcard. */
  parts: string[];
}

export type Node =
  | { kind: 'and'; children: Node[] }
  | { kind: 'or'; children: Node[] }
  | { kind: 'not'; child: Node }
  | { kind: 'compare'; path: string[]; op: Comparator; value: Literal };

/**
 * The syntax tree of a filter that has at least one token before its end (a blank filter has no tree); a syntax
 * error is thrown through `fail`.
 */
export function parse(tokens: readonly Token[], filter: string, fail: Fail): Node {
  return new Parser(tokens, filter, fail).parse();
}

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
