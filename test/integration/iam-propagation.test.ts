/**
 * How fast a changed policy takes effect: at once through the instance that wrote it, within
 * OPENEKM_METADATA_CACHE_MS (1 s by default) through every other instance. Two Gateway instances share one
 * Firestore project: the test stack's (A, over HTTP) and a second one (B) called directly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { localGatewayEnv } from '../../scripts/lib/local-state.js';
import { Gateway } from '../../shared/api/gateway.js';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ok } from './admin-helpers.js';

const ALICE = 'user:alice@example.com';
const BOUND_MS = 1000;

let s: TestStack;
let b: Gateway;
let key: string;
let alice: string;

before(async () => {
  s = await startTestStack();
  const loc = `/v1/projects/${s.project}/locations/global`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=prop`, {}));
  key = `${loc}/keyRings/prop/cryptoKeys/k`;
  ok(await s.call('POST', `${loc}/keyRings/prop/cryptoKeys?cryptoKeyId=k`, { purpose: 'ENCRYPT_DECRYPT' }));
  const env = {
    ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST!, s.stateDir)),
    OPENEKM_FIRESTORE_PROJECT: s.project,
  };
  const config = loadConfig(env);
  assert.equal(config.metadataCacheMs, BOUND_MS);
  b = new Gateway({ config, logger: createLogger('error', () => undefined) });
  alice = await s.token(ALICE);
});
after(async () => {
  await b?.close();
  await s?.stop();
});

/** Alice encrypts through instance B; returns the HTTP status. */
async function encryptViaB(): Promise<number> {
  const res = await b.handle('encrypt', {
    method: 'POST',
    path: `${key}:encrypt`,
    query: new URLSearchParams(),
    headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ plaintext: 'aGk=' })),
  });
  return res.status;
}

async function encryptViaA(): Promise<number> {
  return (await s.call('POST', `${key}:encrypt`, { plaintext: 'aGk=' }, { token: alice })).status;
}

async function setBindings(members: string[]): Promise<void> {
  const bindings = members.length ? [{ role: 'roles/cloudkms.cryptoKeyEncrypter', members }] : [];
  ok(await s.call('POST', `${key}:setIamPolicy`, { policy: { bindings } }));
}

/**
 * Polls B until it answers `status`; returns when (ms after `since`) the first such request started — the
 * request before it, started earlier, still saw the old policy.
 */
async function untilB(status: number, since: number): Promise<number> {
  for (;;) {
    const elapsed = performance.now() - since;
    const got = await encryptViaB();
    if (got === status) return elapsed;
    assert.ok(elapsed < BOUND_MS * 3, `instance B still answers ${got} after ${elapsed.toFixed(0)} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('a revoke is effective at once in the writing instance and within the cache bound in another', async () => {
  await setBindings([ALICE]);
  assert.equal(await encryptViaA(), 200);
  assert.equal((await untilB(200, performance.now())) < BOUND_MS + 250, true);
  // B now holds the policy granting Alice in its cache.
  assert.equal(await encryptViaB(), 200);
  await setBindings([]);
  // Measured from when setIamPolicy returned (the write committed just before).
  const revoked = performance.now();
  assert.equal(await encryptViaA(), 403, 'the writing instance sees the revoke at once');
  const took = await untilB(403, revoked);
  process.stdout.write(
    `revoke took ${took.toFixed(0)} ms to reach the other instance (bound ${BOUND_MS} ms)\n`,
  );
  assert.ok(took <= BOUND_MS + 250, `revoke reached instance B after ${took.toFixed(0)} ms`);
  // And it stays revoked.
  await new Promise((r) => setTimeout(r, BOUND_MS + 50));
  assert.equal(await encryptViaB(), 403);
});

test('a grant reaches another instance within the bound too (denials are cached no longer)', async () => {
  await setBindings([]);
  assert.equal((await untilB(403, performance.now())) < BOUND_MS + 250, true);
  await setBindings([ALICE]);
  const granted = performance.now();
  assert.equal(await encryptViaA(), 200);
  const took = await untilB(200, granted);
  process.stdout.write(
    `grant took ${took.toFixed(0)} ms to reach the other instance (bound ${BOUND_MS} ms)\n`,
  );
  assert.ok(took <= BOUND_MS + 250);
});
