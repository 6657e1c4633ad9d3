/**
 * IAM conditions: what a compiled condition answers (shared/access/conditions/evaluate.ts) for every supported
 * construct, and the precedence of !, comparisons, && and ||.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resourceTypeOf } from '../../../../shared/access/conditions/evaluate.js';
import { KEY, RING, run, T, VERSION } from './fixtures.js';

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
