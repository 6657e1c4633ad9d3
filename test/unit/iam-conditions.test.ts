/**
 * IAM conditions: the CEL subset OpenEKM evaluates (shared/access/conditions.ts) — every supported construct, the
 * precedence of !, comparisons, && and ||, and the refusal (with its message and position) of everything else.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConditionError,
  compileCondition,
  MAX_EXPRESSION_LENGTH,
  parseTimestamp,
  resourceTypeOf,
} from '../../shared/access/conditions.js';

const RING = 'projects/p/locations/l/keyRings/r';
const KEY = `${RING}/cryptoKeys/k`;
const VERSION = `${KEY}/cryptoKeyVersions/1`;
const T = Date.parse('2030-01-01T00:00:00Z');

function run(expression: string, resource = KEY, time = T): boolean {
  return compileCondition(expression)({ resource, time });
}

function refused(expression: string, message: string | RegExp, position?: number): void {
  assert.throws(
    () => compileCondition(expression),
    (err: unknown) => {
      assert.ok(err instanceof ConditionError, `${expression}: ${String(err)}`);
      if (typeof message === 'string')
        assert.ok(err.message.includes(message), `${expression}: ${err.message}`);
      else assert.match(err.message, message, expression);
      if (position !== undefined) assert.equal(err.position, position, `${expression}: ${err.message}`);
      return true;
    },
  );
}

test('request.time against timestamp("…"): every comparison, either side, time zones and fractions', () => {
  const at = '"2030-01-01T00:00:00Z"';
  const cases: [string, boolean, boolean, boolean][] = [
    // operator, before T, at T, after T
    ['<', true, false, false],
    ['<=', true, true, false],
    ['>', false, false, true],
    ['>=', false, true, true],
    ['==', false, true, false],
    ['!=', true, false, true],
  ];
  for (const [op, before, same, afterT] of cases) {
    const e = `request.time ${op} timestamp(${at})`;
    assert.equal(run(e, KEY, T - 1), before, `${e} before`);
    assert.equal(run(e, KEY, T), same, `${e} at`);
    assert.equal(run(e, KEY, T + 1), afterT, `${e} after`);
  }
  // The timestamp on the left.
  assert.equal(run(`timestamp(${at}) > request.time`, KEY, T - 1), true);
  assert.equal(run(`timestamp(${at}) > request.time`, KEY, T), false);
  // Single quotes, an offset, a fraction.
  assert.equal(run("request.time < timestamp('2030-01-01T01:00:00+01:00')", KEY, T - 1), true);
  assert.equal(run("request.time < timestamp('2030-01-01T01:00:00+01:00')", KEY, T), false);
  assert.equal(run('request.time >= timestamp("2029-12-31T23:59:59.999Z")', KEY, T - 1), true);
  assert.equal(run('request.time >= timestamp("2029-12-31T23:59:59.999Z")', KEY, T - 2), false);
  // A window.
  const window =
    'request.time >= timestamp("2030-01-01T00:00:00Z") && request.time < timestamp("2030-01-02T00:00:00Z")';
  assert.equal(run(window, KEY, T - 1), false);
  assert.equal(run(window, KEY, T), true);
  assert.equal(run(window, KEY, T + 86_400_000), false);
});

test('RFC 3339 timestamps: valid forms parse to the right instant; impossible dates are refused', () => {
  assert.equal(parseTimestamp('2030-01-01T00:00:00Z'), T);
  assert.equal(parseTimestamp('2030-01-01t00:00:00z'), T);
  assert.equal(parseTimestamp('2029-12-31T19:00:00-05:00'), T);
  assert.equal(parseTimestamp('2030-01-01T00:00:00.5Z'), T + 500);
  assert.equal(parseTimestamp('2024-02-29T00:00:00Z'), Date.parse('2024-02-29T00:00:00Z'));
  assert.equal(parseTimestamp('0001-01-01T00:00:00Z'), Date.parse('0001-01-01T00:00:00Z'));
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
    assert.equal(parseTimestamp(bad), undefined, bad);
    refused(`request.time < timestamp("${bad}")`, 'is not an RFC 3339 time', 26);
  }
});

test('resource.name: ==, !=, startsWith, endsWith on the name the permission is checked on', () => {
  assert.equal(run(`resource.name == "${KEY}"`, KEY), true);
  assert.equal(run(`resource.name == "${KEY}"`, `${RING}/cryptoKeys/other`), false);
  assert.equal(run(`resource.name != "${KEY}"`, KEY), false);
  assert.equal(run(`resource.name != "${KEY}"`, RING), true);
  const prefix = `resource.name.startsWith("${RING}/cryptoKeys/k")`;
  assert.equal(run(prefix, KEY), true);
  assert.equal(run(prefix, VERSION), true);
  assert.equal(run(prefix, `${RING}/cryptoKeys/other`), false);
  assert.equal(run(prefix, RING), false, 'the key ring is not under its key');
  assert.equal(run('resource.name.endsWith("/cryptoKeys/k")', KEY), true);
  assert.equal(run('resource.name.endsWith("/cryptoKeys/k")', VERSION), false);
  // A string literal may be the receiver too.
  assert.equal(run('"abc".startsWith("ab")'), true);
  assert.equal(run('"abc".endsWith("ab")'), false);
  // Escapes in strings.
  assert.equal(run('"a\\"b" == \'a"b\''), true);
  assert.equal(run('"\\u0041" == "A"'), true);
});

test('resource.type and resource.service', () => {
  assert.equal(resourceTypeOf(RING), 'cloudkms.googleapis.com/KeyRing');
  assert.equal(resourceTypeOf(KEY), 'cloudkms.googleapis.com/CryptoKey');
  assert.equal(resourceTypeOf(VERSION), 'cloudkms.googleapis.com/CryptoKeyVersion');
  assert.equal(
    resourceTypeOf('projects/p/locations/l/ekmConnections/c'),
    'cloudkms.googleapis.com/EkmConnection',
  );
  assert.equal(resourceTypeOf('projects/p/locations/l'), 'cloudkms.googleapis.com/Location');
  assert.equal(resourceTypeOf('projects/p'), '');
  const isKey = 'resource.type == "cloudkms.googleapis.com/CryptoKey"';
  assert.equal(run(isKey, KEY), true);
  assert.equal(run(isKey, RING), false);
  assert.equal(run(isKey, VERSION), false);
  assert.equal(run('resource.type != "cloudkms.googleapis.com/KeyRing"', RING), false);
  assert.equal(run('resource.type != "cloudkms.googleapis.com/KeyRing"', KEY), true);
  assert.equal(run('"cloudkms.googleapis.com/CryptoKeyVersion" == resource.type', VERSION), true);
  assert.equal(run('resource.service == "cloudkms.googleapis.com"'), true);
  assert.equal(run('resource.service != "cloudkms.googleapis.com"'), false);
});

test('&&, ||, !, parentheses, true and false, with CEL precedence', () => {
  assert.equal(run('true'), true);
  assert.equal(run('false'), false);
  assert.equal(run('!false'), true);
  assert.equal(run('!!true'), true);
  assert.equal(run('true && false'), false);
  assert.equal(run('true || false'), true);
  // && binds tighter than ||: true || (false && false), not (true || false) && false.
  assert.equal(run('true || false && false'), true);
  assert.equal(run('(true || false) && false'), false);
  // false && false || true is (false && false) || true.
  assert.equal(run('false && false || true'), true);
  assert.equal(run('false && (false || true)'), false);
  // ! binds tighter than && and ==: (!true) == false.
  assert.equal(run('!true == false'), true);
  assert.equal(run('!(true == false)'), true);
  assert.equal(run('!true && false'), false);
  assert.equal(run('!(true && false)'), true);
  // Comparisons bind tighter than &&.
  assert.equal(
    run(`resource.name == "${KEY}" && resource.type == "cloudkms.googleapis.com/CryptoKey"`),
    true,
  );
  assert.equal(run(`resource.name == "${RING}" || resource.name.startsWith("${KEY}")`, VERSION), true);
  assert.equal(run(`!resource.name.startsWith("${KEY}")`, VERSION), false);
  assert.equal(run('true == true'), true);
  assert.equal(run('true != true'), false);
  // Comments and line breaks, as gcloud's condition files may have.
  assert.equal(run('// until the audit\nrequest.time < timestamp("2031-01-01T00:00:00Z")\n'), true);
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
