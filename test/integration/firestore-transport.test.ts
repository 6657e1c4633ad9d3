/**
 * OPENEKM_FIRESTORE_TRANSPORT: the store works the same over gRPC (the default) and over the Firestore client's
 * REST transport, on the emulator — single reads, collection and collection-group queries, read-modify-write
 * transactions (also conflicting ones), and the quota's increment-then-read-at-write-time lease. A bad value stops
 * the configuration with a message that names the accepted ones.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { FieldValue } from '@google-cloud/firestore';
import { loadConfig } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';
import { FirestoreStore, type FirestoreTransport } from '../../shared/store/firestore.js';

const base = {
  OPENEKM_ROOT_KEYS: `root-1:${randomBytes(32).toString('base64')}`,
  OPENEKM_TRUSTED_ISSUERS: JSON.stringify([{ issuer: 'https://i', audiences: ['a'], jwks: { keys: [] } }]),
};

test('OPENEKM_FIRESTORE_TRANSPORT is grpc unless set to rest; anything else is refused', () => {
  assert.equal(loadConfig(base).firestoreTransport, 'grpc');
  assert.equal(loadConfig({ ...base, OPENEKM_FIRESTORE_TRANSPORT: 'rest' }).firestoreTransport, 'rest');
  assert.equal(loadConfig({ ...base, OPENEKM_FIRESTORE_TRANSPORT: 'grpc' }).firestoreTransport, 'grpc');
  assert.throws(
    () => loadConfig({ ...base, OPENEKM_FIRESTORE_TRANSPORT: 'http2' }),
    (err: unknown) => err instanceof ConfigError && /expected grpc or rest/.test((err as Error).message),
  );
});

for (const transport of ['grpc', 'rest'] as FirestoreTransport[]) {
  test(`the store over ${transport}: reads, queries, transactions and the quota's lease`, async () => {
    const store = new FirestoreStore({
      projectId: `demo-transport-${transport}-${randomBytes(4).toString('hex')}`,
      transport,
    });
    try {
      const settings = (store.db as unknown as { _settings: { preferRest?: boolean } })._settings;
      assert.equal(settings.preferRest, transport === 'rest');
      const ring = 'projects/p/locations/l/keyRings/r';
      await store.transaction(async (tx) => {
        assert.equal(await tx.get(ring), undefined);
        tx.create(ring, { name: ring, n: 0 });
        tx.create(`${ring}/cryptoKeys/a`, { name: 'a', rank: 1 });
        tx.create(`${ring}/cryptoKeys/b`, { name: 'b', rank: 2 });
      });
      assert.deepEqual(await store.get(ring), { name: ring, n: 0 });
      assert.equal(await store.get(`${ring}/cryptoKeys/none`), undefined);
      assert.deepEqual(
        (await store.list<{ name: string }>(ring, 'cryptoKeys')).map((d) => d.name),
        ['a', 'b'],
      );
      assert.deepEqual(
        (await store.findAtMost<{ name: string }>('cryptoKeys', 'rank', 1 as never, 10)).map((d) => d.name),
        ['a'],
      );
      assert.equal((await store.listGroup('cryptoKeys', 10)).length, 2);
      // Conflicting read-modify-write transactions: every increment lands once.
      await Promise.all(
        Array.from({ length: 8 }, () =>
          store.transaction(async (tx) => {
            const doc = await tx.get<{ n: number }>(ring);
            tx.set(ring, { name: ring, n: (doc?.n ?? 0) + 1 });
          }),
        ),
      );
      assert.equal((await store.get<{ n: number }>(ring))?.n, 8);
      // The EKM quota's lease: an increment committed in a batch, read back as of that commit's write time.
      const db = store.db;
      const batch = db.batch();
      batch.set(db.doc('quota/s0'), { used: FieldValue.increment(3) }, { merge: true });
      const [result] = await batch.commit();
      await db.doc('quota/s0').set({ used: FieldValue.increment(5) }, { merge: true });
      const [asOfLease] = await db.runTransaction((t) => t.getAll(db.doc('quota/s0')), {
        readOnly: true,
        readTime: result!.writeTime,
      });
      assert.equal(asOfLease!.get('used'), 3);
      assert.equal((await store.get<{ used: number }>('quota/s0'))?.used, 8);
    } finally {
      await store.close();
    }
  });
}
