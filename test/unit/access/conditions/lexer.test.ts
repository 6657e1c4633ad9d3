/** IAM conditions: how an expression is cut into tokens (shared/access/conditions/lexer.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConditionError } from '../../../../shared/access/conditions/error.js';
import { tokenize } from '../../../../shared/access/conditions/lexer.js';

const show = (src: string) => tokenize(src).map((t) => `${t.kind}:${t.value}@${t.pos}`);

test('names, strings, two-character operators first, comments skipped; positions are 1-based', () => {
  assert.deepEqual(show('resource.name!="a" // note\n&& !x'), [
    'ident:resource@1',
    'op:.@9',
    'ident:name@10',
    'op:!=@14',
    'string:a@16',
    'op:&&@28',
    'op:!@31',
    'ident:x@32',
    'end:@33',
  ]);
  assert.deepEqual(show(''), ['end:@1']);
  assert.deepEqual(show('a<=b>c'), ['ident:a@1', 'op:<=@2', 'ident:b@4', 'op:>@5', 'ident:c@6', 'end:@7']);
});

test('string escapes resolve; single and double quotes are alike', () => {
  const value = (src: string) => tokenize(src)[0]!.value;
  assert.equal(value(String.raw`"a\"b\\c\n\t"`), 'a"b\\c\n\t');
  assert.equal(value(String.raw`'\x41\u00e9\''`), "Aé'");
  assert.equal(value(`'say "hi"'`), 'say "hi"');
});

test('refused constructs become bad tokens in place, for the parser to raise in reading order', () => {
  assert.deepEqual(
    tokenize('x == 12 + y').map((t) => t.kind),
    ['ident', 'op', 'bad', 'bad', 'ident', 'end'],
  );
  const [, , number, plus] = tokenize('x == 12 + y');
  assert.match(number!.value, /number literals are not supported/);
  assert.equal(number!.pos, 6);
  assert.match(plus!.value, /arithmetic \(\+\)/);
  assert.equal(plus!.pos, 9);
});

test('strings that cannot be read are refused at once', () => {
  const refusal = (src: string, message: RegExp, position: number) =>
    assert.throws(
      () => tokenize(src),
      (err: unknown) =>
        err instanceof ConditionError && message.test(err.message) && err.position === position,
      src,
    );
  refusal('x == "open', /has no closing "/, 6);
  refusal("'a\nb'", /has no closing '/, 1);
  refusal('"\\u12"', /the escape \\u is not supported/, 2);
  refusal('b"x"', /bytes/, 1);
  refusal("'''x'''", /triple-quoted/, 1);
});
