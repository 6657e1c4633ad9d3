/**
 * The list methods (keyRings, cryptoKeys, cryptoKeyVersions): page size and its server cap, page tokens,
 * totalSize, orderBy and filter, against the real gateway and the Firestore emulator.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FirestoreStore } from '../../shared/store/firestore.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertError, ok, violationField } from './admin-helpers.js';

let s: TestStack;
let project: string;
/** 105 key rings r-000 … r-104 in `many`; the keys used by the filter tests in `filters`. */
let many: string;
let ring: string;
let ringName: string;
/** Another key ring, for keys made by single tests (so they never show up in the filter tests). */
let misc: string;

const q = (v: string) => encodeURIComponent(v);

/** Key ring ids {prefix}{0…count-1}, zero-padded to `width` digits. */
const ids = (prefix: string, width: number, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(width, '0')}`);

/** Writes key rings directly to Firestore, in the shape keyRings.create writes. */
async function seedKeyRings(location: string, keyRingIds: string[]) {
  const db = (s.gateway.deps.store as FirestoreStore).db;
  const createTime = s.gateway.deps.now().toISOString();
  for (let start = 0; start < keyRingIds.length; start += 500) {
    const batch = db.batch();
    for (const id of keyRingIds.slice(start, start + 500)) {
      const name = `${location}/keyRings/${id}`;
      batch.create(db.doc(name), { name, createTime });
    }
    await batch.commit();
  }
}
const names = (items: { name: string }[] | undefined) => (items ?? []).map((i) => i.name.split('/').pop());

before(async () => {
  s = await startTestStack();
  project = s.project;
  many = `/v1/projects/${project}/locations/us-central1/keyRings`;
  // A few through the API, the rest written straight to the store in the same shape (keyRings.create is
  // covered by keyrings.test.ts; a hundred transactions would only slow this file down).
  const viaApi = ['r-000', 'r-050', 'r-104'];
  await Promise.all(viaApi.map((id) => s.call('POST', `${many}?keyRingId=${id}`, {}).then(ok)));
  await seedKeyRings(
    `projects/${project}/locations/us-central1`,
    ids('r-', 3, 105).filter((id) => !viaApi.includes(id)),
  );
  ringName = `projects/${project}/locations/us-east1/keyRings/filters`;
  ring = `/v1/${ringName}`;
  ok(await s.call('POST', `/v1/projects/${project}/locations/us-east1/keyRings?keyRingId=filters`, {}));
  ok(await s.call('POST', `/v1/projects/${project}/locations/us-east1/keyRings?keyRingId=misc`, {}));
  misc = `projects/${project}/locations/us-east1/keyRings/misc`;
  const ext = { purpose: 'ENCRYPT_DECRYPT', versionTemplate: { protectionLevel: 'EXTERNAL' } };
  await Promise.all([
    s
      .call('POST', `${ring}/cryptoKeys?cryptoKeyId=k-alpha-sw`, {
        purpose: 'ENCRYPT_DECRYPT',
        labels: { team: 'alpha' },
      })
      .then(ok),
    s
      .call('POST', `${ring}/cryptoKeys?cryptoKeyId=k-beta-sw`, {
        purpose: 'ENCRYPT_DECRYPT',
        labels: { team: 'beta' },
      })
      .then(ok),
    s
      .call('POST', `${ring}/cryptoKeys?cryptoKeyId=k-ext&skipInitialVersionCreation=true`, {
        ...ext,
        labels: { team: 'alpha' },
      })
      .then(ok),
    s
      .call('POST', `${ring}/cryptoKeys?cryptoKeyId=k-nolabel&skipInitialVersionCreation=true`, {
        purpose: 'ENCRYPT_DECRYPT',
      })
      .then(ok),
  ]);
  ok(
    await s.call('PATCH', `${ring}/cryptoKeys/k-beta-sw/cryptoKeyVersions/1?updateMask=state`, {
      state: 'DISABLED',
    }),
  );
});
after(() => s.stop());

test('the default page size is 100; pageSize=0 means the default', async () => {
  for (const query of ['', '?pageSize=0']) {
    const page = ok(await s.call('GET', `${many}${query}`));
    assert.equal(page.keyRings.length, 100, query);
    assert.equal(page.totalSize, 105);
    assert.equal(typeof page.nextPageToken, 'string');
    assert.equal(names(page.keyRings)[0], 'r-000');
    assert.equal(names(page.keyRings)[99], 'r-099');
  }
  const rest = ok(await s.call('GET', `${many}?pageToken=${q(ok(await s.call('GET', many)).nextPageToken)}`));
  assert.deepEqual(names(rest.keyRings), ['r-100', 'r-101', 'r-102', 'r-103', 'r-104']);
  assert.equal(rest.nextPageToken, undefined);
});

test('pageSize above the server cap (1000) is capped, not refused', async () => {
  const loc = `projects/${project}/locations/cap-test`;
  await seedKeyRings(loc, ids('c-', 4, 1001));
  const first = ok(await s.call('GET', `/v1/${loc}/keyRings?pageSize=5000`));
  assert.equal(first.keyRings.length, 1000);
  assert.equal(first.totalSize, 1001);
  assert.equal(typeof first.nextPageToken, 'string');
  const second = ok(
    await s.call('GET', `/v1/${loc}/keyRings?pageSize=5000&pageToken=${q(first.nextPageToken)}`),
  );
  assert.deepEqual(names(second.keyRings), ['c-1000']);
  assert.equal(second.nextPageToken, undefined);
});

test('a malformed pageSize is INVALID_ARGUMENT naming pageSize', async () => {
  for (const v of ['-1', 'ten', '1.5', '9999999999999']) {
    const res = await s.call('GET', `${many}?pageSize=${v}`);
    assertError(res, 400, 'INVALID_ARGUMENT', 'pageSize', 'positive integer');
    assert.equal(violationField(res), 'pageSize');
  }
});

test('pageToken pages through every item exactly once, with a steady totalSize', async () => {
  for (const orderBy of ['name', 'name desc']) {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = ok(
        await s.call(
          'GET',
          `${many}?pageSize=25&orderBy=${q(orderBy)}${token ? `&pageToken=${q(token)}` : ''}`,
        ),
      );
      assert.equal(page.totalSize, 105);
      assert.ok(page.keyRings.length <= 25);
      seen.push(...names(page.keyRings).map(String));
      token = page.nextPageToken;
      pages++;
      assert.ok(pages <= 5, 'paging does not end');
    } while (token);
    assert.equal(pages, 5, orderBy);
    assert.equal(new Set(seen).size, 105, `${orderBy}: duplicates`);
    const expected = ids('r-', 3, 105);
    assert.deepEqual(seen, orderBy === 'name' ? expected : expected.reverse());
  }
});

test('a pageToken is bound to its filter and orderBy; a foreign or garbled token is refused', async () => {
  const first = ok(await s.call('GET', `${many}?pageSize=5&filter=${q('name:r-0')}`));
  assert.equal(first.totalSize, 100);
  const token = q(first.nextPageToken);
  // The same filter continues; the page size may change.
  const next = ok(await s.call('GET', `${many}?pageSize=7&filter=${q('name:r-0')}&pageToken=${token}`));
  assert.deepEqual(names(next.keyRings), ['r-005', 'r-006', 'r-007', 'r-008', 'r-009', 'r-010', 'r-011']);
  const otherFilter = await s.call('GET', `${many}?pageSize=5&filter=${q('name:r-1')}&pageToken=${token}`);
  assertError(otherFilter, 400, 'INVALID_ARGUMENT', 'pageToken', 'different filter');
  assert.equal(violationField(otherFilter), 'pageToken');
  assertError(
    await s.call('GET', `${many}?pageSize=5&pageToken=${token}`),
    400,
    'INVALID_ARGUMENT',
    'pageToken',
  );
  const otherOrder = await s.call(
    'GET',
    `${many}?pageSize=5&filter=${q('name:r-0')}&orderBy=${q('name desc')}&pageToken=${token}`,
  );
  assertError(otherOrder, 400, 'INVALID_ARGUMENT', 'pageToken', 'orderBy');
  for (const garbage of ['abc', q('{"b":"x","a":"y"}'), 'eyJiIjoxfQ']) {
    assertError(
      await s.call('GET', `${many}?pageToken=${garbage}`),
      400,
      'INVALID_ARGUMENT',
      'pageToken',
      'without a pageToken',
    );
  }
});

test('orderBy accepts name and name desc only', async () => {
  const asc = ok(await s.call('GET', `${ring}/cryptoKeys?orderBy=name`));
  assert.deepEqual(names(asc.cryptoKeys), ['k-alpha-sw', 'k-beta-sw', 'k-ext', 'k-nolabel']);
  const desc = ok(await s.call('GET', `${ring}/cryptoKeys?orderBy=${q('name desc')}`));
  assert.deepEqual(names(desc.cryptoKeys), ['k-nolabel', 'k-ext', 'k-beta-sw', 'k-alpha-sw']);
  assert.deepEqual(
    names(ok(await s.call('GET', `${ring}/cryptoKeys?orderBy=${q('name asc')}`)).cryptoKeys),
    names(asc.cryptoKeys),
  );
  for (const orderBy of ['createTime', 'name,createTime', 'name up', 'labels.team desc']) {
    const res = await s.call('GET', `${ring}/cryptoKeys?orderBy=${q(orderBy)}`);
    assertError(res, 400, 'INVALID_ARGUMENT', 'orderBy', '"name" or "name desc"');
    assert.equal(violationField(res), 'orderBy');
  }
});

test('versions 1..12 are ordered numerically, both ways and across pages', async () => {
  const key = `${misc}/cryptoKeys/twelve`;
  ok(await s.call('POST', `/v1/${misc}/cryptoKeys?cryptoKeyId=twelve`, { purpose: 'ENCRYPT_DECRYPT' }));
  for (let i = 2; i <= 12; i++) ok(await s.call('POST', `/v1/${key}/cryptoKeyVersions`, {}));
  const all = Array.from({ length: 12 }, (_, i) => String(i + 1));
  assert.deepEqual(names(ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions`)).cryptoKeyVersions), all);
  assert.deepEqual(
    names(ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions?orderBy=name`)).cryptoKeyVersions),
    all,
  );
  const desc = ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions?orderBy=${q('name desc')}`));
  assert.deepEqual(names(desc.cryptoKeyVersions), [...all].reverse());
  const seen: string[] = [];
  let token = '';
  do {
    const page = ok(
      await s.call('GET', `/v1/${key}/cryptoKeyVersions?pageSize=5${token ? `&pageToken=${q(token)}` : ''}`),
    );
    assert.equal(page.totalSize, 12);
    seen.push(...names(page.cryptoKeyVersions).map(String));
    token = page.nextPageToken ?? '';
  } while (token);
  assert.deepEqual(seen, all);
});

test('filter on cryptoKeys: labels, primary.state, versionTemplate.protectionLevel, NOT, AND', async () => {
  const cases: [string, string[]][] = [
    ['labels.team=alpha', ['k-alpha-sw', 'k-ext']],
    ['primary.state=ENABLED', ['k-alpha-sw']],
    ['primary.state=DISABLED', ['k-beta-sw']],
    ['versionTemplate.protectionLevel=EXTERNAL', ['k-ext']],
    ['NOT labels.team=alpha', ['k-beta-sw', 'k-nolabel']],
    ['-labels.team=alpha', ['k-beta-sw', 'k-nolabel']],
    ['labels.team=alpha AND versionTemplate.protectionLevel=SOFTWARE', ['k-alpha-sw']],
    ['labels.team=alpha versionTemplate.protectionLevel=SOFTWARE', ['k-alpha-sw']],
    ['labels.team=beta OR versionTemplate.protectionLevel=EXTERNAL', ['k-beta-sw', 'k-ext']],
    ['labels:team', ['k-alpha-sw', 'k-beta-sw', 'k-ext']],
    ['name:ALPHA', ['k-alpha-sw']],
    ['(labels.team=alpha OR labels.team=beta) AND primary.state=ENABLED', ['k-alpha-sw']],
    ['labels.team="alpha"', ['k-alpha-sw', 'k-ext']],
    ['labels.team=nobody', []],
  ];
  for (const [filter, want] of cases) {
    const page = ok(await s.call('GET', `${ring}/cryptoKeys?filter=${q(filter)}`));
    assert.deepEqual(names(page.cryptoKeys), want, filter);
    assert.equal(page.totalSize, want.length, filter);
  }
  // versionView is accepted on key lists, as a name or a number; a bad value is refused.
  ok(await s.call('GET', `${ring}/cryptoKeys?versionView=FULL&filter=${q('labels.team=alpha')}`));
  ok(await s.call('GET', `${ring}/cryptoKeys?versionView=1`));
  const badView = await s.call('GET', `${ring}/cryptoKeys?versionView=EVERYTHING`);
  assertError(badView, 400, 'INVALID_ARGUMENT', 'versionView', 'FULL');
  assert.equal(violationField(badView), 'versionView');
});

test('filter on versions: state=DISABLED OR state=ENABLED, and paging within a filter', async () => {
  const key = `${misc}/cryptoKeys/states`;
  ok(await s.call('POST', `/v1/${misc}/cryptoKeys?cryptoKeyId=states`, { purpose: 'ENCRYPT_DECRYPT' }));
  ok(await s.call('POST', `/v1/${key}/cryptoKeyVersions`, { state: 'DISABLED' }));
  ok(await s.call('POST', `/v1/${key}/cryptoKeyVersions`, {}));
  ok(await s.call('POST', `/v1/${key}/cryptoKeyVersions/3:destroy`, {}));
  ok(await s.call('POST', `/v1/${key}/cryptoKeyVersions`, { state: 'DISABLED' }));
  const list = (filter: string) => s.call('GET', `/v1/${key}/cryptoKeyVersions?filter=${q(filter)}`).then(ok);
  assert.deepEqual(names((await list('state=DISABLED OR state=ENABLED')).cryptoKeyVersions), ['1', '2', '4']);
  assert.deepEqual(names((await list('state=DISABLED')).cryptoKeyVersions), ['2', '4']);
  assert.deepEqual(names((await list('state=DESTROY_SCHEDULED')).cryptoKeyVersions), ['3']);
  assert.deepEqual(names((await list('NOT state=ENABLED')).cryptoKeyVersions), ['2', '3', '4']);
  assert.deepEqual(names((await list('state!=ENABLED AND state!=DISABLED')).cryptoKeyVersions), ['3']);
  assert.deepEqual(names((await list('protectionLevel=SOFTWARE AND state=ENABLED')).cryptoKeyVersions), [
    '1',
  ]);
  ok(await s.call('GET', `/v1/${key}/cryptoKeyVersions?view=FULL`));
  const badView = await s.call('GET', `/v1/${key}/cryptoKeyVersions?view=BASIC`);
  assertError(badView, 400, 'INVALID_ARGUMENT', "'view'", 'FULL');
  const page1 = ok(
    await s.call('GET', `/v1/${key}/cryptoKeyVersions?pageSize=1&filter=${q('state=DISABLED')}`),
  );
  assert.deepEqual(names(page1.cryptoKeyVersions), ['2']);
  assert.equal(page1.totalSize, 2);
  const page2 = ok(
    await s.call(
      'GET',
      `/v1/${key}/cryptoKeyVersions?pageSize=1&filter=${q('state=DISABLED')}&pageToken=${q(page1.nextPageToken)}`,
    ),
  );
  assert.deepEqual(names(page2.cryptoKeyVersions), ['4']);
  assert.equal(page2.nextPageToken, undefined);
});

test('filter on key rings by name and createTime', async () => {
  const all = ok(await s.call('GET', `${many}?pageSize=1000`));
  const earliest = all.keyRings.map((r: { createTime: string }) => r.createTime).sort()[0] as string;
  const page = ok(
    await s.call('GET', `${many}?pageSize=1000&filter=${q(`name:r-10 AND createTime>=${earliest}`)}`),
  );
  assert.deepEqual(names(page.keyRings), ['r-100', 'r-101', 'r-102', 'r-103', 'r-104']);
  const after = ok(
    await s.call('GET', `${many}?filter=${q(`createTime>${new Date(Date.now() + 60_000).toISOString()}`)}`),
  );
  assert.equal(after.totalSize, 0);
  const none = ok(await s.call('GET', `${many}?filter=${q('createTime<2000-01-01T00:00:00Z')}`));
  assert.equal(none.totalSize, 0);
});

test('a filter syntax error is INVALID_ARGUMENT naming the filter and where it went wrong', async () => {
  for (const filter of [
    'labels.team=',
    '(state=ENABLED',
    'state=ENABLED AND',
    'state==ENABLED',
    'AND',
    ')',
  ]) {
    const res = await s.call('GET', `${ring}/cryptoKeys?filter=${q(filter)}`);
    assertError(res, 400, 'INVALID_ARGUMENT', /position|character/i);
    assert.equal(violationField(res), 'filter', filter);
  }
  assertError(await s.call('GET', `${many}?filter=${q('name=(')}`), 400, 'INVALID_ARGUMENT');
  assertError(
    await s.call('GET', `${ring}/cryptoKeys/k-alpha-sw/cryptoKeyVersions?filter=${q('state=')}`),
    400,
    'INVALID_ARGUMENT',
  );
});

test('listing under an unknown parent is NOT_FOUND for keys and versions; a bad parent is INVALID_ARGUMENT', async () => {
  const noRing = `projects/${project}/locations/us-east1/keyRings/none`;
  assertError(await s.call('GET', `/v1/${noRing}/cryptoKeys`), 404, 'NOT_FOUND', noRing);
  const noKey = `${misc}/cryptoKeys/none`;
  assertError(await s.call('GET', `/v1/${noKey}/cryptoKeyVersions`), 404, 'NOT_FOUND', noKey);
  assertError(await s.call('GET', `/v1/${noRing}/cryptoKeys/k/cryptoKeyVersions`), 404, 'NOT_FOUND');
  assertError(
    await s.call('GET', `${ring}/cryptoKeys/bad.key/cryptoKeyVersions`),
    400,
    'INVALID_ARGUMENT',
    'crypto key',
  );
  assertError(
    await s.call('GET', `/v1/projects/${project}/locations/bad loc/keyRings`),
    400,
    'INVALID_ARGUMENT',
    'location',
  );
  // Unknown parameters and unknown-parent errors win over list parameters.
  assertError(
    await s.call('GET', `/v1/${noRing}/cryptoKeys?pageSize=5&filter=${q('labels.a=b')}`),
    404,
    'NOT_FOUND',
  );
  assertError(await s.call('GET', `${ring}/cryptoKeys?page_size=5`), 400, 'INVALID_ARGUMENT', '"page_size"');
});
