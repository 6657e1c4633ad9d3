/**
 * IAM on the new key surface: the predefined roles signer, verifier, signerVerifier, publicKeyViewer and
 * cryptoOperator grant exactly the methods Google's permissions say (checked by calling each method as each
 * member), every predefined Cloud KMS role is accepted in a policy, a policy as Cloud KMS returns it is written back
 * unchanged, and getIamPolicy answers a POST with its options in the body, as google-gax sends it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ROLES } from '../../shared/access/roles.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertDenied, assertError, callAs, ok } from './admin-helpers.js';

let s: TestStack;
let ring: string;
let signKey: string;
let macKey: string;

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const who = (n: string) => `user:${n}@example.com`;

before(async () => {
  s = await startTestStack();
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=iam`, {}));
  ring = `${loc}/keyRings/iam`;
  signKey = `${ring}/cryptoKeys/sign`;
  macKey = `${ring}/cryptoKeys/mac`;
  ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=sign`, {
      purpose: 'ASYMMETRIC_SIGN',
      versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256' },
    }),
  );
  ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=mac`, {
      purpose: 'MAC',
      versionTemplate: { algorithm: 'HMAC_SHA256' },
    }),
  );
  const bindings = [
    { role: 'roles/cloudkms.signer', members: [who('signer')] },
    { role: 'roles/cloudkms.verifier', members: [who('verifier')] },
    { role: 'roles/cloudkms.signerVerifier', members: [who('both')] },
    { role: 'roles/cloudkms.publicKeyViewer', members: [who('viewer')] },
    { role: 'roles/cloudkms.cryptoOperator', members: [who('operator')] },
    { role: 'roles/cloudkms.admin', members: [who('admin')] },
  ];
  ok(await s.call('POST', `${ring}:setIamPolicy`, { policy: { bindings } }));
});
after(() => s.stop());

test('each signing and MAC role allows exactly its methods; denials name the permission and the version', async () => {
  const sv = `${signKey}/cryptoKeyVersions/1`;
  const mv = `${macKey}/cryptoKeyVersions/1`;
  const mac = ok(await s.call('POST', `${mv}:macSign`, { data: b64('m') })).mac;
  const calls = {
    sign: (p: string) => callAs(s, p, 'POST', `${sv}:asymmetricSign`, { data: b64('x') }),
    publicKey: (p: string) => callAs(s, p, 'GET', `${sv}/publicKey`),
    macSign: (p: string) => callAs(s, p, 'POST', `${mv}:macSign`, { data: b64('m') }),
    macVerify: (p: string) => callAs(s, p, 'POST', `${mv}:macVerify`, { data: b64('m'), mac }),
  };
  const permission = {
    sign: 'cloudkms.cryptoKeyVersions.useToSign',
    publicKey: 'cloudkms.cryptoKeyVersions.viewPublicKey',
    macSign: 'cloudkms.cryptoKeyVersions.useToSign',
    macVerify: 'cloudkms.cryptoKeyVersions.useToVerify',
  };
  const allowed: Record<string, (keyof typeof calls)[]> = {
    signer: ['sign', 'macSign'],
    verifier: ['publicKey', 'macVerify'],
    both: ['sign', 'publicKey', 'macSign', 'macVerify'],
    viewer: ['publicKey'],
    operator: ['sign', 'publicKey', 'macSign', 'macVerify'],
    admin: [],
    nobody: [],
  };
  for (const [name, ok200] of Object.entries(allowed)) {
    for (const method of Object.keys(calls) as (keyof typeof calls)[]) {
      const res = await calls[method](who(name));
      if (ok200.includes(method))
        assert.equal(res.status, 200, `${name} ${method}: ${JSON.stringify(res.json)}`);
      else assertDenied(res, permission[method], method === 'macSign' || method === 'macVerify' ? mv : sv);
    }
  }
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  assertDenied(
    await callAs(s, who('signer'), 'POST', `${loc}:generateRandomBytes`, {
      lengthBytes: 16,
      protectionLevel: 'HSM',
    }),
    'cloudkms.locations.generateRandomBytes',
    loc,
  );
});

test('every predefined Cloud KMS role is accepted; a policy read back is written back unchanged', async () => {
  const googleRoles = Object.keys(ROLES).filter((r) => r.startsWith('roles/cloudkms.'));
  for (const r of [
    'roles/cloudkms.publicKeyViewer',
    'roles/cloudkms.signer',
    'roles/cloudkms.signerVerifier',
    'roles/cloudkms.verifier',
    'roles/cloudkms.cryptoOperator',
    'roles/cloudkms.importer',
    'roles/cloudkms.protectedResourcesViewer',
    'roles/cloudkms.expertRawAesCbc',
    'roles/cloudkms.cryptoKeyEncrypterDecrypterViaDelegation',
    'roles/cloudkms.autokeyAdmin',
  ]) {
    assert.ok(googleRoles.includes(r), r);
  }
  const bindings = googleRoles.map((role, i) => ({ role, members: [`user:m${i}@example.com`] }));
  const set = ok(await s.call('POST', `${macKey}:setIamPolicy`, { policy: { version: 1, bindings } }));
  assert.equal(set.bindings.length, googleRoles.length);
  // As Cloud KMS returns it (version, bindings, etag), then written back as is.
  const read = ok(await s.call('GET', `${macKey}:getIamPolicy?options.requestedPolicyVersion=3`));
  const again = ok(await s.call('POST', `${macKey}:setIamPolicy`, { policy: read }));
  assert.deepEqual(again.bindings, read.bindings);
  assert.notEqual(again.etag, read.etag);
  assertError(await s.call('POST', `${macKey}:setIamPolicy`, { policy: read }), 409, 'ABORTED');
});

test('getIamPolicy as a POST with options in the body, as google-gax sends it', async () => {
  const byGet = ok(await s.call('GET', `${ring}:getIamPolicy`));
  const byPost = ok(await s.call('POST', `${ring}:getIamPolicy`, { options: { requestedPolicyVersion: 3 } }));
  assert.deepEqual(byPost, byGet);
  assert.deepEqual(ok(await s.call('POST', `${ring}:getIamPolicy`, {})), byGet);
  assertError(
    await s.call('POST', `${ring}:getIamPolicy`, { options: { requestedPolicyVersion: 2 } }),
    400,
    'INVALID_ARGUMENT',
    'requestedPolicyVersion',
  );
  assertDenied(
    await callAs(s, who('signer'), 'POST', `${ring}:getIamPolicy`, {}),
    'cloudkms.keyRings.getIamPolicy',
    ring,
  );
});
