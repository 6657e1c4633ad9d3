import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { findSoftHsmModule } from '@openekm/reference-ekm/config';
import { KeyStoreError } from '@openekm/reference-ekm/keystore/key-store';
import { openKeyStore } from '@openekm/reference-ekm/keystore/open';
import pkcs11js from 'pkcs11js';
import { type Backend, requireSoftHsm, skipWithoutSoftHsm, testDirs } from './helpers.js';

const dirs = testDirs('keystores');
after(() => dirs.cleanup());

for (const backend of ['software', 'softhsm'] as Backend[]) {
  test(`${backend}: AES-256-GCM round trips with 12- and 16-byte IVs; tampering is DECRYPT_FAILED`, {
    skip: skipWithoutSoftHsm(backend),
  }, async () => {
    requireSoftHsm(backend);
    const store = openKeyStore({
      backend,
      dataDir: dirs.dataDir(`rt-${backend}`),
      mode: 'test',
      pkcs11: { tokenLabel: `rt-${backend}` },
    });
    try {
      const ref = await store.createKey('k');
      assert.ok(!JSON.stringify(ref).includes('"value"'), 'a reference carries no key material');
      for (const ivLength of [12, 16]) {
        const plaintext = randomBytes(100);
        const aad = randomBytes(20);
        const sealed = await store.encrypt(ref, plaintext, aad, randomBytes(ivLength));
        assert.equal(sealed.iv.length, ivLength);
        assert.equal(sealed.ciphertext.length, 100);
        assert.equal(sealed.tag.length, 16);
        assert.ok((await store.decrypt(ref, sealed, aad)).equals(plaintext));
        const badTag = Buffer.from(sealed.tag);
        badTag[0]! ^= 1;
        await assert.rejects(
          store.decrypt(ref, { ...sealed, tag: badTag }, aad),
          (e: unknown) => e instanceof KeyStoreError && e.failure === 'DECRYPT_FAILED',
        );
        await assert.rejects(
          store.decrypt(ref, sealed, Buffer.from('other')),
          (e: unknown) => e instanceof KeyStoreError && e.failure === 'DECRYPT_FAILED',
        );
      }
      assert.equal(
        (await store.encrypt(ref, Buffer.from('x'), Buffer.alloc(0))).iv.length,
        12,
        'default IV is 96 bits',
      );
      await store.healthCheck();
      await store.destroyKey(ref);
      if (backend === 'softhsm') {
        await assert.rejects(
          store.encrypt(ref, Buffer.from('x'), Buffer.alloc(0)),
          KeyStoreError,
          'destroyed in the token',
        );
      }
    } finally {
      await store.close();
    }
  });
}

test('softhsm: keys are generated in the token as sensitive, non-extractable AES-256 objects', {
  skip: skipWithoutSoftHsm('softhsm'),
}, async () => {
  requireSoftHsm('softhsm');
  const dataDir = dirs.dataDir('attrs');
  const store = openKeyStore({ backend: 'softhsm', dataDir, mode: 'test', pkcs11: { tokenLabel: 'attrs' } });
  const ref = await store.createKey('attr-key');
  await store.close();
  assert.equal(ref.backend, 'softhsm');
  const { readFileSync } = await import('node:fs');
  const pin = readFileSync(`${dataDir}/softhsm/pin`, 'utf8').trim();
  const lib = new pkcs11js.PKCS11();
  lib.load(findSoftHsmModule()!);
  lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const slot = lib
      .C_GetSlotList(true)
      .find((s) => lib.C_GetTokenInfo(s).label.replace(/[\s\0]+$/, '') === 'attrs')!;
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    lib.C_Login(session, pkcs11js.CKU_USER, pin);
    lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_ID, value: Buffer.from(ref.ckaId, 'hex') }]);
    const handle = lib.C_FindObjects(session);
    lib.C_FindObjectsFinal(session);
    assert.ok(handle, 'the key is a token object');
    const attrs = lib.C_GetAttributeValue(session, handle, [
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_VALUE_LEN },
      { type: pkcs11js.CKA_LABEL },
    ]);
    assert.equal(attrs[0]!.value![0], 1, 'CKA_SENSITIVE');
    assert.equal(attrs[1]!.value![0], 0, 'CKA_EXTRACTABLE is false');
    assert.equal(Number((attrs[2]!.value as Buffer).readBigUInt64LE()), 32);
    assert.equal(attrs[3]!.value!.toString(), 'attr-key');
    assert.throws(
      () => lib.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_VALUE }]),
      /CKR_ATTRIBUTE_SENSITIVE/,
    );
  } finally {
    lib.C_Finalize();
    lib.close();
  }
});
