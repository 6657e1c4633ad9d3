/**
 * EXTERNAL keys end to end against the real reference EKM over real HTTP(S): double encryption through Google EKM
 * v0 and AWS XKS v1, on every request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let s: TestStack;
let ring: string;
const b64 = (t: string) => Buffer.from(t).toString('base64');

before(async () => {
  s = await startTestStack({ ekm: true });
  ring = `/v1/projects/${s.project}/locations/us-east1/keyRings/ext`;
  assert.equal(
    (await s.call('POST', `/v1/projects/${s.project}/locations/us-east1/keyRings?keyRingId=ext`, {})).status,
    200,
  );
});
after(() => s.stop());

async function externalKey(id: string, uri: string) {
  const key = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}&skipInitialVersionCreation=true`, {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
  });
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const v = await s.call('POST', `${ring}/cryptoKeys/${id}/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: uri },
  });
  assert.equal(v.status, 200, JSON.stringify(v.json));
  const p = await s.call('POST', `${ring}/cryptoKeys/${id}:updatePrimaryVersion`, {
    cryptoKeyVersionId: '1',
  });
  assert.equal(p.status, 200);
  return v.json.name as string;
}

for (const [protocol, scheme] of [
  ['google', 'https'],
  ['google', 'http'],
  ['xks', 'https'],
  ['xks', 'http'],
] as const) {
  describe(`${protocol} over ${scheme}`, () => {
    test('encrypt and decrypt go through the EKM; revoking access stops the very next request', async () => {
      const id = `k-${protocol}-${scheme}`;
      await s.ekm!.ekm.admin.createKey(id);
      const version = await externalKey(id, s.ekm!.keyUri(id, protocol, scheme));
      const aad = b64('context');
      const enc = await s.call('POST', `${ring}/cryptoKeys/${id}:encrypt`, {
        plaintext: b64('secret'),
        additionalAuthenticatedData: aad,
      });
      assert.equal(enc.status, 200, JSON.stringify(enc.json));
      assert.equal(enc.json.name, version);
      assert.equal(enc.json.protectionLevel, 'EXTERNAL');
      const ct = Buffer.from(enc.json.ciphertext, 'base64');
      assert.equal(ct[1], 3, 'the header names the EXTERNAL protection level');
      const dec = await s.call('POST', `${ring}/cryptoKeys/${id}:decrypt`, {
        ciphertext: enc.json.ciphertext,
        additionalAuthenticatedData: aad,
      });
      assert.equal(dec.status, 200, JSON.stringify(dec.json));
      assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'secret');

      // The EKM key is disabled: the next encrypt and decrypt fail with an EKM error domain.
      await s.ekm!.ekm.admin.setEnabled(id, false);
      const refused = await s.call('POST', `${ring}/cryptoKeys/${id}:decrypt`, {
        ciphertext: enc.json.ciphertext,
        additionalAuthenticatedData: aad,
      });
      assert.equal(refused.status, 400, JSON.stringify(refused.json));
      assert.equal(refused.json.error.status, 'FAILED_PRECONDITION');
      const violations = refused.json.error.details[0].violations;
      assert.equal(violations.length, 2);
      assert.equal(violations[0].subject, version);
      assert.equal(violations[1].type, 'EXTERNAL_PERMISSION_DENIED');
      await s.ekm!.ekm.admin.setEnabled(id, true);
      const again = await s.call('POST', `${ring}/cryptoKeys/${id}:decrypt`, {
        ciphertext: enc.json.ciphertext,
        additionalAuthenticatedData: aad,
      });
      assert.equal(again.status, 200, JSON.stringify(again.json));
    });
  });
}
