/**
 * Unwrapping imported keys and checking their material (shared/crypto/key-import.ts), and the keyed fingerprint
 * re-imports are checked against (shared/crypto/material.ts), without a server: wrapping with node:crypto for
 * every method, wrapped keys that do not open or have the wrong shape, and each kind of material that must be
 * refused.
 */
import assert from 'node:assert/strict';
import { constants, createCipheriv, generateKeyPairSync, publicEncrypt, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  generateWrappingKey,
  IMPORT_METHODS,
  ImportFailure,
  importedMaterial,
  unwrapKey,
} from '../../../shared/crypto/key-import.js';
import { RootKeyring } from '../../../shared/crypto/material.js';
import { RpcError } from '../../../shared/errors.js';
import type { ImportMethodName } from '../../../shared/resources/types.js';

function wrap(pem: string, method: ImportMethodName, material: Buffer, hash?: 'sha1' | 'sha256'): Buffer {
  const spec = IMPORT_METHODS[method]!;
  const oaep = (b: Buffer) =>
    publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash ?? spec.hash }, b);
  if (!spec.aes) return oaep(material);
  const aes = randomBytes(32);
  const c = createCipheriv('id-aes256-wrap-pad', aes, Buffer.from('A65959A6', 'hex'));
  return Buffer.concat([oaep(aes), c.update(material), c.final()]);
}

const pairs = new Map<ImportMethodName, { publicKeyPem: string; privateKeyDer: Buffer }>();
async function pair(method: ImportMethodName) {
  const p = pairs.get(method) ?? (await generateWrappingKey(method));
  pairs.set(method, p);
  return { publicKeyPem: p.publicKeyPem, privateKeyDer: Buffer.from(p.privateKeyDer) };
}

test('every method unwraps what node:crypto wrapped, for material of several lengths', async () => {
  for (const method of Object.keys(IMPORT_METHODS) as ImportMethodName[]) {
    const { publicKeyPem, privateKeyDer } = await pair(method);
    for (const length of [16, 20, 32, 37, 64]) {
      const material = randomBytes(length);
      assert.deepEqual(
        unwrapKey(method, privateKeyDer, wrap(publicKeyPem, method, material), 'wrappedKey'),
        material,
      );
    }
  }
});

test('a wrapped key that does not open is an ImportFailure; one of the wrong shape is INVALID_ARGUMENT', async () => {
  const method = 'RSA_OAEP_3072_SHA256_AES_256';
  const { publicKeyPem, privateKeyDer } = await pair(method);
  const other = await pair('RSA_OAEP_3072_SHA1_AES_256');
  const fails = (wrapped: Buffer, m: ImportMethodName = method) =>
    assert.throws(() => unwrapKey(m, privateKeyDer, wrapped, 'wrappedKey'), ImportFailure);
  fails(wrap(other.publicKeyPem, method, randomBytes(32)));
  fails(wrap(publicKeyPem, method, randomBytes(32), 'sha1'));
  const good = wrap(publicKeyPem, method, randomBytes(32));
  const tampered = Buffer.from(good);
  tampered[tampered.length - 1]! ^= 1;
  fails(tampered);
  const invalid = (wrapped: Buffer, m: ImportMethodName = method) =>
    assert.throws(
      () => unwrapKey(m, privateKeyDer, wrapped, 'wrappedKey'),
      (e: unknown) => e instanceof RpcError && e.code === 'INVALID_ARGUMENT',
    );
  invalid(good.subarray(0, 384));
  invalid(good.subarray(0, good.length - 4));
  invalid(good, 'RSA_OAEP_3072_SHA256');
});

test('material must fit the algorithm: lengths, PKCS#8, key type, curve and modulus size', () => {
  const fails = (algorithm: Parameters<typeof importedMaterial>[0], material: Buffer, re: RegExp) =>
    assert.throws(
      () => importedMaterial(algorithm, material),
      (e: unknown) => e instanceof ImportFailure && re.test(e.message),
    );
  assert.equal(importedMaterial('GOOGLE_SYMMETRIC_ENCRYPTION', randomBytes(32)).length, 32);
  fails('GOOGLE_SYMMETRIC_ENCRYPTION', randomBytes(31), /32 raw bytes/);
  assert.equal(importedMaterial('HMAC_SHA384', randomBytes(48)).length, 48);
  fails('HMAC_SHA384', randomBytes(32), /48 raw bytes/);
  fails('AES_128_GCM', randomBytes(32), /16 raw bytes/);
  fails('EC_SIGN_P256_SHA256', randomBytes(64), /PKCS#8/);
  const der = (k: { privateKey: { export(o: object): unknown } }) =>
    k.privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
  const p256 = der(generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  assert.ok(importedMaterial('EC_SIGN_P256_SHA256', p256).length > 0);
  fails('EC_SIGN_P384_SHA384', p256, /P-384.*prime256v1/);
  const ed = der(generateKeyPairSync('ed25519'));
  assert.ok(importedMaterial('EC_SIGN_ED25519', ed).length > 0);
  fails('EC_SIGN_P256_SHA256', ed, /ed25519/);
  const rsa = der(generateKeyPairSync('rsa', { modulusLength: 2048 }));
  assert.ok(importedMaterial('RSA_DECRYPT_OAEP_2048_SHA256', rsa).length > 0);
  fails('RSA_SIGN_PSS_3072_SHA256', rsa, /3072 bits.*2048 bits/);
  const pss = der(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }));
  fails('RSA_SIGN_PSS_2048_SHA256', pss, /RSA-PSS key/);
});

test('the import fingerprint recognises the same material on the same version only, under the root key it names', () => {
  const keys = new RootKeyring([{ id: 'a', key: randomBytes(32) }]);
  const name = 'projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1';
  const material = randomBytes(32);
  const f = keys.fingerprint(material, name);
  assert.equal(f.rootKeyId, 'a');
  assert.ok(!f.value.includes(material.toString('base64')));
  assert.ok(keys.matchesFingerprint(material, name, f));
  assert.ok(!keys.matchesFingerprint(randomBytes(32), name, f));
  assert.ok(!keys.matchesFingerprint(material, `${name.slice(0, -1)}2`, f));
  const rotated = new RootKeyring([
    { id: 'b', key: randomBytes(32) },
    { id: 'a', key: (keys as unknown as { active: { key: Buffer } }).active.key },
  ]);
  assert.ok(rotated.matchesFingerprint(material, name, f));
  const elsewhere = new RootKeyring([{ id: 'c', key: randomBytes(32) }]);
  assert.throws(
    () => elsewhere.matchesFingerprint(material, name, f),
    (e: unknown) => e instanceof RpcError && e.code === 'FAILED_PRECONDITION',
  );
});
