/**
 * The official Node client (@google-cloud/kms 5.x, REST fallback, unmodified) on the keys beyond ENCRYPT_DECRYPT:
 * asymmetric signing and decryption, public keys, MAC and raw AES, with the client's own CRC32C fields, and the
 * IAM mixin (getIamPolicy is sent as a POST with a JSON body by google-gax's REST transport).
 */
import assert from 'node:assert/strict';
import { constants, createHash, createPublicKey, publicEncrypt, randomBytes, verify } from 'node:crypto';
import { after, before, test } from 'node:test';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { crc32c } from '@node-rs/crc32';
import { OAuth2Client } from 'google-auth-library';
import { startTestStack, type TestStack } from '../helpers/stack.js';

process.env.METADATA_SERVER_DETECTION = 'none';

let s: TestStack;
let client: KeyManagementServiceClient;
let ring: string;

const crc = (b: Uint8Array) => crc32c(Buffer.from(b)) >>> 0;
const num = (v: unknown) => Number(typeof v === 'object' && v !== null ? (v as { value: unknown }).value : v);

before(async () => {
  s = await startTestStack();
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: await s.token(), expiry_date: Date.now() + 3_600_000 });
  client = new KeyManagementServiceClient({
    apiEndpoint: '127.0.0.1',
    port: s.server.port,
    protocol: 'http',
    fallback: true,
    authClient: authClient as never,
  });
  const [r] = await client.createKeyRing({
    parent: client.locationPath(s.project, 'us-east1'),
    keyRingId: 'surface',
    keyRing: {},
  });
  ring = r.name!;
});
after(async () => {
  await client?.close();
  await s?.stop();
});

test('Node client: an EC key signs a digest and data; the public key verifies; enums come back as names', async () => {
  const [key] = await client.createCryptoKey({
    parent: ring,
    cryptoKeyId: 'sign',
    cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256' } },
  });
  assert.equal(key.purpose, 'ASYMMETRIC_SIGN');
  assert.equal(key.versionTemplate?.algorithm, 'EC_SIGN_P256_SHA256');
  const name = `${key.name}/cryptoKeyVersions/1`;
  const [pk] = await client.getPublicKey({ name });
  assert.equal(pk.algorithm, 'EC_SIGN_P256_SHA256');
  assert.equal(num(pk.pemCrc32c), crc(Buffer.from(pk.pem!, 'utf8')));
  const message = Buffer.from('signed by the Node client');
  const digest = createHash('sha256').update(message).digest();
  const [signed] = await client.asymmetricSign({
    name,
    digest: { sha256: digest },
    digestCrc32c: { value: crc(digest) },
  });
  assert.equal(signed.verifiedDigestCrc32c, true);
  assert.equal(signed.name, name);
  assert.equal(signed.protectionLevel, 'SOFTWARE');
  const sig = Buffer.from(signed.signature as Uint8Array);
  assert.equal(num(signed.signatureCrc32c), crc(sig));
  assert.ok(verify('sha256', message, createPublicKey(pk.pem!), sig));
  const [byData] = await client.asymmetricSign({ name, data: message, dataCrc32c: { value: crc(message) } });
  assert.equal(byData.verifiedDataCrc32c, true);
  assert.ok(verify('sha256', message, createPublicKey(pk.pem!), Buffer.from(byData.signature as Uint8Array)));
  const [der] = await client.getPublicKey({ name, publicKeyFormat: 'DER' });
  assert.equal(der.publicKeyFormat, 'DER');
  const derBytes = Buffer.from(der.publicKey!.data as Uint8Array);
  assert.equal(num(der.publicKey!.crc32cChecksum), crc(derBytes));
  assert.ok(createPublicKey({ key: derBytes, format: 'der', type: 'spki' }).equals(createPublicKey(pk.pem!)));
});

test('Node client: asymmetricDecrypt, macSign/macVerify, rawEncrypt/rawDecrypt', async () => {
  const [rsa] = await client.createCryptoKey({
    parent: ring,
    cryptoKeyId: 'oaep',
    cryptoKey: {
      purpose: 'ASYMMETRIC_DECRYPT',
      versionTemplate: { algorithm: 'RSA_DECRYPT_OAEP_2048_SHA256' },
    },
  });
  const rsaVersion = `${rsa.name}/cryptoKeyVersions/1`;
  const [pk] = await client.getPublicKey({ name: rsaVersion });
  const secret = randomBytes(24);
  const ct = publicEncrypt(
    { key: pk.pem!, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    secret,
  );
  const [opened] = await client.asymmetricDecrypt({
    name: rsaVersion,
    ciphertext: ct,
    ciphertextCrc32c: { value: crc(ct) },
  });
  assert.deepEqual(Buffer.from(opened.plaintext as Uint8Array), secret);
  assert.equal(opened.verifiedCiphertextCrc32c, true);

  const [mac] = await client.createCryptoKey({
    parent: ring,
    cryptoKeyId: 'mac',
    cryptoKey: { purpose: 'MAC', versionTemplate: { algorithm: 'HMAC_SHA512' } },
  });
  const macVersion = `${mac.name}/cryptoKeyVersions/1`;
  const data = Buffer.from('tagged');
  const [tagged] = await client.macSign({ name: macVersion, data, dataCrc32c: { value: crc(data) } });
  assert.equal((tagged.mac as Uint8Array).length, 64);
  assert.equal(tagged.verifiedDataCrc32c, true);
  const [good] = await client.macVerify({ name: macVersion, data, mac: tagged.mac });
  assert.equal(good.success, true);
  assert.equal(good.verifiedSuccessIntegrity, true);
  const [bad] = await client.macVerify({ name: macVersion, data: Buffer.from('other'), mac: tagged.mac });
  assert.equal(bad.success, false);

  const [raw] = await client.createCryptoKey({
    parent: ring,
    cryptoKeyId: 'raw',
    cryptoKey: { purpose: 'RAW_ENCRYPT_DECRYPT', versionTemplate: { algorithm: 'AES_256_GCM' } },
  });
  const rawVersion = `${raw.name}/cryptoKeyVersions/1`;
  const pt = randomBytes(50);
  const aad = Buffer.from('aad');
  const [enc] = await client.rawEncrypt({
    name: rawVersion,
    plaintext: pt,
    additionalAuthenticatedData: aad,
    plaintextCrc32c: { value: crc(pt) },
  });
  assert.equal(enc.tagLength, 16);
  assert.equal(enc.verifiedPlaintextCrc32c, true);
  assert.equal((enc.initializationVector as Uint8Array).length, 12);
  const [dec] = await client.rawDecrypt({
    name: rawVersion,
    ciphertext: enc.ciphertext,
    initializationVector: enc.initializationVector,
    additionalAuthenticatedData: aad,
    tagLength: 16,
  });
  assert.deepEqual(Buffer.from(dec.plaintext as Uint8Array), pt);
  assert.equal(num(dec.plaintextCrc32c), crc(pt));
});

test('Node client: getIamPolicy (sent as POST), setIamPolicy with the new roles, testIamPermissions', async () => {
  const keyName = `${ring}/cryptoKeys/sign`;
  const [empty] = await client.getIamPolicy({ resource: keyName } as never);
  assert.deepEqual(empty.bindings ?? [], []);
  const [set] = await client.setIamPolicy({
    resource: keyName,
    policy: {
      bindings: [
        { role: 'roles/cloudkms.signerVerifier', members: ['user:signer@example.com'] },
        { role: 'roles/cloudkms.publicKeyViewer', members: ['user:viewer@example.com'] },
      ],
      etag: empty.etag,
    },
  } as never);
  assert.equal(set.bindings?.length, 2);
  const [read] = await client.getIamPolicy({
    resource: keyName,
    options: { requestedPolicyVersion: 3 },
  } as never);
  assert.deepEqual(
    read.bindings?.map((b) => b.role),
    ['roles/cloudkms.signerVerifier', 'roles/cloudkms.publicKeyViewer'],
  );
  // What was read is written back unchanged.
  await client.setIamPolicy({ resource: keyName, policy: read } as never);
  const [perms] = await client.testIamPermissions({
    resource: keyName,
    permissions: ['cloudkms.cryptoKeyVersions.useToSign', 'cloudkms.cryptoKeyVersions.viewPublicKey'],
  } as never);
  assert.deepEqual(perms.permissions, [
    'cloudkms.cryptoKeyVersions.useToSign',
    'cloudkms.cryptoKeyVersions.viewPublicKey',
  ]);
});
