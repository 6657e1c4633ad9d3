/** cryptoKeys.create / get / patch / updatePrimaryVersion against the real gateway and the Firestore emulator. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertError, ISO, ok, violationField } from './admin-helpers.js';

let s: TestStack;
/** Key ring paths (with /v1/) in a regional location and in `global`. */
let ring: string;
let globalRing: string;
let ringName: string;
before(async () => {
  s = await startTestStack();
  ringName = `projects/${s.project}/locations/us-east1/keyRings/keys`;
  ring = `/v1/${ringName}`;
  globalRing = `/v1/projects/${s.project}/locations/global/keyRings/g`;
  ok(await s.call('POST', `/v1/projects/${s.project}/locations/us-east1/keyRings?keyRingId=keys`, {}));
  ok(await s.call('POST', `/v1/projects/${s.project}/locations/global/keyRings?keyRingId=g`, {}));
});
after(() => s.stop());

const EXTERNAL = {
  purpose: 'ENCRYPT_DECRYPT',
  versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
};

async function create(id: string, body: unknown, query = '') {
  return s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}${query}`, body);
}

async function assertAbsent(id: string) {
  assertError(await s.call('GET', `${ring}/cryptoKeys/${id}`), 404, 'NOT_FOUND');
}

test('create with defaults: SOFTWARE, GOOGLE_SYMMETRIC_ENCRYPTION, 30 days, version 1 ENABLED and primary', async () => {
  const key = ok(await create('defaults', { purpose: 'ENCRYPT_DECRYPT' }));
  assert.equal(key.name, `${ringName}/cryptoKeys/defaults`);
  assert.equal(key.purpose, 'ENCRYPT_DECRYPT');
  assert.deepEqual(key.versionTemplate, {
    protectionLevel: 'SOFTWARE',
    algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
  });
  assert.equal(key.destroyScheduledDuration, '2592000s');
  assert.match(key.createTime, ISO);
  assert.equal(key.primary.name, `${key.name}/cryptoKeyVersions/1`);
  assert.equal(key.primary.state, 'ENABLED');
  assert.equal(key.primary.protectionLevel, 'SOFTWARE');
  assert.equal(key.primary.algorithm, 'GOOGLE_SYMMETRIC_ENCRYPTION');
  assert.match(key.primary.createTime, ISO);
  assert.match(key.primary.generateTime, ISO);
  assert.equal(key.labels, undefined);
  assert.equal(key.rotationPeriod, undefined);
  for (const internal of ['versionCounter', 'primaryVersionId', 'material']) {
    assert.equal(key[internal], undefined, internal);
    assert.equal(key.primary[internal], undefined, internal);
  }
  // get returns the same resource, primary included.
  assert.deepEqual(ok(await s.call('GET', `/v1/${key.name}`)), key);
  const v1 = ok(await s.call('GET', `/v1/${key.name}/cryptoKeyVersions/1`));
  assert.deepEqual(v1, key.primary);
});

test('skipInitialVersionCreation=True, true and 1 create no version and no primary', async () => {
  for (const [i, value] of ['True', 'true', '1'].entries()) {
    const key = ok(
      await create(`skip-${i}`, { purpose: 'ENCRYPT_DECRYPT' }, `&skipInitialVersionCreation=${value}`),
    );
    assert.equal(key.primary, undefined, value);
    assert.equal(ok(await s.call('GET', `/v1/${key.name}`)).primary, undefined);
    const versions = ok(await s.call('GET', `/v1/${key.name}/cryptoKeyVersions`));
    assert.equal(versions.totalSize, 0, value);
  }
  for (const value of ['False', 'false', '0']) {
    const key = ok(
      await create(`noskip-${value}`, { purpose: 'ENCRYPT_DECRYPT' }, `&skipInitialVersionCreation=${value}`),
    );
    assert.equal(key.primary.state, 'ENABLED', value);
  }
  const bad = await create('skip-bad', { purpose: 'ENCRYPT_DECRYPT' }, '&skipInitialVersionCreation=maybe');
  assertError(bad, 400, 'INVALID_ARGUMENT', 'skipInitialVersionCreation', 'true or false');
  await assertAbsent('skip-bad');
});

test('purpose is required; other purposes need their algorithm; unimplemented ones are UNIMPLEMENTED; a bad enum names the field', async () => {
  assertError(await create('p0', {}), 400, 'INVALID_ARGUMENT', 'purpose is required', 'ENCRYPT_DECRYPT');
  assertError(
    await create('p0', { purpose: 'CRYPTO_KEY_PURPOSE_UNSPECIFIED' }),
    400,
    'INVALID_ARGUMENT',
    'purpose',
  );
  for (const purpose of ['ASYMMETRIC_SIGN', 'ASYMMETRIC_DECRYPT', 'RAW_ENCRYPT_DECRYPT', 'MAC', 5]) {
    const res = await create('p1', { purpose });
    assertError(res, 400, 'INVALID_ARGUMENT', 'versionTemplate.algorithm is required');
    assert.equal(violationField(res), 'versionTemplate.algorithm');
  }
  for (const purpose of ['KEY_ENCAPSULATION', 10]) {
    assertError(
      await create('p1', { purpose }),
      501,
      'UNIMPLEMENTED',
      'KEY_ENCAPSULATION',
      'not implemented',
    );
  }
  const bogus = await create('p2', { purpose: 'ENCRYPT' });
  assertError(bogus, 400, 'INVALID_ARGUMENT', "'purpose'", 'ENCRYPT_DECRYPT');
  const bogusLevel = await create('p2', {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'CLOUD' },
  });
  assertError(bogusLevel, 400, 'INVALID_ARGUMENT', 'versionTemplate.protectionLevel', 'SOFTWARE');
  for (const id of ['p0', 'p1', 'p2']) await assertAbsent(id);
});

test('HSM without a configured token is refused with FAILED_PRECONDITION naming what to configure; EXTERNAL_VPC without an EKM connection with INVALID_ARGUMENT', async () => {
  const hsm = await create('hsm', {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'HSM' },
  });
  assertError(hsm, 400, 'FAILED_PRECONDITION', 'HSM', 'OPENEKM_HSM_MODULE', 'OPENEKM_HSM_PIN_FILE');
  const vpc = await create(
    'vpc',
    { purpose: 'ENCRYPT_DECRYPT', versionTemplate: { protectionLevel: 'EXTERNAL_VPC' } },
    '&skipInitialVersionCreation=true',
  );
  assertError(vpc, 400, 'INVALID_ARGUMENT', 'EXTERNAL_VPC', 'cryptoKeyBackend', 'defaultEkmConnection');
  const hsmInt = await create('hsm', { purpose: 1, versionTemplate: { protectionLevel: 2 } });
  assertError(hsmInt, 400, 'FAILED_PRECONDITION', 'PKCS#11');
  await assertAbsent('hsm');
  await assertAbsent('vpc');
});

test('EXTERNAL needs skipInitialVersionCreation, is refused in global, and has no initial version', async () => {
  const noSkip = await create('ext-noskip', EXTERNAL);
  assertError(noSkip, 400, 'INVALID_ARGUMENT', 'skipInitialVersionCreation=true', 'externalKeyUri');
  await assertAbsent('ext-noskip');
  const global = await s.call(
    'POST',
    `${globalRing}/cryptoKeys?cryptoKeyId=ext&skipInitialVersionCreation=true`,
    EXTERNAL,
  );
  assertError(global, 400, 'INVALID_ARGUMENT', 'global', 'regional');
  assertError(await s.call('GET', `${globalRing}/cryptoKeys/ext`), 404, 'NOT_FOUND');
  // SOFTWARE keys are fine in global.
  ok(await s.call('POST', `${globalRing}/cryptoKeys?cryptoKeyId=sw`, { purpose: 'ENCRYPT_DECRYPT' }));
  const key = ok(await create('ext', EXTERNAL, '&skipInitialVersionCreation=True'));
  assert.deepEqual(key.versionTemplate, {
    protectionLevel: 'EXTERNAL',
    algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION',
  });
  assert.equal(key.primary, undefined);
  // Algorithm defaults to EXTERNAL_SYMMETRIC_ENCRYPTION for EXTERNAL; a SOFTWARE algorithm is refused.
  const dflt = ok(
    await create(
      'ext-dflt',
      { purpose: 'ENCRYPT_DECRYPT', versionTemplate: { protectionLevel: 'EXTERNAL' } },
      '&skipInitialVersionCreation=true',
    ),
  );
  assert.equal(dflt.versionTemplate.algorithm, 'EXTERNAL_SYMMETRIC_ENCRYPTION');
  const wrongAlg = await create(
    'ext-alg',
    {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
    },
    '&skipInitialVersionCreation=true',
  );
  assertError(
    wrongAlg,
    400,
    'INVALID_ARGUMENT',
    'GOOGLE_SYMMETRIC_ENCRYPTION',
    'EXTERNAL_SYMMETRIC_ENCRYPTION',
  );
  const swWrongAlg = await create('sw-alg', {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { algorithm: 'AES_256_GCM' },
  });
  assertError(swWrongAlg, 400, 'INVALID_ARGUMENT', 'AES_256_GCM', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  await assertAbsent('ext-alg');
  await assertAbsent('sw-alg');
});

test('enums given as integers (the Node client) are accepted and answered by name', async () => {
  const key = ok(
    await create(
      'ints',
      { purpose: 1, versionTemplate: { protectionLevel: 3, algorithm: 18 } },
      '&skipInitialVersionCreation=true',
    ),
  );
  assert.equal(key.purpose, 'ENCRYPT_DECRYPT');
  assert.deepEqual(key.versionTemplate, {
    protectionLevel: 'EXTERNAL',
    algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION',
  });
  const strInts = ok(
    await create('str-ints', { purpose: '1', versionTemplate: { protectionLevel: '1', algorithm: '1' } }),
  );
  assert.deepEqual(strInts.versionTemplate, {
    protectionLevel: 'SOFTWARE',
    algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
  });
  assertError(await create('bad-int', { purpose: 99 }), 400, 'INVALID_ARGUMENT', "'purpose'", '99');
});

test('destroyScheduledDuration: 24h to 120 days, a duration string', async () => {
  assert.equal(
    ok(await create('dsd-min', { purpose: 'ENCRYPT_DECRYPT', destroyScheduledDuration: '86400s' }))
      .destroyScheduledDuration,
    '86400s',
  );
  assert.equal(
    ok(await create('dsd-max', { purpose: 'ENCRYPT_DECRYPT', destroyScheduledDuration: '10368000s' }))
      .destroyScheduledDuration,
    '10368000s',
  );
  for (const d of ['86399s', '10368001s', '0s', '10368000.5s', '86399.999s']) {
    const res = await create('dsd-bad', { purpose: 'ENCRYPT_DECRYPT', destroyScheduledDuration: d });
    assertError(res, 400, 'INVALID_ARGUMENT', 'destroyScheduledDuration', '24 hours', '120 days');
  }
  for (const d of ['30d', '86400', 86400, '-86400s']) {
    const res = await create('dsd-bad', { purpose: 'ENCRYPT_DECRYPT', destroyScheduledDuration: d });
    assertError(res, 400, 'INVALID_ARGUMENT', 'destroyScheduledDuration', '"86400s"');
  }
  await assertAbsent('dsd-bad');
});

test('rotationPeriod: at least 24h, needs nextRotationTime, refused for EXTERNAL', async () => {
  const next = new Date(Date.now() + 7 * 86400_000).toISOString();
  const rot = ok(
    await create('rot', { purpose: 'ENCRYPT_DECRYPT', rotationPeriod: '86400s', nextRotationTime: next }),
  );
  assert.equal(rot.rotationPeriod, '86400s');
  assert.equal(rot.nextRotationTime, next);
  const short = await create('rot-bad', {
    purpose: 'ENCRYPT_DECRYPT',
    rotationPeriod: '86399s',
    nextRotationTime: next,
  });
  assertError(short, 400, 'INVALID_ARGUMENT', 'rotationPeriod', '24 hours');
  const alone = await create('rot-bad', { purpose: 'ENCRYPT_DECRYPT', rotationPeriod: '90000s' });
  assertError(alone, 400, 'INVALID_ARGUMENT', 'nextRotationTime is required');
  assert.equal(violationField(alone), 'nextRotationTime');
  const past = await create('rot-bad', {
    purpose: 'ENCRYPT_DECRYPT',
    rotationPeriod: '90000s',
    nextRotationTime: '2001-01-01T00:00:00Z',
  });
  assertError(past, 400, 'INVALID_ARGUMENT', 'nextRotationTime', 'past');
  const badTime = await create('rot-bad', {
    purpose: 'ENCRYPT_DECRYPT',
    rotationPeriod: '90000s',
    nextRotationTime: 'tomorrow',
  });
  assertError(badTime, 400, 'INVALID_ARGUMENT', 'nextRotationTime', 'RFC 3339');
  const ext = await create(
    'rot-bad',
    { ...EXTERNAL, rotationPeriod: '90000s', nextRotationTime: next },
    '&skipInitialVersionCreation=true',
  );
  assertError(ext, 400, 'INVALID_ARGUMENT', 'rotation', 'EXTERNAL');
  await assertAbsent('rot-bad');
});

test('labels: valid keys and values stored; invalid ones refused naming the label', async () => {
  const key = ok(
    await create('labelled', {
      purpose: 'ENCRYPT_DECRYPT',
      labels: { team: 'alpha', 'env-1': '', cost_centre: 'x-9' },
    }),
  );
  assert.deepEqual(key.labels, { team: 'alpha', 'env-1': '', cost_centre: 'x-9' });
  const cases: [unknown, string][] = [
    [{ Team: 'alpha' }, 'Label key "Team"'],
    [{ '1team': 'alpha' }, 'Label key "1team"'],
    [{ team: 'Alpha' }, 'Label value of "team"'],
    [{ team: 'a'.repeat(64) }, 'Label value of "team"'],
    [{ [`k${'a'.repeat(63)}`]: 'v' }, 'Label key'],
    [{ team: 5 }, 'Label value of "team"'],
    [['team'], 'labels must be a map'],
    [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])), 'at most 64'],
  ];
  for (const [labels, message] of cases) {
    const res = await create('labels-bad', { purpose: 'ENCRYPT_DECRYPT', labels });
    assertError(res, 400, 'INVALID_ARGUMENT', message);
  }
  await assertAbsent('labels-bad');
});

test('NOT_FOUND for an unknown key ring; ALREADY_EXISTS for a used id', async () => {
  const res = await s.call(
    'POST',
    `/v1/projects/${s.project}/locations/us-east1/keyRings/none/cryptoKeys?cryptoKeyId=k`,
    {
      purpose: 'ENCRYPT_DECRYPT',
    },
  );
  assertError(res, 404, 'NOT_FOUND', `projects/${s.project}/locations/us-east1/keyRings/none`);
  const first = ok(await create('taken', { purpose: 'ENCRYPT_DECRYPT' }));
  const again = await create('taken', { purpose: 'ENCRYPT_DECRYPT', labels: { x: 'y' } });
  assertError(again, 409, 'ALREADY_EXISTS', first.name);
  assert.deepEqual(ok(await s.call('GET', `/v1/${first.name}`)), first);
  // The refused duplicate did not add a version either.
  assert.equal(ok(await s.call('GET', `/v1/${first.name}/cryptoKeyVersions`)).totalSize, 1);
  assertError(
    await create('', { purpose: 'ENCRYPT_DECRYPT' }),
    400,
    'INVALID_ARGUMENT',
    'cryptoKeyId',
    'required',
  );
  assertError(await create('a.b', { purpose: 'ENCRYPT_DECRYPT' }), 400, 'INVALID_ARGUMENT', 'cryptoKeyId');
  assertError(
    await create(`k${'x'.repeat(63)}`, { purpose: 'ENCRYPT_DECRYPT' }),
    400,
    'INVALID_ARGUMENT',
    'cryptoKeyId',
  );
});

test('concurrent creates of one key id: one key, one initial version, the rest ALREADY_EXISTS', async () => {
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      create('race', { purpose: 'ENCRYPT_DECRYPT', labels: { n: String(i) } }),
    ),
  );
  assert.deepEqual(results.map((r) => r.status).sort(), [200, 409, 409, 409, 409, 409]);
  const winner = results.find((r) => r.status === 200)!.json;
  assert.deepEqual(ok(await s.call('GET', `/v1/${winner.name}`)), winner);
  const versions = ok(await s.call('GET', `/v1/${winner.name}/cryptoKeyVersions`));
  assert.deepEqual(
    versions.cryptoKeyVersions.map((v: { name: string }) => v.name),
    [`${winner.name}/cryptoKeyVersions/1`],
  );
});

test('unknown body fields are refused; importOnly without skipInitialVersionCreation and backends are refused', async () => {
  const unknown = await create('bad-field', { purpose: 'ENCRYPT_DECRYPT', colour: 'red' });
  assertError(unknown, 400, 'INVALID_ARGUMENT', 'Unknown name "colour"');
  const unknownTemplate = await create('bad-field', {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { size: 256 },
  });
  assertError(unknownTemplate, 400, 'INVALID_ARGUMENT', '"size"', 'versionTemplate');
  assertError(
    await create('bad-field', { purpose: 'ENCRYPT_DECRYPT', importOnly: true }),
    400,
    'INVALID_ARGUMENT',
    'importOnly',
    'skipInitialVersionCreation=true',
  );
  const backend = await create('bad-field', {
    purpose: 'ENCRYPT_DECRYPT',
    cryptoKeyBackend: `projects/${s.project}/locations/us-east1/ekmConnections/c`,
  });
  assertError(backend, 400, 'INVALID_ARGUMENT', 'cryptoKeyBackend');
  await assertAbsent('bad-field');
});

test('get of an unknown key is NOT_FOUND naming it', async () => {
  assertError(
    await s.call('GET', `${ring}/cryptoKeys/missing`),
    404,
    'NOT_FOUND',
    `${ringName}/cryptoKeys/missing`,
  );
});

test('patch requires an updateMask and refuses unknown or immutable paths', async () => {
  const key = ok(await create('patch-mask', { purpose: 'ENCRYPT_DECRYPT', labels: { a: 'b' } }));
  const url = `/v1/${key.name}`;
  assertError(
    await s.call('PATCH', url, { labels: {} }),
    400,
    'INVALID_ARGUMENT',
    'updateMask is required',
    'labels',
  );
  assertError(
    await s.call('PATCH', `${url}?updateMask=`, { labels: {} }),
    400,
    'INVALID_ARGUMENT',
    'updateMask is required',
  );
  for (const path of [
    'purpose',
    'versionTemplate.protectionLevel',
    'destroyScheduledDuration',
    'importOnly',
    'createTime',
    'name',
  ]) {
    const res = await s.call('PATCH', `${url}?updateMask=${path}`, {
      purpose: 'MAC',
      versionTemplate: { protectionLevel: 'HSM' },
    });
    assertError(res, 400, 'INVALID_ARGUMENT', path, 'immutable');
    assert.equal(violationField(res), 'updateMask');
  }
  for (const path of ['colour', 'labels.a', 'versionTemplate', 'primary', 'primary.state']) {
    const res = await s.call('PATCH', `${url}?updateMask=${path}`, {});
    assertError(res, 400, 'INVALID_ARGUMENT', `"${path}"`);
  }
  // A refused mask path refuses the whole request, even with a valid path beside it.
  const mixed = await s.call('PATCH', `${url}?updateMask=labels,purpose`, { labels: { c: 'd' } });
  assertError(mixed, 400, 'INVALID_ARGUMENT', 'purpose');
  assert.deepEqual(ok(await s.call('GET', url)), key);
  assertError(
    await s.call('PATCH', `${ring}/cryptoKeys/missing?updateMask=labels`, { labels: {} }),
    404,
    'NOT_FOUND',
    `${ringName}/cryptoKeys/missing`,
  );
  const otherName = await s.call('PATCH', `${url}?updateMask=labels`, {
    name: `${ringName}/cryptoKeys/other`,
    labels: {},
  });
  assertError(otherName, 400, 'INVALID_ARGUMENT', 'name', 'does not match');
});

test('patch labels: set, replace and clear; fields outside the mask are ignored', async () => {
  const key = ok(await create('patch-labels', { purpose: 'ENCRYPT_DECRYPT' }));
  const url = `/v1/${key.name}`;
  const set = ok(
    await s.call('PATCH', `${url}?updateMask=labels`, {
      labels: { team: 'alpha' },
      purpose: 'MAC',
      rotationPeriod: '1s',
    }),
  );
  assert.deepEqual(set.labels, { team: 'alpha' });
  assert.equal(set.purpose, 'ENCRYPT_DECRYPT');
  assert.equal(set.rotationPeriod, undefined);
  assert.equal(set.primary.name, `${key.name}/cryptoKeyVersions/1`);
  const replaced = ok(await s.call('PATCH', `${url}?updateMask=labels`, { labels: { env: 'prod' } }));
  assert.deepEqual(replaced.labels, { env: 'prod' });
  assert.deepEqual(ok(await s.call('GET', url)).labels, { env: 'prod' });
  const cleared = ok(await s.call('PATCH', `${url}?updateMask=labels`, {}));
  assert.equal(cleared.labels, undefined);
  assert.equal(ok(await s.call('GET', url)).labels, undefined);
  const bad = await s.call('PATCH', `${url}?updateMask=labels`, { labels: { BAD: 'x' } });
  assertError(bad, 400, 'INVALID_ARGUMENT', 'Label key "BAD"');
  // The gcloud form: snake_case mask names and a body with only the masked field.
  ok(await s.call('PATCH', `${url}?updateMask=labels&alt=json`, { labels: { a: 'b' } }));
});

test('patch rotationPeriod and nextRotationTime, and clear them', async () => {
  const key = ok(await create('patch-rot', { purpose: 'ENCRYPT_DECRYPT' }));
  const url = `/v1/${key.name}`;
  const next = new Date(Date.now() + 3 * 86400_000).toISOString();
  const alone = await s.call('PATCH', `${url}?updateMask=rotationPeriod`, { rotationPeriod: '86400s' });
  assertError(alone, 400, 'INVALID_ARGUMENT', 'nextRotationTime is required');
  const both = ok(
    await s.call('PATCH', `${url}?updateMask=rotationPeriod,nextRotationTime`, {
      rotationPeriod: '172800s',
      nextRotationTime: next,
    }),
  );
  assert.equal(both.rotationPeriod, '172800s');
  assert.equal(both.nextRotationTime, next);
  // With a nextRotationTime stored, the period alone may change.
  const period = ok(
    await s.call('PATCH', `${url}?updateMask=rotation_period`, { rotationPeriod: '259200s' }),
  );
  assert.equal(period.rotationPeriod, '259200s');
  assert.equal(period.nextRotationTime, next);
  const short = await s.call('PATCH', `${url}?updateMask=rotationPeriod`, { rotationPeriod: '3600s' });
  assertError(short, 400, 'INVALID_ARGUMENT', 'rotationPeriod', '24 hours');
  const cleared = ok(await s.call('PATCH', `${url}?updateMask=rotationPeriod,nextRotationTime`, {}));
  assert.equal(cleared.rotationPeriod, undefined);
  assert.equal(cleared.nextRotationTime, undefined);
  const ext = ok(await create('patch-rot-ext', EXTERNAL, '&skipInitialVersionCreation=true'));
  const extRot = await s.call('PATCH', `/v1/${ext.name}?updateMask=rotationPeriod,nextRotationTime`, {
    rotationPeriod: '86400s',
    nextRotationTime: next,
  });
  assertError(extRot, 400, 'INVALID_ARGUMENT', 'rotation', 'EXTERNAL');
});

test('patch versionTemplate.algorithm where allowed, refused otherwise; protectionLevel is immutable', async () => {
  const sw = ok(await create('patch-alg', { purpose: 'ENCRYPT_DECRYPT' }));
  const same = ok(
    await s.call('PATCH', `/v1/${sw.name}?updateMask=versionTemplate.algorithm`, {
      versionTemplate: { algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
    }),
  );
  assert.deepEqual(same.versionTemplate, {
    protectionLevel: 'SOFTWARE',
    algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
  });
  const other = await s.call('PATCH', `/v1/${sw.name}?updateMask=versionTemplate.algorithm`, {
    versionTemplate: { algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
  });
  assertError(other, 400, 'INVALID_ARGUMENT', 'EXTERNAL_SYMMETRIC_ENCRYPTION', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const missing = await s.call('PATCH', `/v1/${sw.name}?updateMask=versionTemplate.algorithm`, {});
  assertError(missing, 400, 'INVALID_ARGUMENT', 'versionTemplate.algorithm');
  const level = await s.call('PATCH', `/v1/${sw.name}?updateMask=versionTemplate.protectionLevel`, {
    versionTemplate: { protectionLevel: 'EXTERNAL' },
  });
  assertError(level, 400, 'INVALID_ARGUMENT', 'versionTemplate.protectionLevel', 'immutable');
  const ext = ok(await create('patch-alg-ext', EXTERNAL, '&skipInitialVersionCreation=true'));
  const extOk = ok(
    await s.call('PATCH', `/v1/${ext.name}?updateMask=versionTemplate.algorithm`, {
      versionTemplate: { algorithm: 18 },
    }),
  );
  assert.equal(extOk.versionTemplate.algorithm, 'EXTERNAL_SYMMETRIC_ENCRYPTION');
  const extBad = await s.call('PATCH', `/v1/${ext.name}?updateMask=versionTemplate.algorithm`, {
    versionTemplate: { algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
  });
  assertError(extBad, 400, 'INVALID_ARGUMENT', 'EXTERNAL_SYMMETRIC_ENCRYPTION');
  assert.equal(ok(await s.call('GET', `/v1/${ext.name}`)).versionTemplate.protectionLevel, 'EXTERNAL');
});

test('patch keyAccessJustificationsPolicy: set, set empty (refuse all), clear; bad reasons refused', async () => {
  const key = ok(await create('patch-kaj', { purpose: 'ENCRYPT_DECRYPT' }));
  const url = `/v1/${key.name}?updateMask=keyAccessJustificationsPolicy`;
  const set = ok(
    await s.call('PATCH', url, {
      keyAccessJustificationsPolicy: {
        allowedAccessReasons: ['CUSTOMER_INITIATED_ACCESS', 2, 'CUSTOMER_INITIATED_ACCESS'],
      },
    }),
  );
  assert.deepEqual(set.keyAccessJustificationsPolicy, {
    allowedAccessReasons: ['CUSTOMER_INITIATED_ACCESS', 'GOOGLE_INITIATED_SERVICE'],
  });
  assert.deepEqual(
    ok(await s.call('GET', `/v1/${key.name}`)).keyAccessJustificationsPolicy,
    set.keyAccessJustificationsPolicy,
  );
  const empty = ok(
    await s.call('PATCH', url, { keyAccessJustificationsPolicy: { allowedAccessReasons: [] } }),
  );
  assert.deepEqual(empty.keyAccessJustificationsPolicy, { allowedAccessReasons: [] });
  assert.deepEqual(ok(await s.call('GET', `/v1/${key.name}`)).keyAccessJustificationsPolicy, {
    allowedAccessReasons: [],
  });
  const cleared = ok(await s.call('PATCH', url, {}));
  assert.equal(cleared.keyAccessJustificationsPolicy, undefined);
  const bad = await s.call('PATCH', url, {
    keyAccessJustificationsPolicy: { allowedAccessReasons: ['BECAUSE'] },
  });
  assertError(bad, 400, 'INVALID_ARGUMENT', 'allowedAccessReasons[0]', 'CUSTOMER_INITIATED_ACCESS');
  const created = ok(
    await create('kaj-create', {
      purpose: 'ENCRYPT_DECRYPT',
      keyAccessJustificationsPolicy: { allowedAccessReasons: [] },
    }),
  );
  assert.deepEqual(created.keyAccessJustificationsPolicy, { allowedAccessReasons: [] });
});

test('updatePrimaryVersion: validates the id, 404 for an unknown version, changes primary', async () => {
  const key = ok(await create('primary', { purpose: 'ENCRYPT_DECRYPT' }));
  const url = `/v1/${key.name}:updatePrimaryVersion`;
  const v2 = ok(await s.call('POST', `/v1/${key.name}/cryptoKeyVersions`, {}));
  assert.equal(v2.name, `${key.name}/cryptoKeyVersions/2`);
  // Creating a version does not change the primary.
  assert.equal(ok(await s.call('GET', `/v1/${key.name}`)).primary.name, `${key.name}/cryptoKeyVersions/1`);
  assertError(await s.call('POST', url, {}), 400, 'INVALID_ARGUMENT', 'cryptoKeyVersionId is required');
  for (const id of ['abc', '0', '01', '-1', '1/2']) {
    const res = await s.call('POST', url, { cryptoKeyVersionId: id });
    assertError(res, 400, 'INVALID_ARGUMENT', 'cryptoKeyVersionId', `"${id}"`);
    assert.equal(violationField(res), 'cryptoKeyVersionId');
  }
  assertError(
    await s.call('POST', url, { cryptoKeyVersionId: 2 }),
    400,
    'INVALID_ARGUMENT',
    'cryptoKeyVersionId',
  );
  const unknown = await s.call('POST', url, { cryptoKeyVersionId: '9' });
  assertError(unknown, 404, 'NOT_FOUND', `${key.name}/cryptoKeyVersions/9`);
  const updated = ok(await s.call('POST', url, { cryptoKeyVersionId: '2' }));
  assert.equal(updated.primary.name, v2.name);
  assert.equal(updated.primary.state, 'ENABLED');
  assert.equal(ok(await s.call('GET', `/v1/${key.name}`)).primary.name, v2.name);
  // A disabled version may be made primary; primary shows its state.
  ok(await s.call('PATCH', `/v1/${key.name}/cryptoKeyVersions/1?updateMask=state`, { state: 'DISABLED' }));
  const back = ok(await s.call('POST', url, { cryptoKeyVersionId: '1' }));
  assert.equal(back.primary.name, `${key.name}/cryptoKeyVersions/1`);
  assert.equal(back.primary.state, 'DISABLED');
  assertError(
    await s.call('POST', `${ring}/cryptoKeys/missing:updatePrimaryVersion`, { cryptoKeyVersionId: '1' }),
    404,
    'NOT_FOUND',
    `${ringName}/cryptoKeys/missing`,
  );
  // On a key with no versions yet.
  const empty = ok(
    await create('primary-empty', { purpose: 'ENCRYPT_DECRYPT' }, '&skipInitialVersionCreation=true'),
  );
  assertError(
    await s.call('POST', `/v1/${empty.name}:updatePrimaryVersion`, { cryptoKeyVersionId: '1' }),
    404,
    'NOT_FOUND',
  );
  assert.equal(ok(await s.call('GET', `/v1/${empty.name}`)).primary, undefined);
});

test('no partial writes: a refused key create leaves no key and no version; the id stays free', async () => {
  const refused = await create('atomic', { purpose: 'ENCRYPT_DECRYPT', labels: { BAD: 'x' } });
  assertError(refused, 400, 'INVALID_ARGUMENT');
  await assertAbsent('atomic');
  assertError(await s.call('GET', `${ring}/cryptoKeys/atomic/cryptoKeyVersions/1`), 404, 'NOT_FOUND');
  assertError(await s.call('GET', `${ring}/cryptoKeys/atomic/cryptoKeyVersions`), 404, 'NOT_FOUND');
  const key = ok(await create('atomic', { purpose: 'ENCRYPT_DECRYPT' }));
  assert.equal(key.primary.name, `${key.name}/cryptoKeyVersions/1`);
  // A refused patch changes nothing.
  const before = ok(await s.call('GET', `/v1/${key.name}`));
  const badPatch = await s.call('PATCH', `/v1/${key.name}?updateMask=labels,rotationPeriod`, {
    labels: { ok: 'yes' },
    rotationPeriod: '60s',
  });
  assertError(badPatch, 400, 'INVALID_ARGUMENT', 'rotationPeriod');
  assert.deepEqual(ok(await s.call('GET', `/v1/${key.name}`)), before);
});
