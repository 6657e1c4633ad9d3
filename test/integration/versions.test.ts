/**
 * cryptoKeyVersions.create / get / list / patch / destroy / restore, scheduled destruction and concurrent
 * creation, against the real gateway and the Firestore emulator. Tests run in order and share one clock, which
 * only ever moves forward.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertError, ISO, ok, violationField } from './admin-helpers.js';

const DAY = 86400_000;
let s: TestStack;
let ringName: string;
before(async () => {
  s = await startTestStack({ ekm: true });
  for (const id of ['a', 'b', 'd', 'ka', 'kb', 'x', 'y']) await s.ekm!.ekm.admin.createKey(id);
  ringName = `projects/${s.project}/locations/us-east1/keyRings/v`;
  ok(await s.call('POST', `/v1/projects/${s.project}/locations/us-east1/keyRings?keyRingId=v`, {}));
});
after(() => s.stop());

/** The URI of a key at the test's reference EKM (https with its CA, or http on loopback). */
const uri = (id: string, scheme: 'https' | 'http' = 'https') => s.ekm!.keyUri(id, 'google', scheme);

async function softwareKey(id: string, extra: Record<string, unknown> = {}, query = '') {
  const key = ok(
    await s.call('POST', `/v1/${ringName}/cryptoKeys?cryptoKeyId=${id}${query}`, {
      purpose: 'ENCRYPT_DECRYPT',
      ...extra,
    }),
  );
  return key.name as string;
}

async function externalKey(id: string) {
  const key = ok(
    await s.call('POST', `/v1/${ringName}/cryptoKeys?cryptoKeyId=${id}&skipInitialVersionCreation=True`, {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    }),
  );
  return key.name as string;
}

const createVersion = (key: string, body: unknown = {}) =>
  s.call('POST', `/v1/${key}/cryptoKeyVersions`, body);
const get = (name: string) => s.call('GET', `/v1/${name}`);
const patch = (name: string, mask: string, body: unknown) =>
  s.call('PATCH', `/v1/${name}?updateMask=${mask}`, body);
const nowMs = () => s.gateway.deps.now().getTime();

test('create assigns ids 2, 3, … after the initial version; versions start ENABLED with the template', async () => {
  const key = await softwareKey('seq');
  for (const n of [2, 3, 4]) {
    const v = ok(await createVersion(key, n === 3 ? '' : {}));
    assert.equal(v.name, `${key}/cryptoKeyVersions/${n}`);
    assert.equal(v.state, 'ENABLED');
    assert.equal(v.protectionLevel, 'SOFTWARE');
    assert.equal(v.algorithm, 'GOOGLE_SYMMETRIC_ENCRYPTION');
    assert.match(v.createTime, ISO);
    assert.match(v.generateTime, ISO);
    assert.equal(v.destroyTime, undefined);
    assert.equal(v.material, undefined);
    assert.equal(v.externalProtectionLevelOptions, undefined);
    assert.deepEqual(ok(await get(v.name)), v);
  }
  // The primary stays version 1.
  assert.equal(ok(await get(key)).primary.name, `${key}/cryptoKeyVersions/1`);
});

test('state DISABLED on create is honoured; other states are refused', async () => {
  const key = await softwareKey('create-state');
  const disabled = ok(await createVersion(key, { state: 'DISABLED' }));
  assert.equal(disabled.state, 'DISABLED');
  assert.equal(ok(await createVersion(key, { state: 2 })).state, 'DISABLED');
  assert.equal(ok(await createVersion(key, { state: 'ENABLED' })).state, 'ENABLED');
  for (const state of ['DESTROYED', 'DESTROY_SCHEDULED', 'PENDING_GENERATION']) {
    assertError(await createVersion(key, { state }), 400, 'INVALID_ARGUMENT', 'ENABLED or DISABLED', state);
  }
  assertError(await createVersion(key, { state: 'OFF' }), 400, 'INVALID_ARGUMENT', "'state'", 'DISABLED');
  assertError(await createVersion(key, { colour: 'red' }), 400, 'INVALID_ARGUMENT', 'Unknown name "colour"');
  // Output-only fields are ignored, as Cloud KMS does.
  const v = ok(await createVersion(key, { name: 'whatever', createTime: '2000-01-01T00:00:00Z' }));
  assert.equal(v.name, `${key}/cryptoKeyVersions/5`);
});

test('create under an unknown key is NOT_FOUND; a bad parent name is INVALID_ARGUMENT', async () => {
  assertError(
    await createVersion(`${ringName}/cryptoKeys/none`),
    404,
    'NOT_FOUND',
    `${ringName}/cryptoKeys/none`,
  );
  assertError(
    await createVersion(`projects/${s.project}/locations/us-east1/keyRings/none/cryptoKeys/k`),
    404,
    'NOT_FOUND',
  );
  const badParent = await s.call('POST', `/v1/${ringName}/cryptoKeys/a.b/cryptoKeyVersions`, {});
  assertError(badParent, 400, 'INVALID_ARGUMENT', 'crypto key');
});

test('EXTERNAL versions need an https externalKeyUri (http only for loopback hosts in the local stack)', async () => {
  const key = await externalKey('ext');
  assertError(
    await createVersion(key, {}),
    400,
    'INVALID_ARGUMENT',
    'externalKeyUri is required',
    'https://',
  );
  assertError(
    await createVersion(key, { externalProtectionLevelOptions: {} }),
    400,
    'INVALID_ARGUMENT',
    'externalProtectionLevelOptions.externalKeyUri',
  );
  const v1 = ok(await createVersion(key, { externalProtectionLevelOptions: { externalKeyUri: uri('a') } }));
  assert.equal(v1.name, `${key}/cryptoKeyVersions/1`);
  assert.equal(v1.state, 'ENABLED');
  assert.equal(v1.protectionLevel, 'EXTERNAL');
  assert.equal(v1.algorithm, 'EXTERNAL_SYMMETRIC_ENCRYPTION');
  assert.deepEqual(v1.externalProtectionLevelOptions, { externalKeyUri: uri('a') });
  // Plain http passes the URI rules for loopback hosts; the reference EKM's http endpoint is declared.
  const loopback = ok(
    await createVersion(key, { externalProtectionLevelOptions: { externalKeyUri: uri('b', 'http') } }),
  );
  assert.equal(loopback.externalProtectionLevelOptions.externalKeyUri, uri('b', 'http'));
  // Other loopback forms pass the https rule too, then meet the declared-endpoint rule.
  for (const undeclared of ['http://localhost:9/v0/keys/b', 'http://[::1]:9/v0/keys/c']) {
    const res = await createVersion(key, { externalProtectionLevelOptions: { externalKeyUri: undeclared } });
    assertError(res, 400, 'FAILED_PRECONDITION', 'EXTERNAL_KEY_HOST_NOT_WHITELISTED');
  }
  const refused: [string, string][] = [
    ['http://example.com/v0/keys/a', 'https'],
    ['http://10.0.0.1/v0/keys/a', 'https'],
    ['ftp://ekm.example.com/v0/keys/a', 'https'],
    ['not a uri', 'not a valid URI'],
    ['https://ekm.example.com/', 'key path'],
    ['https://ekm.example.com/v0/keys/a?x=1', 'query'],
    ['https://user:pw@ekm.example.com/v0/keys/a', 'credentials'],
    [`https://ekm.example.com/${'k'.repeat(2100)}`, '2048'],
  ];
  for (const [uri, message] of refused) {
    const res = await createVersion(key, { externalProtectionLevelOptions: { externalKeyUri: uri } });
    assertError(res, 400, 'INVALID_ARGUMENT', 'externalKeyUri', message);
    assert.equal(violationField(res), 'externalProtectionLevelOptions.externalKeyUri');
  }
  const vpcPath = await createVersion(key, {
    externalProtectionLevelOptions: {
      externalKeyUri: uri('a'),
      ekmConnectionKeyPath: 'keys/a',
    },
  });
  assertError(vpcPath, 400, 'INVALID_ARGUMENT', 'ekmConnectionKeyPath', 'EXTERNAL_VPC', 'externalKeyUri');
  // Refused creates did not use up ids.
  const next = ok(await createVersion(key, { externalProtectionLevelOptions: { externalKeyUri: uri('d') } }));
  assert.equal(next.name, `${key}/cryptoKeyVersions/3`);
  const list = ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions`));
  assert.equal(list.totalSize, 3);
});

test('externalProtectionLevelOptions is refused on SOFTWARE keys', async () => {
  const key = await softwareKey('sw-ext');
  const res = await createVersion(key, {
    externalProtectionLevelOptions: { externalKeyUri: 'https://ekm.example.com/v0/keys/a' },
  });
  assertError(res, 400, 'INVALID_ARGUMENT', 'externalProtectionLevelOptions', 'EXTERNAL', 'SOFTWARE');
  // …and the refusal did not advance the version counter.
  assert.equal(ok(await createVersion(key)).name, `${key}/cryptoKeyVersions/2`);
});

test('get and list versions; unknown version is NOT_FOUND', async () => {
  const key = await softwareKey('getlist');
  ok(await createVersion(key, { state: 'DISABLED' }));
  const v1 = ok(await get(`${key}/cryptoKeyVersions/1`));
  assert.equal(v1.state, 'ENABLED');
  assertError(await get(`${key}/cryptoKeyVersions/3`), 404, 'NOT_FOUND', `${key}/cryptoKeyVersions/3`);
  assertError(await get(`${ringName}/cryptoKeys/none/cryptoKeyVersions/1`), 404, 'NOT_FOUND');
  const list = ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions`));
  assert.deepEqual(
    list.cryptoKeyVersions.map((v: { name: string; state: string }) => [v.name.split('/').pop(), v.state]),
    [
      ['1', 'ENABLED'],
      ['2', 'DISABLED'],
    ],
  );
  assert.equal(list.totalSize, 2);
  assert.deepEqual(list.cryptoKeyVersions[0], v1);
  ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions?view=FULL`));
});

test('patch state ENABLED ↔ DISABLED; the key shows the primary in its new state', async () => {
  const key = await softwareKey('toggle');
  const v1 = `${key}/cryptoKeyVersions/1`;
  assertError(
    await s.call('PATCH', `/v1/${v1}`, { state: 'DISABLED' }),
    400,
    'INVALID_ARGUMENT',
    'updateMask is required',
    'state',
  );
  const off = ok(await patch(v1, 'state', { state: 'DISABLED' }));
  assert.equal(off.state, 'DISABLED');
  assert.equal(ok(await get(v1)).state, 'DISABLED');
  assert.equal(ok(await get(key)).primary.state, 'DISABLED');
  // Idempotent, and enums as numbers.
  assert.equal(ok(await patch(v1, 'state', { state: 2 })).state, 'DISABLED');
  assert.equal(ok(await patch(v1, 'state', { state: 'ENABLED' })).state, 'ENABLED');
  assert.equal(ok(await get(key)).primary.state, 'ENABLED');
  for (const state of ['DESTROYED', 'DESTROY_SCHEDULED']) {
    assertError(await patch(v1, 'state', { state }), 400, 'INVALID_ARGUMENT', state, ':destroy');
  }
  assertError(await patch(v1, 'state', {}), 400, 'INVALID_ARGUMENT', 'ENABLED or DISABLED');
  assertError(
    await patch(v1, 'algorithm', { algorithm: 'AES_256_GCM' }),
    400,
    'INVALID_ARGUMENT',
    'algorithm',
    'cannot be updated',
  );
  assertError(await patch(v1, 'colour', {}), 400, 'INVALID_ARGUMENT', '"colour"');
  assertError(
    await patch(v1, 'state', { name: `${key}/cryptoKeyVersions/2`, state: 'DISABLED' }),
    400,
    'INVALID_ARGUMENT',
    'does not match',
  );
  assertError(await patch(`${key}/cryptoKeyVersions/9`, 'state', { state: 'DISABLED' }), 404, 'NOT_FOUND');
  assert.equal(ok(await get(v1)).state, 'ENABLED');
});

test('patch externalProtectionLevelOptions: field by field, EXTERNAL only', async () => {
  const ext = await externalKey('ext-patch');
  const v1 = ok(
    await createVersion(ext, {
      externalProtectionLevelOptions: { externalKeyUri: uri('ka') },
    }),
  );
  const whole = await patch(v1.name, 'externalProtectionLevelOptions', {
    externalProtectionLevelOptions: { externalKeyUri: uri('kb') },
  });
  assertError(
    whole,
    400,
    'INVALID_ARGUMENT',
    'externalProtectionLevelOptions as a whole',
    'externalProtectionLevelOptions.externalKeyUri',
  );
  const moved = ok(
    await patch(v1.name, 'externalProtectionLevelOptions.externalKeyUri', {
      externalProtectionLevelOptions: { externalKeyUri: uri('kb') },
    }),
  );
  assert.deepEqual(moved.externalProtectionLevelOptions, { externalKeyUri: uri('kb') });
  assert.equal(moved.state, 'ENABLED');
  assert.deepEqual(
    ok(await get(v1.name)).externalProtectionLevelOptions,
    moved.externalProtectionLevelOptions,
  );
  const snake = ok(
    await patch(v1.name, 'external_protection_level_options.external_key_uri,state', {
      external_protection_level_options: { external_key_uri: uri('ka', 'http') },
      state: 'DISABLED',
    }),
  );
  assert.equal(snake.externalProtectionLevelOptions.externalKeyUri, uri('ka', 'http'));
  assert.equal(snake.state, 'DISABLED');
  const insecure = await patch(v1.name, 'externalProtectionLevelOptions.externalKeyUri', {
    externalProtectionLevelOptions: { externalKeyUri: 'http://example.com/v0/keys/k' },
  });
  assertError(insecure, 400, 'INVALID_ARGUMENT', 'https');
  const empty = await patch(v1.name, 'externalProtectionLevelOptions.externalKeyUri', {});
  assertError(empty, 400, 'INVALID_ARGUMENT', 'externalKeyUri is required');
  const vpc = await patch(v1.name, 'externalProtectionLevelOptions.ekmConnectionKeyPath', {
    externalProtectionLevelOptions: { ekmConnectionKeyPath: 'keys/k' },
  });
  assertError(vpc, 400, 'INVALID_ARGUMENT', 'ekmConnectionKeyPath', 'EXTERNAL_VPC');
  assert.equal(ok(await get(v1.name)).externalProtectionLevelOptions.externalKeyUri, uri('ka', 'http'));

  const sw = await softwareKey('sw-patch');
  const onSoftware = await patch(
    `${sw}/cryptoKeyVersions/1`,
    'externalProtectionLevelOptions.externalKeyUri',
    {
      externalProtectionLevelOptions: { externalKeyUri: 'https://ekm.example.com/v0/keys/k' },
    },
  );
  assertError(onSoftware, 400, 'INVALID_ARGUMENT', 'externalKeyUri', 'EXTERNAL', 'SOFTWARE');
  assert.equal(ok(await get(`${sw}/cryptoKeyVersions/1`)).externalProtectionLevelOptions, undefined);
});

let scheduled: { name: string; destroyTime: string };
let scheduledByJob: string;

test('destroy schedules destruction at now + destroyScheduledDuration; destroying twice is refused', async () => {
  const key = await softwareKey('doomed', { destroyScheduledDuration: '86400s' });
  const v1 = `${key}/cryptoKeyVersions/1`;
  const before = nowMs();
  const d = ok(await s.call('POST', `/v1/${v1}:destroy`, {}));
  const after = nowMs();
  assert.equal(d.state, 'DESTROY_SCHEDULED');
  assert.match(d.destroyTime, ISO);
  const t = Date.parse(d.destroyTime);
  assert.ok(t >= before + DAY && t <= after + DAY, `destroyTime ${d.destroyTime} is not now + 1 day`);
  assert.equal(d.destroyEventTime, undefined);
  assert.deepEqual(ok(await get(v1)), d);
  assert.equal(ok(await get(key)).primary.state, 'DESTROY_SCHEDULED');
  const twice = await s.call('POST', `/v1/${v1}:destroy`, {});
  assertError(twice, 400, 'FAILED_PRECONDITION', v1, 'DESTROY_SCHEDULED');
  // Patching state while scheduled for destruction is refused until restored.
  assertError(
    await patch(v1, 'state', { state: 'ENABLED' }),
    400,
    'FAILED_PRECONDITION',
    'DESTROY_SCHEDULED',
    v1,
  );
  assertError(
    await patch(v1, 'state', { state: 'DISABLED' }),
    400,
    'FAILED_PRECONDITION',
    'DESTROY_SCHEDULED',
  );
  assertError(await s.call('POST', `/v1/${v1}:destroy`, { colour: 1 }), 400, 'INVALID_ARGUMENT', '"colour"');
  assertError(await s.call('POST', `/v1/${key}/cryptoKeyVersions/7:destroy`, {}), 404, 'NOT_FOUND');

  // The 30-day default, on another key.
  const dflt = await softwareKey('doomed-30');
  const t0 = nowMs();
  const d30 = ok(await s.call('POST', `/v1/${dflt}/cryptoKeyVersions/1:destroy`, {}));
  const t1 = nowMs();
  const t30 = Date.parse(d30.destroyTime);
  assert.ok(t30 >= t0 + 30 * DAY && t30 <= t1 + 30 * DAY, d30.destroyTime);
  scheduled = { name: d30.name, destroyTime: d30.destroyTime };

  // One more, left alone so that only the scheduled job can finish it.
  const byJob = await softwareKey('doomed-job');
  ok(await s.call('POST', `/v1/${byJob}/cryptoKeyVersions/1:destroy`, {}));
  scheduledByJob = `${byJob}/cryptoKeyVersions/1`;
});

test('restore: DESTROY_SCHEDULED → DISABLED with destroyTime cleared; only scheduled versions restore', async () => {
  const key = await softwareKey('restored');
  const v1 = `${key}/cryptoKeyVersions/1`;
  assertError(await s.call('POST', `/v1/${v1}:restore`, {}), 400, 'FAILED_PRECONDITION', 'ENABLED');
  ok(await s.call('POST', `/v1/${v1}:destroy`, {}));
  const r = ok(await s.call('POST', `/v1/${v1}:restore`, {}));
  assert.equal(r.state, 'DISABLED');
  assert.equal(r.destroyTime, undefined);
  assert.equal(r.destroyEventTime, undefined);
  assert.deepEqual(ok(await get(v1)), r);
  assertError(await s.call('POST', `/v1/${v1}:restore`, {}), 400, 'FAILED_PRECONDITION', 'DISABLED');
  // A disabled version may be destroyed, restored, enabled again.
  ok(await s.call('POST', `/v1/${v1}:destroy`, {}));
  ok(await s.call('POST', `/v1/${v1}:restore`, {}));
  assert.equal(ok(await patch(v1, 'state', { state: 'ENABLED' })).state, 'ENABLED');
});

test('past its destroyTime a version reads as DESTROYED, with destroyEventTime and no destroyTime', async () => {
  s.advance(31 * DAY);
  const v = ok(await get(scheduled.name));
  assert.equal(v.state, 'DESTROYED');
  assert.equal(v.destroyTime, undefined);
  assert.match(v.destroyEventTime, ISO);
  assert.ok(Date.parse(v.destroyEventTime) >= Date.parse(scheduled.destroyTime));
  const keyName = scheduled.name.slice(0, scheduled.name.lastIndexOf('/cryptoKeyVersions/'));
  assert.equal(ok(await get(keyName)).primary.state, 'DESTROYED');
  const list = ok(await s.call('GET', `/v1/${keyName}/cryptoKeyVersions`));
  assert.equal(list.cryptoKeyVersions[0].state, 'DESTROYED');
  // The material is gone from the store.
  const stored = await s.gateway.deps.store.get<Record<string, unknown>>(scheduled.name);
  assert.equal(stored?.state, 'DESTROYED');
  assert.equal(stored?.material, undefined);
});

test('POST /health/tasks:run finishes due destructions and reports them', async () => {
  const before = await s.gateway.deps.store.get<Record<string, unknown>>(scheduledByJob);
  assert.equal(before?.state, 'DESTROY_SCHEDULED', 'nothing read this version since it became due');
  const run = ok(await s.call('POST', '/health/tasks:run', {}));
  assert.ok(run.destroyed.includes(scheduledByJob), JSON.stringify(run));
  const stored = await s.gateway.deps.store.get<Record<string, unknown>>(scheduledByJob);
  assert.equal(stored?.state, 'DESTROYED');
  assert.equal(stored?.material, undefined);
  assert.equal(stored?.destroyTime, undefined);
  // Nothing left to do.
  const again = ok(await s.call('POST', '/health/tasks:run', {}));
  assert.deepEqual(again.destroyed, []);
});

test('DESTROYED is terminal: restore, destroy and state changes are refused', async () => {
  for (const v of [scheduled.name, scheduledByJob]) {
    assertError(await s.call('POST', `/v1/${v}:restore`, {}), 400, 'FAILED_PRECONDITION', 'DESTROYED');
    assertError(await s.call('POST', `/v1/${v}:destroy`, {}), 400, 'FAILED_PRECONDITION', 'DESTROYED');
    assertError(await patch(v, 'state', { state: 'ENABLED' }), 400, 'FAILED_PRECONDITION', 'DESTROYED');
    assertError(await patch(v, 'state', { state: 'DISABLED' }), 400, 'FAILED_PRECONDITION', 'DESTROYED');
    assert.equal(ok(await get(v)).state, 'DESTROYED');
  }
  // A destroyed external version cannot be pointed elsewhere either.
  const ext = await externalKey('ext-destroyed');
  const v = ok(
    await createVersion(ext, {
      externalProtectionLevelOptions: { externalKeyUri: uri('x') },
    }),
  );
  ok(await s.call('POST', `/v1/${v.name}:destroy`, {}));
  s.advance(31 * DAY);
  const moved = await patch(v.name, 'externalProtectionLevelOptions.externalKeyUri', {
    externalProtectionLevelOptions: { externalKeyUri: uri('y') },
  });
  assertError(moved, 400, 'FAILED_PRECONDITION', 'DESTROYED');
});

test('50 concurrent creates on a key with version 1 give exactly ids 2..51', async () => {
  const key = await softwareKey('busy');
  const results = await Promise.all(Array.from({ length: 50 }, () => createVersion(key)));
  for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.json));
  const ids = results.map((r) => Number(r.json.name.split('/').pop())).sort((a, b) => a - b);
  assert.deepEqual(
    ids,
    Array.from({ length: 50 }, (_, i) => i + 2),
  );
  const list = ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions?pageSize=100`));
  assert.equal(list.totalSize, 51);
  assert.deepEqual(
    list.cryptoKeyVersions.map((v: { name: string }) => v.name.split('/').pop()),
    Array.from({ length: 51 }, (_, i) => String(i + 1)),
  );
  // The next one continues the sequence.
  assert.equal(ok(await createVersion(key)).name, `${key}/cryptoKeyVersions/52`);
});

test('50 concurrent creates on a key created without versions give exactly ids 1..50', async () => {
  const key = await softwareKey('busy-empty', {}, '&skipInitialVersionCreation=true');
  const results = await Promise.all(Array.from({ length: 50 }, () => createVersion(key)));
  for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.json));
  const ids = results.map((r) => Number(r.json.name.split('/').pop())).sort((a, b) => a - b);
  assert.deepEqual(
    ids,
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
  const list = ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions?pageSize=1000`));
  assert.equal(list.totalSize, 50);
  assert.equal(new Set(list.cryptoKeyVersions.map((v: { name: string }) => v.name)).size, 50);
  // Still no primary: creating versions never sets one.
  assert.equal(ok(await get(key)).primary, undefined);
});
