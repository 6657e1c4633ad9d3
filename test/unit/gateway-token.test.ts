/** OpenEKM's token towards EKMs (shared/access/outgoing.ts): reused per audience within its validity, bounded cache. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { GatewayIdentity } from '../../shared/access/outgoing.js';

async function identity(now: () => number, max?: number): Promise<GatewayIdentity> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'k1', alg: 'ES256' };
  return new GatewayIdentity(
    { email: 'gw@example.com', issuer: 'https://gw.example.com', keys: [jwk] },
    now,
    max,
  );
}

test('one token per audience is reused until a minute before it expires, then renewed', async () => {
  let now = 1_700_000_000_000;
  const id = await identity(() => now);
  const [a1, a2] = await Promise.all([id.tokenFor('https://ekm-a'), id.tokenFor('https://ekm-a')]);
  assert.equal(a1, a2, 'concurrent callers share one signature');
  const b = await id.tokenFor('https://ekm-b');
  assert.notEqual(a1, b);
  assert.equal(decodeJwt(b).aud, 'https://ekm-b');
  now += 239_000; // 3 min 59 s: still more than a minute left
  assert.equal(await id.tokenFor('https://ekm-a'), a1);
  now += 2_000; // past the renewal time
  const a3 = await id.tokenFor('https://ekm-a');
  assert.notEqual(a3, a1);
  const claims = decodeJwt(a3);
  assert.equal(claims.exp! - claims.iat!, 300);
  assert.equal(claims.iat, Math.floor(now / 1000));
});

test('the token cache is bounded: the least recently used audience is dropped', async () => {
  const id = await identity(Date.now, 3);
  const first = await id.tokenFor('https://ekm-0');
  for (let i = 1; i <= 5; i++) await id.tokenFor(`https://ekm-${i}`);
  assert.equal(id.cachedAudiences, 3);
  // ekm-0 was evicted: it gets a newly signed token (ES256 signatures differ each time).
  assert.notEqual(await id.tokenFor('https://ekm-0'), first);
  assert.equal(id.cachedAudiences, 3);
});
