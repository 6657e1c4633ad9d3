/**
 * IAM conditions: the CEL subset the parser accepts (shared/access/conditions/parser.ts), and the refusal — with
 * its message and position — of everything else.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_EXPRESSION_LENGTH } from '../../../../shared/access/conditions/parser.js';
import { refused, run } from './fixtures.js';

test('timestamp("…") refuses what is not an RFC 3339 time, pointing at the string', () => {
  for (const bad of [
    '2023-02-29T00:00:00Z',
    '2030-02-30T00:00:00Z',
    '2030-13-01T00:00:00Z',
    '2030-01-01T24:00:00Z',
    '2030-01-01T00:60:00Z',
    '2030-01-01 00:00:00Z',
    '2030-01-01T00:00:00',
    '2030-01-01',
    '0000-01-01T00:00:00Z',
  ]) {
    refused(`request.time < timestamp("${bad}")`, 'is not an RFC 3339 time', 26);
  }
});

test('refused: functions and attributes outside the subset, with what and where', () => {
  refused('request.time.getHours("Europe/Berlin") < 17', 'request.time.getHours() is not supported', 14);
  refused('request.time.getDayOfWeek() == 1', 'request.time.getDayOfWeek() is not supported');
  refused('resource.name.extract("keyRings/{ring}/") == "r"', 'resource.name.extract() is not supported', 15);
  refused('resource.name.matches("^projects/")', 'resource.name.matches() is not supported');
  refused('has(resource.name)', 'the function has() is not supported', 1);
  refused('duration("3600s") == duration("1h")', 'the function duration() is not supported');
  refused('api.getAttribute("x", []) == "y"', 'unknown name api', 1);
  refused('request.auth.principal == "x"', 'request.auth is not supported', 9);
  refused('request.host == "x"', 'request.host is not supported');
  refused('resource.labels == "x"', 'resource.labels is not supported');
  refused('request == true', 'request by itself is not a value', 1);
  refused('resource', 'resource by itself is not a value', 1);
  refused('resource.name.size() == 3', 'resource.name.size() is not supported');
  refused('timestamp(resource.name) < request.time', 'timestamp() takes one string literal');
  refused('request.time < timestamp()', 'timestamp() takes one string literal');
  refused('resource.name.startsWith(1)', 'number literals are not supported', 26);
  refused('resource.name.startsWith("a", "b")', 'startsWith() takes one string');
  refused('resource.name.startsWith(true)', 'startsWith() takes one string');
});

test('refused: operators, literals and types outside the subset', () => {
  refused('true ? true : false', 'the conditional operator ?: is not supported', 6);
  refused('resource.name in ["a"]', 'the in operator is not supported', 15);
  refused('["a"] == ["a"]', 'lists and indexing');
  refused('{"a": 1}', 'maps');
  refused('1 == 1', 'number literals are not supported', 1);
  refused('request.time < timestamp("2030-01-01T00:00:00Z") + duration("1h")', 'arithmetic (+)');
  refused('resource.name = "projects/p"', 'use == to compare', 15);
  refused('true & false', 'use && for "and"');
  refused('true | false', 'use || for "or"');
  refused('r"projects/" == resource.name', 'raw (r"…") and bytes (b"…") strings are not supported', 1);
  refused('"""x""" == "x"', 'triple-quoted strings are not supported', 1);
  refused('"open', 'has no closing "', 1);
  refused('"\\q" == "q"', 'the escape \\q is not supported', 2);
  refused('resource.name < "projects/q"', '< compares timestamps only', 15);
  refused('request.time == "2030-01-01T00:00:00Z"', '== compares a timestamp with a string', 14);
  refused('resource.name == true', '== compares a string with a bool');
  refused('resource.name', 'the condition must be true or false, but this is a string', 1);
  refused('request.time', 'must be true or false, but this is a timestamp');
  refused('!resource.name', '! needs true/false operands');
  refused('resource.name && true', '&& needs true/false operands');
  refused('true || request.time', '|| needs true/false operands');
  refused('', 'expected a value, found the end of the expression', 1);
  refused('true true', 'expected && or || or the end, found "true"', 6);
  refused('(true', 'expected ) to close the parenthesis');
  refused('true)', 'expected && or || or the end, found ")"', 5);
  refused('resource.', 'expected a field or function name after "."');
  refused('#', 'the character "#" is not part of the language', 1);
});

test('refused: literals no Cloud KMS resource can match (they would silently grant nothing)', () => {
  refused('resource.type == "storage.googleapis.com/Bucket"', 'is not a Cloud KMS resource type', 18);
  refused('resource.type == "cloudkms.googleapis.com/cryptoKey"', 'is not a Cloud KMS resource type');
  refused('"cloudkms.googleapis.com/Key" != resource.type', 'is not a Cloud KMS resource type', 1);
  refused(
    'resource.service == "storage.googleapis.com"',
    'resource.service is always "cloudkms.googleapis.com"',
  );
  refused('resource.name == "keyRings/r"', 'can never match', 18);
  refused(
    'resource.name.startsWith("//cloudkms.googleapis.com/projects/p")',
    /resource\.name is a Cloud KMS resource name like "projects\/p\/locations/,
  );
  // A prefix of "projects/" is a legitimate (if broad) prefix.
  assert.equal(run('resource.name.startsWith("proj")'), true);
  assert.equal(run('resource.name.startsWith("")'), true);
});

test('bounds: length and nesting depth are refused before they cost anything', () => {
  refused(`${'('.repeat(65)}true${')'.repeat(65)}`, 'nesting is deeper than 64');
  refused(`${'!'.repeat(65)}true`, 'nesting is deeper than 64');
  assert.equal(run(`${'('.repeat(60)}true${')'.repeat(60)}`), true);
  const long = `true${' && true'.repeat(MAX_EXPRESSION_LENGTH / 8)}`;
  assert.ok(long.length > MAX_EXPRESSION_LENGTH);
  refused(long, `at most ${MAX_EXPRESSION_LENGTH} are allowed`);
  // A long but allowed chain evaluates (no stack overflow in the compiled closures).
  const chain = `true${' && true'.repeat(MAX_EXPRESSION_LENGTH / 8 - 2)}`;
  assert.equal(run(chain), true);
  assert.equal(run(`${chain} && false`), false);
});
