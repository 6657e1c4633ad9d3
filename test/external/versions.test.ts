/**
 * Creating an EXTERNAL version checks its key at the EKM synchronously (Google EKM: a wrap marked
 * isKeyHealthCheck; XKS: metadata requiring ENCRYPT, DECRYPT and ENABLED); on any failure no version exists.
 * Patching externalKeyUri re-checks the new URI and leaves the old one in place when refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import {
  addVersion,
  assertEkmError,
  ekmCallsDuring,
  externalCryptoKey,
  keyRing,
  nameOf,
} from './ext-helpers.js';

let s: TestStack;
let ring: string;

before(async () => {
  s = await startTestStack({ ekm: true, ekmTimeoutMs: 2000 });
  ring = await keyRing(s, 'versions');
});
after(() => s.stop());

async function createVersion(keyPath: string, uri: string) {
  return s.call('POST', `${keyPath}/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: uri },
  });
}

async function versionCount(keyPath: string): Promise<number> {
  const list = await s.call('GET', `${keyPath}/cryptoKeyVersions`);
  assert.equal(list.status, 200, JSON.stringify(list.json));
  return (list.json.cryptoKeyVersions ?? []).length;
}

/** A refused create: the exact error, no EKM-side effect on the key, and no version. */
async function refusedCreate(keyPath: string, uri: string, domain: string) {
  const res = await createVersion(keyPath, uri);
  assertEkmError(res, domain, nameOf(keyPath), uri);
  assert.equal(
    res.json.error.details[0].violations[0].description,
    "The key version's state is not created.",
  );
  assert.equal(await versionCount(keyPath), 0, 'no version was created');
}

for (const protocol of ['google', 'xks'] as const) {
  describe(`${protocol}: version create checks the key`, () => {
    test('an unknown key is EXTERNAL_NOT_FOUND and creates nothing; the next good create gets id 1', async () => {
      const key = await externalCryptoKey(s, ring, `unknown-${protocol}`);
      const keyId = `later-${protocol}`;
      const { calls } = await ekmCallsDuring(s, keyId, () =>
        refusedCreate(key, s.ekm!.keyUri(keyId, protocol), 'EXTERNAL_NOT_FOUND'),
      );
      assert.equal(calls.length, 1, 'one EKM call, not retried');
      await s.ekm!.ekm.admin.createKey(keyId);
      const good = await ekmCallsDuring(s, keyId, async () => {
        const v = await createVersion(key, s.ekm!.keyUri(keyId, protocol));
        assert.equal(v.status, 200, JSON.stringify(v.json));
        assert.equal(v.json.name, `${nameOf(key)}/cryptoKeyVersions/1`);
        assert.equal(v.json.state, 'ENABLED');
        assert.equal(v.json.protectionLevel, 'EXTERNAL');
        assert.equal(v.json.externalProtectionLevelOptions.externalKeyUri, s.ekm!.keyUri(keyId, protocol));
      });
      assert.equal(good.calls.length, 1);
      const check = good.calls[0]!;
      assert.equal(check.outcome, 'OK');
      if (protocol === 'google') {
        assert.equal(check.operation, 'wrap');
        assert.equal(check.healthCheck, true, JSON.stringify(check));
        assert.equal(check.justification, 'GOOGLE_INITIATED_SYSTEM_OPERATION');
        // The project's own EKM identity, not one identity shared by every project.
        assert.equal(check.principal, `service-${s.project}@openekm.local`);
      } else {
        assert.equal(check.operation, 'getKeyMetadata');
      }
      assert.equal(await versionCount(key), 1);
    });

    test('a disabled EKM key is refused', async () => {
      const keyId = `disabled-${protocol}`;
      await s.ekm!.ekm.admin.createKey(keyId);
      await s.ekm!.ekm.admin.setEnabled(keyId, false);
      const key = await externalCryptoKey(s, ring, keyId);
      await refusedCreate(key, s.ekm!.keyUri(keyId, protocol), 'EXTERNAL_PERMISSION_DENIED');
      await s.ekm!.ekm.admin.setEnabled(keyId, true);
      const v = await createVersion(key, s.ekm!.keyUri(keyId, protocol));
      assert.equal(v.status, 200, JSON.stringify(v.json));
      assert.equal(v.json.name, `${nameOf(key)}/cryptoKeyVersions/1`);
    });

    test('a key OpenEKM has no grant on is refused', async () => {
      const keyId = `nogrant-${protocol}`;
      await s.ekm!.ekm.admin.createKey(keyId);
      await s.ekm!.ekm.admin.revoke(
        keyId,
        protocol === 'google' ? s.ekm!.ekm.admin.defaultPrincipal : 'xks:*',
      );
      const key = await externalCryptoKey(s, ring, keyId);
      await refusedCreate(key, s.ekm!.keyUri(keyId, protocol), 'EXTERNAL_PERMISSION_DENIED');
    });
  });
}

test('xks: a key whose usage is ENCRYPT only is refused', async () => {
  const keyId = 'encrypt-only';
  await s.ekm!.ekm.admin.createKey(keyId, ['ENCRYPT']);
  const key = await externalCryptoKey(s, ring, keyId);
  await refusedCreate(key, s.ekm!.keyUri(keyId, 'xks'), 'EXTERNAL_PERMISSION_DENIED');
  const res = await createVersion(key, s.ekm!.keyUri(keyId, 'xks'));
  assert.match(res.json.error.details[0].violations[1].description, /EKM|key manager/);
});

test('a URI outside every declared endpoint is EXTERNAL_KEY_HOST_NOT_WHITELISTED, with no EKM call', async () => {
  const key = await externalCryptoKey(s, ring, 'elsewhere');
  const before = s.ekmLogs.length;
  await refusedCreate(key, 'https://127.0.0.1:1/v0/keys/k1', 'EXTERNAL_KEY_HOST_NOT_WHITELISTED');
  // Same host and port as a declared endpoint but outside its path prefix.
  const origin = new URL(s.ekm!.keyUri('k1', 'google')).origin;
  await refusedCreate(key, `${origin}/v1/keys/k1`, 'EXTERNAL_KEY_HOST_NOT_WHITELISTED');
  assert.equal(s.ekmLogs.length, before, 'nothing reached the EKM');
});

test('a malformed key path under a declared prefix is EXTERNAL_KEY_URI_INVALID, with no EKM call', async () => {
  const key = await externalCryptoKey(s, ring, 'malformed');
  const before = s.ekmLogs.length;
  const google = s.ekm!.keyUri('x', 'google').slice(0, -1);
  const xks = s.ekm!.keyUri('x', 'xks').slice(0, -1);
  await refusedCreate(key, `${google}a..b`, 'EXTERNAL_KEY_URI_INVALID');
  await refusedCreate(key, `${xks}a/b`, 'EXTERNAL_KEY_URI_INVALID');
  await refusedCreate(key, `${xks}bad*id`, 'EXTERNAL_KEY_URI_INVALID');
  await refusedCreate(key, `${xks}${'k'.repeat(129)}`, 'EXTERNAL_KEY_URI_INVALID');
  assert.equal(s.ekmLogs.length, before, 'nothing reached the EKM');
  // Not a URI at all is a plain INVALID_ARGUMENT on the field, before any EKM logic.
  const bad = await createVersion(key, 'not a uri');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.status, 'INVALID_ARGUMENT');
});

for (const protocol of ['google', 'xks'] as const) {
  test(`${protocol}: patching externalKeyUri re-checks the new URI and keeps the old one when refused`, async () => {
    const first = `patch-a-${protocol}`;
    const second = `patch-b-${protocol}`;
    await s.ekm!.ekm.admin.createKey(first);
    const key = await externalCryptoKey(s, ring, first);
    const version = await addVersion(s, key, s.ekm!.keyUri(first, protocol));
    const path = `/v1/${version}`;
    const patch = (uri: string) =>
      s.call('PATCH', `${path}?updateMask=externalProtectionLevelOptions.externalKeyUri`, {
        externalProtectionLevelOptions: { externalKeyUri: uri },
      });

    const unknown = s.ekm!.keyUri(second, protocol);
    const refused = await ekmCallsDuring(s, second, async () =>
      assertEkmError(await patch(unknown), 'EXTERNAL_NOT_FOUND', version, unknown),
    );
    assert.equal(refused.calls.length, 1, 'the new URI was checked at the EKM');
    assertEkmError(
      await patch('https://127.0.0.1:1/v0/keys/x'),
      'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
      version,
      'https://127.0.0.1:1/v0/keys/x',
    );
    await s.ekm!.ekm.admin.createKey(second);
    await s.ekm!.ekm.admin.setEnabled(second, false);
    assertEkmError(await patch(unknown), 'EXTERNAL_PERMISSION_DENIED', version, unknown);

    let got = await s.call('GET', path);
    assert.equal(got.json.externalProtectionLevelOptions.externalKeyUri, s.ekm!.keyUri(first, protocol));
    assert.equal(got.json.state, 'ENABLED', 'a refused patch changes nothing');

    await s.ekm!.ekm.admin.setEnabled(second, true);
    const ok = await patch(unknown);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    got = await s.call('GET', path);
    assert.equal(got.json.externalProtectionLevelOptions.externalKeyUri, unknown);
  });
}
