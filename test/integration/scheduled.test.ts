/** The scheduled job (POST /health/tasks:run): due destructions and due rotations, against the real emulator. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let s: TestStack;
let ring: string;
const HOUR = 3600_000;

before(async () => {
  s = await startTestStack();
  ring = `/v1/projects/${s.project}/locations/europe-west1/keyRings/sched`;
  assert.equal(
    (await s.call('POST', `/v1/projects/${s.project}/locations/europe-west1/keyRings?keyRingId=sched`, {}))
      .status,
    200,
  );
});
after(() => s.stop());

test('a due rotation makes a new primary and advances nextRotationTime by the period', async () => {
  const next = new Date(s.gateway.deps.now().getTime() + HOUR);
  const created = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=rotating`, {
    purpose: 'ENCRYPT_DECRYPT',
    rotationPeriod: '86400s',
    nextRotationTime: next.toISOString(),
  });
  assert.equal(created.status, 200, JSON.stringify(created.json));
  const once = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=once`, {
    purpose: 'ENCRYPT_DECRYPT',
    nextRotationTime: next.toISOString(),
  });
  assert.equal(once.status, 200, JSON.stringify(once.json));

  // Not due yet: nothing happens.
  let run = await s.call('POST', '/health/tasks:run', {});
  assert.equal(run.status, 200);
  assert.deepEqual(run.json.rotated, []);

  s.advance(2 * HOUR);
  run = await s.call('POST', '/health/tasks:run', {});
  assert.equal(run.status, 200, JSON.stringify(run.json));
  assert.deepEqual(
    [...run.json.rotated].sort(),
    [`${created.json.name}/cryptoKeyVersions/2`, `${once.json.name}/cryptoKeyVersions/2`].sort(),
  );
  const key = await s.call('GET', `${ring}/cryptoKeys/rotating`);
  assert.equal(key.json.primary.name, `${created.json.name}/cryptoKeyVersions/2`);
  assert.equal(key.json.nextRotationTime, new Date(next.getTime() + 24 * HOUR).toISOString());
  const oneTime = await s.call('GET', `${ring}/cryptoKeys/once`);
  assert.equal(oneTime.json.primary.name, `${once.json.name}/cryptoKeyVersions/2`);
  assert.equal(oneTime.json.nextRotationTime, undefined);

  // Running again at the same time rotates nothing more.
  run = await s.call('POST', '/health/tasks:run', {});
  assert.deepEqual(run.json.rotated, []);
});

test('the job needs a token', async () => {
  const run = await s.call('POST', '/health/tasks:run', {}, { token: '' });
  assert.equal(run.status, 401);
  assert.equal(run.json.error.status, 'UNAUTHENTICATED');
});

test('a due destruction is finished by the job and reported', async () => {
  const key = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=doomed`, {
    purpose: 'ENCRYPT_DECRYPT',
    destroyScheduledDuration: '86400s',
  });
  assert.equal(key.status, 200);
  const v1 = `${key.json.name}/cryptoKeyVersions/1`;
  const d = await s.call('POST', `/v1/${v1}:destroy`, {});
  assert.equal(d.json.state, 'DESTROY_SCHEDULED');
  s.advance(25 * HOUR);
  const run = await s.call('POST', '/health/tasks:run', {});
  assert.ok(run.json.destroyed.includes(v1), JSON.stringify(run.json));
  const stored = await s.gateway.deps.store.get<Record<string, unknown>>(v1);
  assert.equal(stored?.state, 'DESTROYED');
  assert.equal(stored?.material, undefined, 'destroyed versions keep no key material');
});
