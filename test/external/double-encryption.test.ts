/**
 * Double encryption of EXTERNAL versions, shown against the real reference EKM: neither OpenEKM's store plus its
 * root key nor the EKM alone can decrypt; destroying the version crypto-shreds its data while the EKM key lives
 * on; a new version on the same URI cannot read the old one's ciphertexts; moved ciphertexts fail; every single
 * bit flip of a sample ciphertext is refused; 64 KiB plaintext and AAD round-trip through both protocols.
 */
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { RequestContext } from '../../shared/context.js';
import { open, parseCiphertext, SEALED_DEK_BYTES } from '../../shared/crypto/ciphertext.js';
import { decrypt } from '../../shared/operations/crypto.js';
import { ekmAad } from '../../shared/operations/external.js';
import type { StoredCryptoKeyVersion } from '../../shared/resources/types.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { addVersion, assertBland, BLAND, b64, externalKey, keyRing, nameOf } from './ext-helpers.js';

let s: TestStack;
let ring: string;

before(async () => {
  s = await startTestStack({
    ekm: true,
    ekmTimeoutMs: 2000,
    // The bit flips make ~1,000 EKM calls in a few seconds: above the default EKM quota of the project.
    env: { OPENEKM_EKM_QUOTA: JSON.stringify({ default: 100_000 }) },
  });
  ring = await keyRing(s, 'double');
});
after(() => s.stop());

function coreContext(): RequestContext {
  return {
    caller: { principal: 'user:owner@openekm.local', issuer: 'test' },
    requestId: 'core-test',
    signal: AbortSignal.timeout(20_000),
    // The gateway's clock, which the destroy test moves forward.
    deadline: s.gateway.deps.now().getTime() + 20_000,
    reason: 'CUSTOMER_INITIATED_ACCESS',
  };
}

async function encrypt(keyPath: string, plaintext: Buffer, aad: Buffer) {
  const res = await s.call('POST', `${keyPath}:encrypt`, {
    plaintext: b64(plaintext),
    additionalAuthenticatedData: b64(aad),
  });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return Buffer.from(res.json.ciphertext, 'base64');
}

function decryptCall(keyPath: string, ciphertext: Buffer, aad: Buffer) {
  return s.call('POST', `${keyPath}:decrypt`, {
    ciphertext: b64(ciphertext),
    additionalAuthenticatedData: b64(aad),
  });
}

async function storedVersion(name: string): Promise<StoredCryptoKeyVersion> {
  const v = await s.gateway.deps.store.get<StoredCryptoKeyVersion & Record<string, unknown>>(name);
  assert.ok(v, `${name} is stored`);
  return v;
}

for (const protocol of ['google', 'xks'] as const) {
  describe(`${protocol}`, () => {
    const aad = Buffer.from('tenant=blue');
    const plaintext = Buffer.from('the secret both parties guard');
    let key: string;
    let version: string;
    let uri: string;
    let ciphertext: Buffer;

    before(async () => {
      const keyId = `double-${protocol}`;
      await s.ekm!.ekm.admin.createKey(keyId);
      uri = s.ekm!.keyUri(keyId, protocol, 'http');
      ({ key, version } = await externalKey(s, ring, keyId, uri));
      ciphertext = await encrypt(key, plaintext, aad);
    });

    test('the store plus the root key alone cannot decrypt: the key-protection block is not the sealed data key', async () => {
      const parsed = parseCiphertext(ciphertext);
      assert.equal(parsed.protectionLevel, 3);
      assert.notEqual(parsed.keyBlock.length, SEALED_DEK_BYTES, 'the block is the EKM-wrapped form');
      const stored = await storedVersion(version);
      assert.ok(stored.material, 'the version has internal material, stored sealed');
      const material = s.gateway.deps.rootKeys.unseal(stored.material, version);
      // Everything OpenEKM holds, without the EKM's unwrap: refused.
      await assert.rejects(open({ parsed, versionName: version, material, aad }), (e: Error) =>
        e.message.startsWith('Decryption failed'),
      );
      // Nor is any 64-byte window of the block a sealed data key these keys open.
      for (let i = 0; i + SEALED_DEK_BYTES <= parsed.keyBlock.length; i++) {
        await assert.rejects(
          open({
            parsed,
            versionName: version,
            material,
            aad,
            unprotectKey: async () => parsed.keyBlock.subarray(i, i + SEALED_DEK_BYTES),
          }),
        );
      }
    });

    test('the EKM alone yields only the sealed data key, never the plaintext', async () => {
      const parsed = parseCiphertext(ciphertext);
      const ctx = coreContext();
      const sealedDek = await s.gateway.deps.ekm.unwrap(
        uri,
        parsed.keyBlock,
        {
          versionName: version,
          reason: 'CUSTOMER_INITIATED_ACCESS',
          principal: ctx.caller.principal,
          requestId: 'unwrap-only',
          aad: ekmAad(version, aad),
        },
        { signal: ctx.signal, deadline: ctx.deadline },
      );
      assert.equal(sealedDek.length, SEALED_DEK_BYTES);
      assert.equal(sealedDek.indexOf(plaintext), -1);
      // Using the unwrapped bytes directly as the data key fails: they are still sealed.
      for (const at of [0, 16, 32]) {
        const d = createDecipheriv('aes-256-gcm', sealedDek.subarray(at, at + 32), parsed.iv);
        d.setAuthTag(parsed.tag);
        d.update(parsed.data);
        assert.throws(() => d.final());
      }
      // With the version's internal material as well, it opens: both parts are needed.
      const stored = await storedVersion(version);
      const material = s.gateway.deps.rootKeys.unseal(stored.material!, version);
      const opened = await open({
        parsed,
        versionName: version,
        material,
        aad,
        unprotectKey: async () => sealedDek,
      });
      assert.deepEqual(opened, plaintext);
    });

    test('moved to another key, another version or other AAD, the ciphertext fails', async () => {
      // Another crypto key on the very same EKM key, version 1 as well.
      const other = await externalKey(s, ring, `double-other-${protocol}`, uri);
      assertBland(await decryptCall(other.key, ciphertext, aad));
      assertBland(await decryptCall(key, ciphertext, Buffer.from('tenant=red')));
      assertBland(await decryptCall(key, ciphertext, Buffer.alloc(0)));
      // The right place still works.
      const ok = await decryptCall(key, ciphertext, aad);
      assert.equal(ok.status, 200, JSON.stringify(ok.json));
      assert.equal(Buffer.from(ok.json.plaintext, 'base64').toString(), plaintext.toString());
    });

    test('every single-bit flip of the ciphertext is refused (core decrypt through the real EKM)', async () => {
      const name = nameOf(key);
      const parsed = parseCiphertext(ciphertext);
      const blockEnd = 8 + parsed.keyBlock.length;
      // Flips in the header and the EKM's key-protection block go through the whole decrypt, EKM unwrap included.
      const flips: number[] = [];
      for (let bit = 0; bit < blockEnd * 8; bit++) flips.push(bit);
      const outcomes = new Map<string, number>();
      const worker = async () => {
        for (let bit = flips.pop(); bit !== undefined; bit = flips.pop()) {
          const c = Buffer.from(ciphertext);
          c[bit >> 3]! ^= 1 << (bit & 7);
          try {
            await decrypt(s.gateway.deps, coreContext(), name, {
              ciphertext: c.toString('base64'),
              additionalAuthenticatedData: aad.toString('base64'),
            });
            assert.fail(`bit ${bit} flipped still decrypts`);
          } catch (e) {
            const err = e as { code?: string; message: string };
            const outcome = `${err.code}: ${err.message}`;
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          }
        }
      };
      await Promise.all(Array.from({ length: 4 }, worker));
      assert.deepEqual([...outcomes.keys()], [`INVALID_ARGUMENT: ${BLAND}`], JSON.stringify([...outcomes]));
      assert.equal([...outcomes.values()][0], blockEnd * 8);
      // Flips in the IV, data and tag leave the block intact: the EKM's unwrap of it (once, for real) with the
      // version's material is all that decrypt would use, and every flip is refused there.
      const stored = await storedVersion(version);
      const material = s.gateway.deps.rootKeys.unseal(stored.material!, version);
      const ctx = coreContext();
      const sealedDek = await s.gateway.deps.ekm.unwrap(
        uri,
        parsed.keyBlock,
        {
          versionName: version,
          reason: 'CUSTOMER_INITIATED_ACCESS',
          principal: ctx.caller.principal,
          requestId: 'flips',
          aad: ekmAad(version, aad),
        },
        { signal: ctx.signal, deadline: ctx.deadline },
      );
      for (let bit = blockEnd * 8; bit < ciphertext.length * 8; bit++) {
        const c = Buffer.from(ciphertext);
        c[bit >> 3]! ^= 1 << (bit & 7);
        await assert.rejects(
          open({
            parsed: parseCiphertext(c),
            versionName: version,
            material,
            aad,
            unprotectKey: async () => sealedDek,
          }),
          (e: Error) => e.message === BLAND,
          `bit ${bit}`,
        );
      }
      // Tampering never looks like an identity refusal: the version is still enabled.
      const got = await s.call('GET', `/v1/${version}`);
      assert.equal(got.json.state, 'ENABLED');
    });

    test('64 KiB of plaintext and 64 KiB of AAD round-trip', async () => {
      const big = Buffer.alloc(64 * 1024, 7);
      const bigAad = Buffer.alloc(64 * 1024, 9);
      bigAad[0] = 1;
      const ct = await encrypt(key, big, bigAad);
      const dec = await decryptCall(key, ct, bigAad);
      assert.equal(dec.status, 200, JSON.stringify(dec.json).slice(0, 500));
      assert.ok(Buffer.from(dec.json.plaintext, 'base64').equals(big));
      // One byte more of either is refused before the EKM is called.
      const tooBig = await s.call('POST', `${key}:encrypt`, { plaintext: b64(Buffer.alloc(64 * 1024 + 1)) });
      assert.equal(tooBig.status, 400);
      assert.equal(tooBig.json.error.status, 'INVALID_ARGUMENT');
    });

    test('destroying the version makes its ciphertexts unrecoverable though the EKM key still exists; a new version on the same URI cannot read them', async () => {
      const keyId = `shred-${protocol}`;
      await s.ekm!.ekm.admin.createKey(keyId);
      const shredUri = s.ekm!.keyUri(keyId, protocol, 'http');
      const k = await externalKey(s, ring, keyId, shredUri);
      const ct = await encrypt(k.key, plaintext, aad);
      const destroyed = await s.call('POST', `/v1/${k.version}:destroy`, {});
      assert.equal(destroyed.status, 200, JSON.stringify(destroyed.json));
      s.advance(Date.parse(destroyed.json.destroyTime) - s.gateway.deps.now().getTime() + 60_000);
      const run = await s.call('POST', '/health/tasks:run', {});
      assert.equal(run.status, 200, JSON.stringify(run.json));
      const got = await s.call('GET', `/v1/${k.version}`);
      assert.equal(got.json.state, 'DESTROYED');
      assert.equal((await storedVersion(k.version)).material, undefined, 'the internal material is gone');

      // The EKM key is alive and still unwraps the block...
      assert.equal(s.ekm!.ekm.admin.showKey(keyId).status, 'ENABLED');
      const ctx = coreContext();
      const sealedDek = await s.gateway.deps.ekm.unwrap(
        shredUri,
        parseCiphertext(ct).keyBlock,
        {
          versionName: k.version,
          reason: 'CUSTOMER_INITIATED_ACCESS',
          principal: ctx.caller.principal,
          requestId: 'after-destroy',
          aad: ekmAad(k.version, aad),
        },
        { signal: ctx.signal, deadline: ctx.deadline },
      );
      assert.equal(sealedDek.length, SEALED_DEK_BYTES);
      // ...yet the data cannot be decrypted.
      const dec = await decryptCall(k.key, ct, aad);
      assert.equal(dec.status, 400, JSON.stringify(dec.json));
      assert.equal(dec.json.error.status, 'FAILED_PRECONDITION');
      assert.match(dec.json.error.message, /DESTROYED/);

      // A new version on the same URI: ciphertexts relabelled for it are bland failures.
      const v2 = await addVersion(s, k.key, shredUri);
      assert.equal(v2, `${nameOf(k.key)}/cryptoKeyVersions/2`);
      const relabelled = Buffer.from(ct);
      relabelled.writeUInt32BE(2, 2);
      assertBland(await decryptCall(k.key, relabelled, aad));
      // The new version works for its own ciphertexts.
      const fresh = await encrypt(k.key, plaintext, aad);
      assert.equal((await decryptCall(k.key, fresh, aad)).status, 200);
      // And an undestroyed version's ciphertext relabelled for a sibling on the same URI fails too.
      const v3 = await addVersion(s, k.key, shredUri, false);
      const relabelled3 = Buffer.from(fresh);
      relabelled3.writeUInt32BE(3, 2);
      assert.equal(v3, `${nameOf(k.key)}/cryptoKeyVersions/3`);
      assertBland(await decryptCall(k.key, relabelled3, aad));
    });
  });
}
