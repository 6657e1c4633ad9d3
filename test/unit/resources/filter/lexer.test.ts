/** List filters: how words, quoted strings and operators are read (shared/resources/filter/lexer.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileFilter } from '../../../../shared/resources/filter/evaluate.js';
import { failIn, tokenize } from '../../../../shared/resources/filter/lexer.js';
import { assertRefused, matching } from './fixtures.js';

describe('quoted strings', () => {
  test('quotes, escapes, spaces and keywords as values', () => {
    assert.deepEqual(matching('purpose="MAC"'), ['gamma']);
    assert.deepEqual(matching('labels.note="Has Spaces \\"and\\" quotes"'), ['beta']);
    assert.deepEqual(matching('labels.note:"spaces \\"AND\\""'), ['beta']);
    assert.deepEqual(matching('labels.team="AND"'), []);
    assert.equal(compileFilter('a="x\\\\y"')({ a: 'x\\y' }), true);
    assert.equal(compileFilter('a="x\\ny"')({ a: 'x\ny' }), true);
    assert.equal(compileFilter('a="NOT"')({ a: 'NOT' }), true);
    assert.equal(compileFilter('a="x=y (z)"')({ a: 'x=y (z)' }), true);
    assert.equal(compileFilter('a=""')({ a: '' }), true);
  });

  test('a value word may contain ":" and "-" after its start', () => {
    assert.equal(compileFilter('member=user:ann@example.com')({ member: 'user:ann@example.com' }), true);
    assert.equal(compileFilter('id=key-1 n=-2')({ id: 'key-1', n: -2 }), true);
  });
});

describe('syntax errors', () => {
  test('unterminated string', () => {
    assertRefused('labels.team="alpha', 13, 'the quoted string that starts here is not closed');
    assertRefused('a="x\\', 3, 'is not closed');
    assertRefused('a="x\\"', 3, 'is not closed');
  });

  test('a lone !', () => {
    assertRefused('a ! b', 3, 'unexpected "!"');
    assertRefused('NOT a=b !', 9, 'unexpected "!"');
  });

  test('positions count characters, not UTF-16 code units', () => {
    assertRefused('labels.team="😀" AND', 20, 'expected a condition after AND');
  });
});

describe('tokens', () => {
  const kinds = (filter: string) =>
    tokenize(filter, failIn(filter)).map((t) => `${t.kind}:${t.text}@${t.index}`);

  test('words, operators, keywords, parentheses and the end', () => {
    assert.deepEqual(kinds('NOT (a.b>=1 OR c:d) AND -e!=f'), [
      'not:NOT@0',
      'lparen:(@4',
      'word:a.b@5',
      'op:>=@8',
      'word:1@10',
      'or:OR@12',
      'word:c@15',
      'op::@16',
      'word:d@17',
      'rparen:)@18',
      'and:AND@20',
      'minus:-@24',
      'word:e@25',
      'op:!=@26',
      'word:f@28',
      'end:@29',
    ]);
    assert.deepEqual(kinds(''), ['end:@0']);
    assert.deepEqual(kinds('and Or'), ['word:and@0', 'word:Or@4', 'end:@6'], 'keywords are upper-case only');
  });

  test('a value word keeps ":" and a leading "-"; a field word stops at ":"', () => {
    assert.deepEqual(kinds('t>2024-01-01T00:00:00Z'), [
      'word:t@0',
      'op:>@1',
      'word:2024-01-01T00:00:00Z@2',
      'end:@22',
    ]);
    assert.deepEqual(kinds('n=-1'), ['word:n@0', 'op:=@1', 'word:-1@2', 'end:@4']);
    assert.deepEqual(kinds('a:b:c'), ['word:a@0', 'op::@1', 'word:b:c@2', 'end:@5']);
  });

  test('wildcards split values into parts; escapes are resolved', () => {
    const parts = (filter: string) => tokenize(filter, failIn(filter)).map((t) => t.parts);
    assert.deepEqual(parts('a*b*'), [['a', 'b', ''], []]);
    assert.deepEqual(parts('"a\\*b*c"'), [['a*b', 'c'], []]);
    assert.deepEqual(parts('"x\\ty\\"z"'), [['x\ty"z'], []]);
  });
});
