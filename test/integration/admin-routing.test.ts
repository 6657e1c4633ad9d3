/**
 * Bad input and routing on the key-administration surface: every failure is a google.rpc.Status envelope whose
 * message says what to fix; authentication; `alt` and `$alt` query forms.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { LOCAL_AUDIENCE, LOCAL_ISSUER } from '../../scripts/lib/local-state.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertError, ok, violationField } from './admin-helpers.js';

let s: TestStack;
let loc: string;
let ring: string;
let key: string;
before(async () => {
  s = await startTestStack();
  loc = `/v1/projects/${s.project}/locations/us-east1`;
  ring = `${loc}/keyRings/r`;
  key = `${ring}/cryptoKeys/k`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=r`, {}));
  ok(await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=k`, { purpose: 'ENCRYPT_DECRYPT' }));
});
after(() => s.stop());

test('an unknown path is 404 in the envelope and says what paths look like', async () => {
  for (const path of ['/v2/projects/p/locations/l/keyRings', '/nothing', '/v1/operations/abc']) {
    assertError(await s.call('GET', path), 404, 'NOT_FOUND', 'is not part of this API', '/v1/projects/');
  }
  // A collection name that does not exist under a real key ring.
  assertError(await s.call('GET', `${ring}/widgets`), 404, 'NOT_FOUND');
  assertError(
    await s.call('GET', `${loc}/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1/more`),
    404,
    'NOT_FOUND',
  );
});

test('a wrong method is 404 in the envelope naming the allowed methods', async () => {
  const del = await s.call('DELETE', `${ring}`);
  assertError(del, 404, 'NOT_FOUND', 'DELETE', 'GET');
  const put = await s.call('PUT', `${key}`, {});
  assertError(put, 404, 'NOT_FOUND', 'PUT', 'GET or PATCH');
  const getCreate = await s.call('PATCH', `${loc}/keyRings`, {});
  assertError(getCreate, 404, 'NOT_FOUND', 'PATCH', 'POST or GET');
  const getDestroy = await s.call('GET', `${key}/cryptoKeyVersions/1:destroy`);
  assertError(getDestroy, 404, 'NOT_FOUND', 'GET', 'POST');
});

test('an unknown custom verb is 404 naming the verb', async () => {
  assertError(await s.call('POST', `${key}:explode`, {}), 404, 'NOT_FOUND', ':explode');
  assertError(
    await s.call('POST', `${ring}:updatePrimaryVersion`, {}),
    404,
    'NOT_FOUND',
    ':updatePrimaryVersion',
  );
});

test('malformed JSON is a 400 envelope (never HTML) and nothing is created', async () => {
  for (const raw of ['{', '{"purpose":', "{'purpose':'ENCRYPT_DECRYPT'}", '{"purpose":"ENCRYPT_DECRYPT",}']) {
    const res = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=broken`, undefined, { raw });
    assertError(res, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload');
  }
  // Even when the client does not say it is JSON.
  const plain = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=broken`, undefined, {
    raw: '{nope',
    headers: { 'content-type': 'text/plain' },
  });
  assertError(plain, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload');
  assertError(await s.call('GET', `${ring}/cryptoKeys/broken`), 404, 'NOT_FOUND');
});

test('an unknown query parameter is 400 naming it and the accepted ones', async () => {
  const res = await s.call('GET', `${ring}/cryptoKeys?pagesize=5`);
  assertError(res, 400, 'INVALID_ARGUMENT', '"pagesize"', 'pageSize');
  assert.equal(violationField(res), 'pagesize');
  const create = await s.call('POST', `${loc}/keyRings?keyRingId=q1&keyRingID=q1`, {});
  assertError(create, 400, 'INVALID_ARGUMENT', '"keyRingID"', 'keyRingId');
  assertError(await s.call('GET', `${loc}/keyRings/q1`), 404, 'NOT_FOUND');
  assertError(await s.call('GET', `${key}?view=FULL`), 400, 'INVALID_ARGUMENT', '"view"');
});

test('bad resource names are 400 and show the expected shape', async () => {
  const badProject = await s.call('GET', '/v1/projects/bad%20project/locations/us/keyRings/r');
  assertError(badProject, 400, 'INVALID_ARGUMENT', 'not a valid', 'projects/{project}/locations/{location}');
  const badRing = await s.call('GET', `${loc}/keyRings/bad.ring`);
  assertError(badRing, 400, 'INVALID_ARGUMENT', 'key ring', 'keyRings/{keyRing}');
  const badKey = await s.call('GET', `${ring}/cryptoKeys/${'k'.repeat(64)}`);
  assertError(badKey, 400, 'INVALID_ARGUMENT', 'crypto key', 'cryptoKeys/{cryptoKey}');
  for (const v of ['0', '01', 'x', '-1', '1.5']) {
    const badVersion = await s.call('GET', `${key}/cryptoKeyVersions/${v}`);
    assertError(badVersion, 400, 'INVALID_ARGUMENT', 'crypto key version', 'cryptoKeyVersions/{version}');
  }
  // An escaped slash does not smuggle in an extra path segment.
  const badParent = await s.call('POST', `${ring}/cryptoKeys/k%2Fx/cryptoKeyVersions`, {});
  assertError(badParent, 404, 'NOT_FOUND', 'is not part of this API');
});

test('no token is 401 UNAUTHENTICATED saying how to send one', async () => {
  const res = await s.call('GET', `${ring}`, undefined, { token: '' });
  assertError(res, 401, 'UNAUTHENTICATED', 'Authorization: Bearer');
  const basic = await s.call('GET', `${ring}`, undefined, {
    token: '',
    headers: { authorization: 'Basic dXNlcjpwdw==' },
  });
  assertError(basic, 401, 'UNAUTHENTICATED', 'Bearer');
  const junk = await s.call('GET', `${ring}`, undefined, { token: 'not-a-jwt' });
  assertError(junk, 401, 'UNAUTHENTICATED', 'JWT');
});

test('an expired token is 401 saying it expired', async () => {
  // Well past the verifier's clock skew allowance.
  const expired = await s.token(undefined, -600);
  const res = await s.call('GET', `${ring}`, undefined, { token: expired });
  assertError(res, 401, 'UNAUTHENTICATED', 'expired');
  // Refused before any work: a create with an expired token leaves nothing behind.
  const create = await s.call('POST', `${loc}/keyRings?keyRingId=expired`, {}, { token: expired });
  assertError(create, 401, 'UNAUTHENTICATED');
  assertError(await s.call('GET', `${loc}/keyRings/expired`), 404, 'NOT_FOUND');
});

test('a token signed by a key the service does not trust is 401', async () => {
  const { privateKey } = await generateKeyPair('ES256');
  const sign = (issuer: string) =>
    new SignJWT({ email: 'mallory@example.com', email_verified: true })
      .setProtectedHeader({ alg: 'ES256', kid: 'foreign' })
      .setIssuer(issuer)
      .setAudience(LOCAL_AUDIENCE)
      .setSubject('mallory@example.com')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
  const foreignIssuer = await s.call('GET', `${ring}`, undefined, {
    token: await sign('https://evil.example/issuer'),
  });
  assertError(foreignIssuer, 401, 'UNAUTHENTICATED', 'issuer');
  // Claims to be the local issuer, but is not signed with its key.
  const forged = await s.call('GET', `${ring}`, undefined, { token: await sign(LOCAL_ISSUER) });
  assertError(forged, 401, 'UNAUTHENTICATED', 'access token');
});

test('health is public, but the scheduled-task endpoint needs a token', async () => {
  assert.equal((await s.call('GET', '/health', undefined, { token: '' })).status, 200);
  assertError(await s.call('POST', '/health/tasks:run', {}, { token: '' }), 401, 'UNAUTHENTICATED');
});

test('?alt=json is accepted everywhere and changes nothing', async () => {
  const plain = ok(await s.call('GET', `${key}`));
  const alt = ok(await s.call('GET', `${key}?alt=json`));
  assert.deepEqual(alt, plain);
  ok(await s.call('GET', `${ring}/cryptoKeys?alt=json&pageSize=100`));
  ok(await s.call('POST', `${loc}/keyRings?alt=json&keyRingId=alt-json`, {}));
});

test('$alt=json;enum-encoding=int answers enums as integers (and accepts them)', async () => {
  const q = `$alt=${encodeURIComponent('json;enum-encoding=int')}`;
  const created = ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=ints&${q}`, {
      purpose: 1,
      versionTemplate: { protectionLevel: 1, algorithm: 1 },
    }),
  );
  assert.equal(created.purpose, 1);
  assert.deepEqual(created.versionTemplate, { protectionLevel: 1, algorithm: 1 });
  assert.equal(created.primary.state, 1);
  assert.equal(created.primary.protectionLevel, 1);
  // Names are the default.
  const named = ok(await s.call('GET', `${ring}/cryptoKeys/ints`));
  assert.equal(named.purpose, 'ENCRYPT_DECRYPT');
  assert.equal(named.primary.state, 'ENABLED');
  const versions = ok(await s.call('GET', `${ring}/cryptoKeys/ints/cryptoKeyVersions?${q}`));
  assert.equal(versions.cryptoKeyVersions[0].state, 1);
  assert.equal(versions.cryptoKeyVersions[0].algorithm, 1);
  // Errors keep their canonical status name.
  assertError(await s.call('GET', `${ring}/cryptoKeys/none?${q}`), 404, 'NOT_FOUND');
});

test('snake_case field names are accepted like their camelCase form', async () => {
  const created = ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=snake`, {
      purpose: 'ENCRYPT_DECRYPT',
      version_template: { protection_level: 'SOFTWARE' },
      destroy_scheduled_duration: '86400s',
      labels: { team_name: 'x' },
    }),
  );
  assert.equal(created.destroyScheduledDuration, '86400s');
  assert.deepEqual(created.labels, { team_name: 'x' });
});
