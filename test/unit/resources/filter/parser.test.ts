/** List filters: the grammar (shared/resources/filter/parser.ts): precedence, nesting and every syntax error. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RpcError } from '../../../../shared/errors.js';
import { compileFilter } from '../../../../shared/resources/filter/evaluate.js';
import { failIn, tokenize } from '../../../../shared/resources/filter/lexer.js';
import { type Node, parse } from '../../../../shared/resources/filter/parser.js';
import { assertRefused, matching } from './fixtures.js';

describe('limits', () => {
  test('32 levels of nesting are accepted', () => {
    assert.deepEqual(matching(`${'('.repeat(32)}purpose=MAC${')'.repeat(32)}`), ['gamma']);
    assert.deepEqual(matching(`${'NOT '.repeat(32)}purpose=MAC`), ['gamma']);
  });
});

describe('syntax errors', () => {
  test('too deeply nested', () => {
    assertRefused(`${'('.repeat(33)}a=b${')'.repeat(33)}`, 33, 'more than 32 levels deep');
    assertRefused(`${'NOT '.repeat(33)}a=b`, 129, 'more than 32 levels deep');
    assertRefused(`${'-'.repeat(33)}a=b`, 33, 'more than 32 levels deep');
    assertRefused(`${'(NOT '.repeat(17)}a=b${')'.repeat(17)}`, 81, 'more than 32 levels deep');
  });

  test('missing value', () => {
    assertRefused('labels.team=', 13, 'expected a value after "=", found the end of the filter');
    assertRefused('a= AND b=c', 4, 'found AND. To match the word AND itself, quote it: a="AND"');
    assertRefused('(a=)', 4, 'expected a value after "=", found ")"');
    assertRefused('a<=>b', 4, 'expected a value after "<=", found ">"');
    assertRefused('a:(b)', 3, 'expected a value after ":", found "("');
  });

  test('missing operator', () => {
    assertRefused('labels.team', 12, 'expected an operator (=, !=, <, <=, >, >=, :) after "labels.team"');
    assertRefused('state ENABLED', 7, 'after "state", found "ENABLED"');
    assertRefused('a=b c', 6, 'after "c", found the end of the filter');
  });

  test('lower-case keywords', () => {
    assertRefused('a=b and c=d', 5, '"and" was read as a field name, because keywords are upper-case');
    assertRefused('a=b or c=d', 5, 'Write OR in capitals');
    assertRefused('not a=b', 1, 'Write NOT in capitals');
  });

  test('missing or bad field name', () => {
    assertRefused('=alpha', 1, 'expected a field name before "="');
    assertRefused('(:x)', 2, 'expected a field name before ":"');
    assertRefused('"labels"=x', 1, 'expected a field name, found the quoted string "labels"');
    assertRefused('labels..team=x', 1, '"labels..team" is not a valid field name');
    assertRefused('.a=1', 1, 'is not a valid field name');
    assertRefused('a.=1', 1, 'is not a valid field name');
    assertRefused('a=b && c=d', 5, '"&&" is not a valid field name');
    assertRefused('labels.*=x', 1, 'is not a valid field name');
  });

  test('parentheses', () => {
    assertRefused('()', 2, 'empty parentheses');
    assertRefused('state=ENABLED ()', 16, 'empty parentheses');
    assertRefused('(a=b', 5, 'expected ")" to close the "(" at position 1, found the end of the filter');
    assertRefused('(a=b OR (c=d)', 14, 'to close the "(" at position 1');
    assertRefused('(a=b c=', 8, 'expected a value after "="');
    assertRefused('a=b)', 4, 'unexpected ")" without a matching "("');
    assertRefused(')a=b', 1, 'expected a condition, found ")"');
  });

  test('dangling AND, OR, NOT and -', () => {
    assertRefused('a=b AND', 8, 'expected a condition after AND, found the end of the filter');
    assertRefused('a=b OR', 7, 'expected a condition after OR, found the end of the filter');
    assertRefused('AND a=b', 1, 'expected a condition, found AND');
    assertRefused('OR a=b', 1, 'expected a condition, found OR');
    assertRefused('a=b AND OR c=d', 9, 'expected a condition after AND, found OR');
    assertRefused('a=b OR AND c=d', 8, 'expected a condition after OR, found AND');
    assertRefused('NOT', 4, 'expected a condition after NOT');
    assertRefused('-', 2, 'expected a condition after "-"');
    assertRefused('a=b NOT)', 8, 'expected a condition after NOT, found ")"');
  });

  test('stray operators', () => {
    assertRefused('a=b=c', 4, 'unexpected "="');
    assertRefused('a=b :c', 5, 'unexpected ":"');
    assertRefused('a=b AND <c', 9, 'expected a condition after AND, found "<"');
  });

  test('wildcards with ordering operators', () => {
    assertRefused('createTime>*', 12, 'the wildcard "*" cannot be used with ">"');
    assertRefused('name<="a*"', 7, 'cannot be used with "<="');
  });

  test('every message tells what to do', () => {
    assert.throws(
      () => compileFilter('labels.team='),
      (err: unknown) =>
        err instanceof RpcError &&
        err.message ===
          'Invalid filter at position 13: expected a value after "=", found the end of the filter. ' +
            'Filters look like: labels.team=alpha AND state=ENABLED',
    );
  });
});

describe('syntax trees', () => {
  /** The tree as a compact string: and(…), or(…), not(…), path op value. */
  function tree(filter: string): string {
    const show = (node: Node): string => {
      switch (node.kind) {
        case 'and':
        case 'or':
          return `${node.kind}(${node.children.map(show).join(', ')})`;
        case 'not':
          return `not(${show(node.child)})`;
        case 'compare':
          return `${node.path.join('.')}${node.op}${node.value.parts.join('*')}`;
      }
    };
    const fail = failIn(filter);
    return show(parse(tokenize(filter, fail), filter, fail));
  }

  test('OR binds tighter than AND and juxtaposition; NOT binds tightest', () => {
    assert.equal(tree('a=1 AND b=2 OR c=3'), 'and(a=1, or(b=2, c=3))');
    assert.equal(tree('a=1 OR b=2 AND c=3'), 'and(or(a=1, b=2), c=3)');
    assert.equal(tree('a=1 b=2 OR c=3'), 'and(a=1, or(b=2, c=3))');
    assert.equal(tree('NOT a=1 OR b=2'), 'or(not(a=1), b=2)');
    assert.equal(tree('-(a=1 b=2)'), 'not(and(a=1, b=2))');
    assert.equal(tree('((a.b:x*y))'), 'a.b:x*y');
  });

  test('a single restriction is not wrapped', () => {
    assert.equal(tree('labels.team=alpha'), 'labels.team=alpha');
  });
});
