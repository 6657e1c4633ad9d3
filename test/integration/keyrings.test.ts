/** keyRings.create / get / list against the real gateway and the Firestore emulator. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertError, ISO, ok, violationField } from './admin-helpers.js';

let s: TestStack;
let loc: string;
before(async () => {
  s = await startTestStack();
  loc = `/v1/projects/${s.project}/locations/us-east1`;
});
after(() => s.stop());

test('create returns the key ring with its name and createTime; get returns the same', async () => {
  const ring = ok(await s.call('POST', `${loc}/keyRings?keyRingId=ring-A_1`, {}));
  assert.deepEqual(Object.keys(ring).sort(), ['createTime', 'name']);
  assert.equal(ring.name, `projects/${s.project}/locations/us-east1/keyRings/ring-A_1`);
  assert.match(ring.createTime, ISO);
  assert.deepEqual(ok(await s.call('GET', `/v1/${ring.name}`)), ring);
});

test('keyRingId: 63 characters of [a-zA-Z0-9_-] accepted, 64 refused, other characters refused', async () => {
  const id63 = `a${'b'.repeat(61)}Z`;
  assert.equal(id63.length, 63);
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=${id63}`, {}));
  const long = await s.call('POST', `${loc}/keyRings?keyRingId=${'x'.repeat(64)}`, {});
  assertError(long, 400, 'INVALID_ARGUMENT', 'keyRingId', '1 to 63 characters');
  assert.equal(violationField(long), 'keyRingId');
  for (const bad of ['has.dot', 'has%20space', 'slash%2Fin', 'caf%C3%A9', 'star*']) {
    const res = await s.call('POST', `${loc}/keyRings?keyRingId=${bad}`, {});
    assertError(res, 400, 'INVALID_ARGUMENT', 'keyRingId', 'letters, digits');
  }
  // Nothing was created by the refused calls.
  const list = ok(await s.call('GET', `${loc}/keyRings?filter=${encodeURIComponent('name:x OR name:has')}`));
  assert.equal(list.totalSize, 0);
});

test('a missing or empty keyRingId is refused and names the parameter', async () => {
  assertError(await s.call('POST', `${loc}/keyRings`, {}), 400, 'INVALID_ARGUMENT', 'keyRingId', 'required');
  assertError(
    await s.call('POST', `${loc}/keyRings?keyRingId=`, {}),
    400,
    'INVALID_ARGUMENT',
    'keyRingId',
    'required',
  );
});

test('a second create with the same id is ALREADY_EXISTS (409) and does not change the first', async () => {
  const first = ok(await s.call('POST', `${loc}/keyRings?keyRingId=dup`, {}));
  s.advance(1000);
  const again = await s.call('POST', `${loc}/keyRings?keyRingId=dup`, {});
  assertError(again, 409, 'ALREADY_EXISTS', first.name, 'already exists');
  assert.equal(ok(await s.call('GET', `/v1/${first.name}`)).createTime, first.createTime);
});

test('concurrent creates of one id: exactly one succeeds, the others are ALREADY_EXISTS', async () => {
  const results = await Promise.all(
    Array.from({ length: 6 }, () => s.call('POST', `${loc}/keyRings?keyRingId=race`, {})),
  );
  assert.deepEqual(results.map((r) => r.status).sort(), [200, 409, 409, 409, 409, 409]);
  for (const r of results.filter((x) => x.status === 409))
    assertError(r, 409, 'ALREADY_EXISTS', 'keyRings/race');
  const winner = results.find((r) => r.status === 200)!.json;
  assert.deepEqual(ok(await s.call('GET', `/v1/${winner.name}`)), winner);
});

test('body "" (the Node client), {} and no body at all are the empty KeyRing', async () => {
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=empty-string`, undefined, { raw: '""' }));
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=empty-object`, undefined, { raw: '{}' }));
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=no-body`));
  for (const id of ['empty-string', 'empty-object', 'no-body'])
    ok(await s.call('GET', `${loc}/keyRings/${id}`));
});

test('an unknown body field is refused and names the field', async () => {
  const res = await s.call('POST', `${loc}/keyRings?keyRingId=unknown-field`, { colour: 'blue' });
  assertError(res, 400, 'INVALID_ARGUMENT', 'Unknown name "colour"');
  assert.equal(violationField(res), 'colour');
  assertError(await s.call('GET', `${loc}/keyRings/unknown-field`), 404, 'NOT_FOUND');
});

test('a non-object body is refused as INVALID_ARGUMENT', async () => {
  for (const raw of ['[]', '42', '"text"', 'null']) {
    const res = await s.call('POST', `${loc}/keyRings?keyRingId=weird`, undefined, { raw });
    assertError(res, 400, 'INVALID_ARGUMENT', 'JSON');
  }
});

test('get of an unknown key ring is NOT_FOUND (404) naming it', async () => {
  const res = await s.call('GET', `${loc}/keyRings/nope`);
  assertError(res, 404, 'NOT_FOUND', `projects/${s.project}/locations/us-east1/keyRings/nope`);
});

test('key rings live in their location: same id in another location is separate', async () => {
  const other = `/v1/projects/${s.project}/locations/europe-west1`;
  ok(await s.call('POST', `${other}/keyRings?keyRingId=dup`, {}));
  const list = ok(await s.call('GET', `${other}/keyRings`));
  assert.deepEqual(
    list.keyRings.map((r: { name: string }) => r.name),
    [`projects/${s.project}/locations/europe-west1/keyRings/dup`],
  );
  assert.equal(list.totalSize, 1);
  assert.equal(list.nextPageToken, undefined);
});

test('list returns every key ring of the location in name order, with totalSize', async () => {
  const loc2 = `/v1/projects/${s.project}/locations/asia-east1`;
  for (const id of ['c', 'a', 'b']) ok(await s.call('POST', `${loc2}/keyRings?keyRingId=${id}`, ''));
  const list = ok(await s.call('GET', `${loc2}/keyRings?alt=json&pageSize=100`));
  assert.deepEqual(
    list.keyRings.map((r: { name: string }) => r.name.split('/').pop()),
    ['a', 'b', 'c'],
  );
  assert.equal(list.totalSize, 3);
  for (const r of list.keyRings) assert.match(r.createTime, ISO);
});

test('list of a location with no key rings is an empty page, not an error', async () => {
  const list = ok(await s.call('GET', `/v1/projects/${s.project}/locations/nowhere-1/keyRings`));
  assert.deepEqual(list.keyRings ?? [], []);
  assert.equal(list.totalSize, 0);
});
