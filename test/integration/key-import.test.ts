/**
 * Key import over HTTP against the real Firestore emulator: import jobs (create, get, list, IAM), key material
 * wrapped by the OpenSSL command line with each of the six import methods and imported with
 * cryptoKeyVersions.import, then used (encrypt/decrypt, rawEncrypt, macSign, asymmetricSign) and checked against
 * the original material with node:crypto; re-import, import-only keys, the errors Cloud KMS answers, the
 * permissions on the key and the job, gcloud (`import-jobs`, `keys versions import`) and the Node client
 * (createImportJob, importCryptoKeyVersion). The expiry test moves the gateway's clock, so it runs last.
 */
import assert from 'node:assert/strict';
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  verify as nodeVerify,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { OAuth2Client } from 'google-auth-library';
import { opensslWrap as opensslWrapIn } from '../helpers/key-wrap.js';
import { gcloudEnv, runGcloud, startTestStack, type TestStack } from '../helpers/stack.js';
import { assertDenied, assertError, callAs, ISO, ok, violationField } from './admin-helpers.js';

process.env.METADATA_SERVER_DETECTION = 'none';
const skipGcloud = process.env.OPENEKM_SKIP_GCLOUD === '1';

let s: TestStack;
let ring: string;
let ringName: string;
let dir: string;

const b64 = (b: Buffer) => b.toString('base64');
const DAY = 86_400_000;

before(async () => {
  s = await startTestStack();
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=imports`, {}));
  ring = `${loc}/keyRings/imports`;
  ringName = ring.slice('/v1/'.length);
  dir = mkdtempSync(join(tmpdir(), 'openekm-import-'));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await s.stop();
});

const jobs = new Map<string, any>();

/** An ACTIVE SOFTWARE import job of `method` (made once per id). */
async function job(id: string, method: string): Promise<any> {
  const cached = jobs.get(id);
  if (cached) return cached;
  const j = ok(
    await s.call('POST', `${ring}/importJobs?importJobId=${id}`, {
      importMethod: method,
      protectionLevel: 'SOFTWARE',
    }),
  );
  jobs.set(id, j);
  return j;
}

async function key(id: string, purpose: string, algorithm: string, importOnly = true): Promise<string> {
  const k = ok(
    await s.call(
      'POST',
      `${ring}/cryptoKeys?cryptoKeyId=${id}${importOnly ? '&skipInitialVersionCreation=true' : ''}`,
      { purpose, versionTemplate: { algorithm }, ...(importOnly ? { importOnly: true } : {}) },
    ),
  );
  assert.equal(k.importOnly, importOnly);
  return k.name;
}

/** `material` wrapped for an import job with the OpenSSL command line (test/helpers/key-wrap.ts). */
function opensslWrap(jobPem: string, method: string, material: Buffer): Buffer {
  return opensslWrapIn(dir, jobPem, method, material);
}

/** The same wrapping with node:crypto (a second implementation, for the Node client test). */
function nodeWrap(jobPem: string, method: string, material: Buffer): Buffer {
  const hash = method.includes('_SHA1_') ? 'sha1' : 'sha256';
  const oaep = (b: Buffer) =>
    publicEncrypt({ key: jobPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, b);
  if (!method.endsWith('_AES_256')) return oaep(material);
  const aes = randomBytes(32);
  const c = createCipheriv('id-aes256-wrap-pad', aes, Buffer.from('A65959A6', 'hex'));
  return Buffer.concat([oaep(aes), c.update(material), c.final()]);
}

async function importInto(keyName: string, body: Record<string, unknown>) {
  return s.call('POST', `/v1/${keyName}/cryptoKeyVersions:import`, body);
}

function assertImported(v: any, keyName: string, jobName: string, algorithm: string): void {
  assert.equal(v.state, 'ENABLED', JSON.stringify(v));
  assert.match(v.name, new RegExp(`^${keyName}/cryptoKeyVersions/\\d+$`));
  assert.equal(v.algorithm, algorithm);
  assert.equal(v.protectionLevel, 'SOFTWARE');
  assert.equal(v.importJob, jobName);
  assert.match(v.importTime, ISO);
  assert.equal(v.reimportEligible, true);
  assert.equal(v.importFailureReason, undefined);
  for (const hidden of ['material', 'importFingerprint']) assert.equal(v[hidden], undefined, hidden);
}

test('importJobs.create answers an ACTIVE job with the RSA public key of its method; get and list show it; the private key never leaves', async () => {
  const before = Date.now();
  const j = await job('j3072sha256aes', 'RSA_OAEP_3072_SHA256_AES_256');
  assert.equal(j.name, `${ringName}/importJobs/j3072sha256aes`);
  assert.equal(j.importMethod, 'RSA_OAEP_3072_SHA256_AES_256');
  assert.equal(j.protectionLevel, 'SOFTWARE');
  assert.equal(j.state, 'ACTIVE');
  for (const t of ['createTime', 'generateTime', 'expireTime']) assert.match(j[t], ISO, t);
  assert.equal(Date.parse(j.expireTime) - Date.parse(j.createTime), 3 * DAY);
  assert.ok(Date.parse(j.createTime) >= before - 1000);
  assert.equal(j.expireEventTime, undefined);
  const pub = createPublicKey(j.publicKey.pem);
  assert.equal(pub.asymmetricKeyType, 'rsa');
  assert.equal(pub.asymmetricKeyDetails?.modulusLength, 3072);
  assert.deepEqual(Object.keys(j.publicKey), ['pem']);
  const text = JSON.stringify(j);
  for (const leak of ['privateKey', 'sealed', 'rootKeyId', 'PRIVATE']) assert.ok(!text.includes(leak), leak);

  const got = ok(await s.call('GET', `/v1/${j.name}`));
  assert.deepEqual(got, j);
  const der = ok(await s.call('GET', `/v1/${j.name}?publicKeyFormat=DER`));
  assert.deepEqual(
    Buffer.from(der.publicKey.data, 'base64'),
    pub.export({ type: 'spki', format: 'der' }) as Buffer,
  );
  const j4096 = await job('j4096sha1aes', 'RSA_OAEP_4096_SHA1_AES_256');
  assert.equal(createPublicKey(j4096.publicKey.pem).asymmetricKeyDetails?.modulusLength, 4096);

  const list = ok(await s.call('GET', `${ring}/importJobs`));
  assert.deepEqual(
    list.importJobs.map((x: any) => x.name),
    [j.name, j4096.name],
  );
  assert.equal(list.totalSize, 2);
  const filtered = ok(
    await s.call(
      'GET',
      `${ring}/importJobs?filter=${encodeURIComponent('importMethod=RSA_OAEP_4096_SHA1_AES_256')}`,
    ),
  );
  assert.deepEqual(
    filtered.importJobs.map((x: any) => x.name),
    [j4096.name],
  );
  const first = ok(await s.call('GET', `${ring}/importJobs?pageSize=1&orderBy=name%20desc`));
  assert.deepEqual(
    first.importJobs.map((x: any) => x.name),
    [j4096.name],
  );
  const second = ok(
    await s.call('GET', `${ring}/importJobs?pageSize=1&orderBy=name%20desc&pageToken=${first.nextPageToken}`),
  );
  assert.deepEqual(
    second.importJobs.map((x: any) => x.name),
    [j.name],
  );
  assert.equal(second.nextPageToken, undefined);
  assertError(
    await s.call('GET', `${ring}/importJobs?orderBy=createTime`),
    400,
    'INVALID_ARGUMENT',
    'orderBy',
  );
});

test('importJobs.create refuses what Cloud KMS refuses, with the field named', async () => {
  const create = (id: string, body: unknown) => s.call('POST', `${ring}/importJobs?importJobId=${id}`, body);
  let r = await create('bad', { protectionLevel: 'SOFTWARE' });
  assertError(r, 400, 'INVALID_ARGUMENT', 'importMethod is required');
  assert.equal(violationField(r), 'importMethod');
  r = await create('bad', { importMethod: 'RSA_OAEP_3072_SHA256', protectionLevel: 0 });
  assertError(r, 400, 'INVALID_ARGUMENT', 'protectionLevel is required');
  assert.equal(violationField(r), 'protectionLevel');
  assertError(
    await create('bad', { importMethod: 'RSA_OAEP_1024', protectionLevel: 'SOFTWARE' }),
    400,
    'INVALID_ARGUMENT',
    'importMethod',
  );
  assertError(
    await create('bad', { importMethod: 'RSA_OAEP_3072_SHA256', protectionLevel: 'EXTERNAL' }),
    400,
    'INVALID_ARGUMENT',
    'EXTERNAL',
  );
  assertError(
    await create('bad', { importMethod: 'RSA_OAEP_3072_SHA256', protectionLevel: 'HSM_SINGLE_TENANT' }),
    501,
    'UNIMPLEMENTED',
    'HSM_SINGLE_TENANT',
  );
  assertError(
    await create('bad', {
      importMethod: 'HPKE_KEM_ML_KEM_768_HKDF_SHA256_AES_256_GCM',
      protectionLevel: 'SOFTWARE',
    }),
    501,
    'UNIMPLEMENTED',
    'HPKE_KEM_ML_KEM_768',
  );
  assertError(
    await create('bad', {
      importMethod: 'RSA_OAEP_3072_SHA256',
      protectionLevel: 'SOFTWARE',
      cryptoKeyBackend: `projects/${s.project}/locations/us-east1/singleTenantHsmInstances/i`,
    }),
    501,
    'UNIMPLEMENTED',
    'cryptoKeyBackend',
  );
  assertError(
    await create('bad', { importMethod: 'RSA_OAEP_3072_SHA256', protectionLevel: 'SOFTWARE', colour: 1 }),
    400,
    'INVALID_ARGUMENT',
    'colour',
  );
  assertError(
    await s.call('POST', `${ring}/importJobs`, { importMethod: 5, protectionLevel: 1 }),
    400,
    'INVALID_ARGUMENT',
    'importJobId',
  );
  assertError(
    await create('bad!', { importMethod: 5, protectionLevel: 1 }),
    400,
    'INVALID_ARGUMENT',
    'importJobId',
  );
  assertError(
    await s.call('POST', `${ring}x/importJobs?importJobId=j`, { importMethod: 5, protectionLevel: 1 }),
    404,
    'NOT_FOUND',
  );
  await job('dup', 'RSA_OAEP_3072_SHA256');
  assertError(
    await create('dup', { importMethod: 'RSA_OAEP_3072_SHA256', protectionLevel: 'SOFTWARE' }),
    409,
    'ALREADY_EXISTS',
    `${ringName}/importJobs/dup`,
  );
  assertError(await s.call('GET', `${ring}/importJobs/bad`), 404, 'NOT_FOUND', `${ringName}/importJobs/bad`);
  assertError(
    await s.call('GET', `${ring}/importJobs/dup?publicKeyFormat=NIST_PQC`),
    400,
    'INVALID_ARGUMENT',
  );
  // Nothing was written by the refused creates.
  const names = ok(await s.call('GET', `${ring}/importJobs`)).importJobs.map((x: any) => x.name);
  assert.ok(!names.some((n: string) => n.endsWith('/bad')));
});

const AES_METHODS = [
  'RSA_OAEP_3072_SHA1_AES_256',
  'RSA_OAEP_4096_SHA1_AES_256',
  'RSA_OAEP_3072_SHA256_AES_256',
  'RSA_OAEP_4096_SHA256_AES_256',
];

test('each import method: OpenSSL-wrapped material imports, and the version encrypts and decrypts', async () => {
  for (const method of [...AES_METHODS, 'RSA_OAEP_3072_SHA256', 'RSA_OAEP_4096_SHA256']) {
    const id = method.toLowerCase().replace(/_/g, '-');
    const j = await job(id, method);
    const keyName = await key(`sym-${id}`, 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
    const material = randomBytes(32);
    const v = ok(
      await importInto(keyName, {
        algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
        importJob: j.name,
        wrappedKey: b64(opensslWrap(j.publicKey.pem, method, material)),
      }),
    );
    assertImported(v, keyName, j.name, 'GOOGLE_SYMMETRIC_ENCRYPTION');
    assert.equal(v.name, `${keyName}/cryptoKeyVersions/1`, method);
    // The first imported version of an import-only ENCRYPT_DECRYPT key becomes its primary.
    const k = ok(await s.call('GET', `/v1/${keyName}`));
    assert.equal(k.primary.name, v.name, method);
    const pt = randomBytes(40);
    const enc = ok(await s.call('POST', `/v1/${keyName}:encrypt`, { plaintext: b64(pt) }));
    assert.equal(enc.name, v.name);
    const dec = ok(await s.call('POST', `/v1/${keyName}:decrypt`, { ciphertext: enc.ciphertext }));
    assert.deepEqual(Buffer.from(dec.plaintext, 'base64'), pt, method);
    assert.equal(ok(await s.call('GET', `/v1/${v.name}`)).state, 'ENABLED');
  }
});

test('imported material is the caller’s: raw AES and HMAC agree with node:crypto, EC and RSA signatures verify under the original public keys', async () => {
  // Raw AES-256-GCM, method 1: a local AES-GCM with the original key opens rawEncrypt's ciphertext.
  const j1 = await job('rsa-oaep-3072-sha1-aes-256', 'RSA_OAEP_3072_SHA1_AES_256');
  const aesKey = randomBytes(32);
  const rawKey = await key('raw-gcm', 'RAW_ENCRYPT_DECRYPT', 'AES_256_GCM');
  const rv = ok(
    await importInto(rawKey, {
      algorithm: 'AES_256_GCM',
      importJob: j1.name,
      wrappedKey: b64(opensslWrap(j1.publicKey.pem, 'RSA_OAEP_3072_SHA1_AES_256', aesKey)),
    }),
  );
  assertImported(rv, rawKey, j1.name, 'AES_256_GCM');
  const pt = randomBytes(33);
  const enc = ok(await s.call('POST', `/v1/${rv.name}:rawEncrypt`, { plaintext: b64(pt) }));
  const ct = Buffer.from(enc.ciphertext, 'base64');
  const d = createDecipheriv('aes-256-gcm', aesKey, Buffer.from(enc.initializationVector, 'base64'));
  d.setAuthTag(ct.subarray(ct.length - 16));
  assert.deepEqual(Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]), pt);

  // Raw AES-128-CBC, method 5 (no AES wrap): the same ciphertext as a local AES-CBC.
  const j5 = await job('rsa-oaep-3072-sha256', 'RSA_OAEP_3072_SHA256');
  const cbcKey = randomBytes(16);
  const cbc = await key('raw-cbc', 'RAW_ENCRYPT_DECRYPT', 'AES_128_CBC');
  const cv = ok(
    await importInto(cbc, {
      algorithm: 'AES_128_CBC',
      importJob: j5.name,
      wrappedKey: b64(opensslWrap(j5.publicKey.pem, 'RSA_OAEP_3072_SHA256', cbcKey)),
    }),
  );
  const iv = randomBytes(16);
  const block = randomBytes(32);
  const cbcEnc = ok(
    await s.call('POST', `/v1/${cv.name}:rawEncrypt`, {
      plaintext: b64(block),
      initializationVector: b64(iv),
    }),
  );
  const local = createCipheriv('aes-128-cbc', cbcKey, iv).setAutoPadding(false);
  assert.deepEqual(
    Buffer.from(cbcEnc.ciphertext, 'base64'),
    Buffer.concat([local.update(block), local.final()]),
  );

  // HMAC-SHA256, method 3: macSign equals a local HMAC with the original key.
  const j3 = await job('j3072sha256aes', 'RSA_OAEP_3072_SHA256_AES_256');
  const macKey = randomBytes(32);
  const mac = await key('mac', 'MAC', 'HMAC_SHA256');
  const mv = ok(
    await importInto(mac, {
      algorithm: 'HMAC_SHA256',
      importJob: j3.name,
      rsaAesWrappedKey: b64(opensslWrap(j3.publicKey.pem, 'RSA_OAEP_3072_SHA256_AES_256', macKey)),
    }),
  );
  const data = Buffer.from('mac me');
  const tag = ok(await s.call('POST', `/v1/${mv.name}:macSign`, { data: b64(data) }));
  assert.deepEqual(Buffer.from(tag.mac, 'base64'), createHmac('sha256', macKey).update(data).digest());

  // EC P-256 (PKCS#8), method 4: the public key is the original's and signatures verify under it.
  const j4 = await job('rsa-oaep-4096-sha256-aes-256', 'RSA_OAEP_4096_SHA256_AES_256');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecKey = await key('ec', 'ASYMMETRIC_SIGN', 'EC_SIGN_P256_SHA256');
  const ev = ok(
    await importInto(ecKey, {
      algorithm: 'EC_SIGN_P256_SHA256',
      importJob: j4.name,
      wrappedKey: b64(
        opensslWrap(
          j4.publicKey.pem,
          'RSA_OAEP_4096_SHA256_AES_256',
          ec.privateKey.export({ type: 'pkcs8', format: 'der' }),
        ),
      ),
    }),
  );
  const pk = ok(await s.call('GET', `/v1/${ev.name}/publicKey`));
  assert.equal(pk.pem, ec.publicKey.export({ type: 'spki', format: 'pem' }));
  const msg = Buffer.from('signed with an imported key');
  const sig = ok(await s.call('POST', `/v1/${ev.name}:asymmetricSign`, { data: b64(msg) }));
  assert.ok(nodeVerify('sha256', msg, ec.publicKey, Buffer.from(sig.signature, 'base64')));

  // RSA 2048 PKCS#1 signing key (its algorithm differs from the key's template, as Cloud KMS allows).
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaKey = await key('rsa-sign', 'ASYMMETRIC_SIGN', 'RSA_SIGN_PSS_2048_SHA256');
  const rsv = ok(
    await importInto(rsaKey, {
      algorithm: 'RSA_SIGN_PKCS1_2048_SHA256',
      importJob: j4.name,
      wrappedKey: b64(
        opensslWrap(
          j4.publicKey.pem,
          'RSA_OAEP_4096_SHA256_AES_256',
          rsa.privateKey.export({ type: 'pkcs8', format: 'der' }),
        ),
      ),
    }),
  );
  assertImported(rsv, rsaKey, j4.name, 'RSA_SIGN_PKCS1_2048_SHA256');
  const rsig = ok(await s.call('POST', `/v1/${rsv.name}:asymmetricSign`, { data: b64(msg) }));
  assert.ok(nodeVerify('sha256', msg, rsa.publicKey, Buffer.from(rsig.signature, 'base64')));
});

test('material that does not unwrap or does not fit its algorithm makes an IMPORT_FAILED version with the reason', async () => {
  const j = await job('rsa-oaep-3072-sha256-aes-256', 'RSA_OAEP_3072_SHA256_AES_256');
  const other = await job('j3072sha256aes', 'RSA_OAEP_3072_SHA256_AES_256');
  const keyName = await key('fails', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  // Wrapped for another job's public key.
  const wrong = ok(
    await importInto(keyName, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: b64(opensslWrap(other.publicKey.pem, 'RSA_OAEP_3072_SHA256_AES_256', randomBytes(32))),
    }),
  );
  assert.equal(wrong.state, 'IMPORT_FAILED');
  assert.match(wrong.importFailureReason, /RSA-OAEP/);
  assert.equal(wrong.importJob, j.name);
  assert.equal(wrong.reimportEligible, true);
  // The right job, but SHA-1 where the method says SHA-256.
  const sha1 = ok(
    await importInto(keyName, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: b64(opensslWrap(j.publicKey.pem, 'RSA_OAEP_3072_SHA1_AES_256', randomBytes(32))),
    }),
  );
  assert.equal(sha1.state, 'IMPORT_FAILED');
  // A 16-byte key for a 32-byte algorithm.
  const short = ok(
    await importInto(keyName, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: b64(opensslWrap(j.publicKey.pem, 'RSA_OAEP_3072_SHA256_AES_256', randomBytes(16))),
    }),
  );
  assert.equal(short.state, 'IMPORT_FAILED');
  assert.match(short.importFailureReason, /32 raw bytes.*16 bytes/);
  // A P-384 key imported as P-256.
  const ecKey = await key('fails-ec', 'ASYMMETRIC_SIGN', 'EC_SIGN_P256_SHA256');
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({
    type: 'pkcs8',
    format: 'der',
  });
  const ec = ok(
    await importInto(ecKey, {
      algorithm: 'EC_SIGN_P256_SHA256',
      importJob: j.name,
      wrappedKey: b64(opensslWrap(j.publicKey.pem, 'RSA_OAEP_3072_SHA256_AES_256', p384)),
    }),
  );
  assert.equal(ec.state, 'IMPORT_FAILED');
  assert.match(ec.importFailureReason, /P-256.*secp384r1/);
  // A failed version cannot be used.
  assertError(
    await s.call('POST', `/v1/${short.name}:encrypt`, { plaintext: b64(Buffer.from('x')) }),
    400,
    'FAILED_PRECONDITION',
    'IMPORT_FAILED',
  );
  const versions = ok(await s.call('GET', `/v1/${keyName}/cryptoKeyVersions`)).cryptoKeyVersions;
  assert.deepEqual(
    versions.map((v: any) => v.state),
    ['IMPORT_FAILED', 'IMPORT_FAILED', 'IMPORT_FAILED'],
  );
  // No usable version: the key has no primary.
  assert.equal(ok(await s.call('GET', `/v1/${keyName}`)).primary, undefined);
});

test('re-import: only into an imported DESTROYED or IMPORT_FAILED version, with the same material and algorithm', async () => {
  const j = await job('rsa-oaep-4096-sha256', 'RSA_OAEP_4096_SHA256');
  const keyName = await key('reimport', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const material = randomBytes(32);
  const wrap = (m: Buffer) => b64(opensslWrap(j.publicKey.pem, 'RSA_OAEP_4096_SHA256', m));
  const v = ok(
    await importInto(keyName, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: wrap(material),
    }),
  );
  const pt = Buffer.from('kept across re-import');
  const enc = ok(await s.call('POST', `/v1/${v.name}:encrypt`, { plaintext: b64(pt) }));
  const reimport = (m: Buffer, extra: Record<string, unknown> = {}) =>
    importInto(keyName, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: wrap(m),
      cryptoKeyVersion: v.name,
      ...extra,
    });
  // ENABLED: not eligible.
  assertError(await reimport(material), 400, 'FAILED_PRECONDITION', 'ENABLED', 'DESTROYED or IMPORT_FAILED');
  // Destroy it, and let the destruction happen (the clock moves past destroyScheduledDuration).
  ok(await s.call('POST', `/v1/${v.name}:destroy`, {}));
  s.advance(31 * DAY);
  try {
    assert.equal(ok(await s.call('GET', `/v1/${v.name}`)).state, 'DESTROYED');
  } finally {
    s.advance(-31 * DAY);
  }
  // Other material: IMPORT_FAILED, and still eligible.
  const different = ok(await reimport(randomBytes(32)));
  assert.equal(different.state, 'IMPORT_FAILED');
  assert.match(different.importFailureReason, /not the material first imported/);
  assert.equal(different.destroyEventTime, undefined);
  // Another algorithm: refused.
  assertError(
    await importInto(keyName, {
      algorithm: 'HMAC_SHA256',
      importJob: j.name,
      wrappedKey: wrap(material),
      cryptoKeyVersion: v.name,
    }),
    400,
    'INVALID_ARGUMENT',
    'HMAC_SHA256',
  );
  // The same material: ENABLED again, and the old ciphertext opens.
  const back = ok(await reimport(material));
  assert.equal(back.state, 'ENABLED');
  assert.equal(back.name, v.name);
  assert.match(back.importTime, ISO);
  const dec = ok(await s.call('POST', `/v1/${keyName}:decrypt`, { ciphertext: enc.ciphertext }));
  assert.deepEqual(Buffer.from(dec.plaintext, 'base64'), pt);
  // A generated version is never re-import eligible; a version of another key is refused.
  const plain = await key('generated', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION', false);
  assertError(
    await importInto(plain, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: wrap(material),
      cryptoKeyVersion: `${plain}/cryptoKeyVersions/1`,
    }),
    400,
    'FAILED_PRECONDITION',
    'was not imported',
  );
  assertError(
    await reimport(material, { cryptoKeyVersion: `${plain}/cryptoKeyVersions/1` }),
    400,
    'INVALID_ARGUMENT',
    'not a version of',
  );
  // A key that is not import-only takes imported versions next to generated ones.
  const added = ok(
    await importInto(plain, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: wrap(randomBytes(32)),
    }),
  );
  assert.equal(added.name, `${plain}/cryptoKeyVersions/2`);
  assert.equal(ok(await s.call('GET', `/v1/${plain}`)).primary.name, `${plain}/cryptoKeyVersions/1`);
});

test('import requests Cloud KMS refuses make no version', async () => {
  const j = await job('rsa-oaep-3072-sha256', 'RSA_OAEP_3072_SHA256');
  const jAes = await job('rsa-oaep-3072-sha256-aes-256', 'RSA_OAEP_3072_SHA256_AES_256');
  const keyName = await key('refused', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const wrapped = b64(opensslWrap(j.publicKey.pem, 'RSA_OAEP_3072_SHA256', randomBytes(32)));
  const base = { algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION', importJob: j.name, wrappedKey: wrapped };
  const refuse = async (body: Record<string, unknown>, http: number, status: string, ...msg: string[]) => {
    const r = await importInto(keyName, body);
    assertError(r, http, status, ...msg);
    return r;
  };
  let r = await refuse({ ...base, algorithm: undefined }, 400, 'INVALID_ARGUMENT', 'algorithm is required');
  assert.equal(violationField(r), 'algorithm');
  r = await refuse({ ...base, importJob: undefined }, 400, 'INVALID_ARGUMENT', 'importJob is required');
  assert.equal(violationField(r), 'importJob');
  await refuse({ ...base, importJob: `${ringName}/importJobs/nope` }, 404, 'NOT_FOUND', 'importJobs/nope');
  await refuse({ ...base, importJob: `${ringName}/jobs/x` }, 400, 'INVALID_ARGUMENT', 'import job name');
  await refuse({ ...base, wrappedKey: undefined }, 400, 'INVALID_ARGUMENT', 'wrappedKey is required');
  await refuse({ ...base, rsaAesWrappedKey: wrapped }, 400, 'INVALID_ARGUMENT', 'exactly one');
  await refuse(
    { ...base, rsaAesWrappedKey: wrapped, wrappedKey: undefined },
    400,
    'INVALID_ARGUMENT',
    'rsaAesWrappedKey is for the *_AES_256',
  );
  await refuse({ ...base, wrappedKey: b64(randomBytes(100)) }, 400, 'INVALID_ARGUMENT', 'exactly 384 bytes');
  await refuse(
    { ...base, importJob: jAes.name, wrappedKey: b64(randomBytes(384 + 12)) },
    400,
    'INVALID_ARGUMENT',
    'multiple of 8',
  );
  // Algorithm of another purpose, or one that cannot be imported.
  await refuse(
    { ...base, algorithm: 'HMAC_SHA256' },
    400,
    'INVALID_ARGUMENT',
    'for MAC keys',
    'ENCRYPT_DECRYPT',
  );
  await refuse(
    { ...base, algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    400,
    'INVALID_ARGUMENT',
    'cannot be imported',
  );
  await refuse({ ...base, trustedWrappingEnabled: true }, 501, 'UNIMPLEMENTED', 'trustedWrappingEnabled');
  await refuse({ ...base, colour: 'red' }, 400, 'INVALID_ARGUMENT', 'colour');
  // The job's protection level must be the key's.
  const ext = ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=ext&skipInitialVersionCreation=true`, {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    }),
  );
  assertError(
    await importInto(ext.name, { ...base, algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' }),
    400,
    'INVALID_ARGUMENT',
    'cannot be imported',
  );
  assertError(
    await importInto(ext.name, base),
    400,
    'FAILED_PRECONDITION',
    'protection level',
    '(SOFTWARE)',
    '(EXTERNAL)',
  );
  assertError(
    await s.call('POST', `${ring}/cryptoKeys/missing/cryptoKeyVersions:import`, base),
    404,
    'NOT_FOUND',
    'cryptoKeys/missing',
  );
  const versions = ok(await s.call('GET', `/v1/${keyName}/cryptoKeyVersions`));
  assert.equal(versions.totalSize, 0);
  assert.equal(ok(await s.call('GET', `/v1/${ext.name}/cryptoKeyVersions`)).totalSize, 0);
});

test('import-only keys: created without a first version, never given a generated one, immutable', async () => {
  const create = (id: string, query: string, body: Record<string, unknown>) =>
    s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}${query}`, body);
  assertError(
    await create('io-bad', '', { purpose: 'ENCRYPT_DECRYPT', importOnly: true }),
    400,
    'INVALID_ARGUMENT',
    'skipInitialVersionCreation=true',
  );
  assertError(
    await create('io-bad', '&skipInitialVersionCreation=true', {
      purpose: 'ENCRYPT_DECRYPT',
      importOnly: true,
      rotationPeriod: '86400s',
      nextRotationTime: new Date(Date.now() + DAY).toISOString(),
    }),
    400,
    'INVALID_ARGUMENT',
    'does not rotate',
  );
  assertError(
    await create('io-bad', '&skipInitialVersionCreation=true', {
      purpose: 'ENCRYPT_DECRYPT',
      importOnly: true,
      versionTemplate: { protectionLevel: 'EXTERNAL' },
    }),
    400,
    'INVALID_ARGUMENT',
    'import-only',
  );
  assertError(await s.call('GET', `${ring}/cryptoKeys/io-bad`), 404, 'NOT_FOUND');
  const keyName = await key('io', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const k = ok(await s.call('GET', `/v1/${keyName}`));
  assert.equal(k.importOnly, true);
  assert.equal(k.primary, undefined);
  const refused = await s.call('POST', `/v1/${keyName}/cryptoKeyVersions`, {});
  assertError(refused, 400, 'FAILED_PRECONDITION', 'import-only', 'cryptoKeyVersions.import');
  assertError(
    await s.call('PATCH', `/v1/${keyName}?updateMask=importOnly`, { importOnly: false }),
    400,
    'INVALID_ARGUMENT',
    'immutable',
  );
  assertError(
    await s.call('PATCH', `/v1/${keyName}?updateMask=rotationPeriod,nextRotationTime`, {
      rotationPeriod: '86400s',
      nextRotationTime: new Date(Date.now() + DAY).toISOString(),
    }),
    400,
    'INVALID_ARGUMENT',
    'import-only',
  );
  // The scheduled job finds nothing to rotate, and the key still has no version.
  ok(await s.call('POST', '/health/tasks:run', {}));
  assert.equal(ok(await s.call('GET', `/v1/${keyName}/cryptoKeyVersions`)).totalSize, 0);
});

test('permissions: importer manages jobs; import needs cryptoKeyVersions.create on the key and useToImport on the job; policies attach to jobs', async () => {
  const IMPORTER = 'user:importer@example.com';
  const j = await job('perm', 'RSA_OAEP_3072_SHA256');
  const keyName = await key('perm-key', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const body = {
    algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
    importJob: j.name,
    wrappedKey: b64(opensslWrap(j.publicKey.pem, 'RSA_OAEP_3072_SHA256', randomBytes(32))),
  };
  const as = (method: string, path: string, b?: unknown) => callAs(s, IMPORTER, method, path, b);
  assertDenied(await as('GET', `/v1/${j.name}`), 'cloudkms.importJobs.get', j.name);
  assertDenied(
    await as('POST', `${ring}/importJobs?importJobId=mine`, { importMethod: 5, protectionLevel: 1 }),
    'cloudkms.importJobs.create',
    ringName,
  );
  // roles/cloudkms.importer on the key ring: jobs, but not the key.
  const setPolicy = async (resource: string, role: string) => {
    const current = ok(await s.call('GET', `/v1/${resource}:getIamPolicy`));
    ok(
      await s.call('POST', `/v1/${resource}:setIamPolicy`, {
        policy: { bindings: [{ role, members: [IMPORTER] }], etag: current.etag },
      }),
    );
  };
  await setPolicy(ringName, 'roles/cloudkms.importer');
  ok(await as('GET', `/v1/${j.name}`));
  ok(await as('GET', `${ring}/importJobs`));
  ok(await as('POST', `${ring}/importJobs?importJobId=mine`, { importMethod: 5, protectionLevel: 1 }));
  assertDenied(
    await as('POST', `/v1/${keyName}/cryptoKeyVersions:import`, body),
    'cloudkms.cryptoKeyVersions.create',
    keyName,
  );
  // Take the ring grant away; admin on the key gives create there, but not useToImport on a job of the ring.
  const ringPolicy = ok(await s.call('GET', `/v1/${ringName}:getIamPolicy`));
  ok(
    await s.call('POST', `/v1/${ringName}:setIamPolicy`, { policy: { bindings: [], etag: ringPolicy.etag } }),
  );
  await setPolicy(keyName, 'roles/cloudkms.admin');
  assertDenied(
    await as('POST', `/v1/${keyName}/cryptoKeyVersions:import`, body),
    'cloudkms.importJobs.useToImport',
    j.name,
  );
  assert.equal(ok(await s.call('GET', `/v1/${keyName}/cryptoKeyVersions`)).totalSize, 0);
  // A policy on the job itself grants useToImport there.
  const jobPolicy = ok(await s.call('GET', `/v1/${j.name}:getIamPolicy`));
  assert.equal(jobPolicy.etag, 'ACAB');
  await setPolicy(j.name, 'roles/cloudkms.importer');
  const tested = ok(
    await as('POST', `/v1/${j.name}:testIamPermissions`, {
      permissions: ['cloudkms.importJobs.useToImport', 'cloudkms.importJobs.setIamPolicy'],
    }),
  );
  assert.deepEqual(tested.permissions, ['cloudkms.importJobs.useToImport']);
  const v = ok(await as('POST', `/v1/${keyName}/cryptoKeyVersions:import`, body));
  assert.equal(v.state, 'ENABLED');
  assertError(await s.call('GET', `${ring}/importJobs/none:getIamPolicy`), 404, 'NOT_FOUND');
});

test('gcloud kms import-jobs create/describe/list and keys versions import (--wrapped-key-file, --target-key-file)', {
  skip: skipGcloud && 'OPENEKM_SKIP_GCLOUD=1',
}, async () => {
  const work = mkdtempSync(join(dir, 'gcloud-'));
  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, await s.token(), { mode: 0o600 });
  const env = gcloudEnv(s.url, s.project, join(work, 'config'), tokenFile);
  const gcloud = async (...args: string[]) => {
    const r = await runGcloud(['kms', ...args, '--location=us-east1', '--keyring=imports'], {
      env,
      cwd: work,
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, `gcloud kms ${args.join(' ')} failed:\n${r.stderr}`);
    return r.stdout;
  };
  await gcloud(
    'import-jobs',
    'create',
    'gc-job',
    '--import-method=rsa-oaep-4096-sha256-aes-256',
    '--protection-level=software',
  );
  const described = JSON.parse(await gcloud('import-jobs', 'describe', 'gc-job', '--format=json'));
  assert.equal(described.name, `${ringName}/importJobs/gc-job`);
  assert.equal(described.state, 'ACTIVE');
  assert.equal(described.importMethod, 'RSA_OAEP_4096_SHA256_AES_256');
  const listed = JSON.parse(await gcloud('import-jobs', 'list', '--format=json'));
  assert.ok(listed.some((x: any) => x.name === described.name));
  await gcloud(
    'keys',
    'create',
    'gc-key',
    '--purpose=encryption',
    '--import-only',
    '--skip-initial-version-creation',
  );
  // The public key as docs/key-import.md saves it.
  const pem = await gcloud('import-jobs', 'describe', 'gc-job', '--format=value(publicKey.pem)');
  assert.equal(pem.trim(), described.publicKey.pem.trim());
  const material = randomBytes(32);
  const wrappedFile = join(work, 'wrapped');
  writeFileSync(wrappedFile, opensslWrap(pem, 'RSA_OAEP_4096_SHA256_AES_256', material));
  const imported = JSON.parse(
    await gcloud(
      'keys',
      'versions',
      'import',
      '--key=gc-key',
      '--import-job=gc-job',
      '--algorithm=google-symmetric-encryption',
      `--wrapped-key-file=${wrappedFile}`,
      '--format=json',
    ),
  );
  assert.equal(imported.state, 'ENABLED');
  assert.equal(imported.importJob, described.name);
  const pt = join(work, 'pt');
  const ct = join(work, 'ct');
  const back = join(work, 'back');
  writeFileSync(pt, 'round trip through gcloud');
  await gcloud('encrypt', '--key=gc-key', `--plaintext-file=${pt}`, `--ciphertext-file=${ct}`);
  await gcloud('decrypt', '--key=gc-key', `--ciphertext-file=${ct}`, `--plaintext-file=${back}`);
  assert.equal(readFileSync(back, 'utf8'), 'round trip through gcloud');

  // --target-key-file: gcloud reads the job (it must be ACTIVE), wraps the key itself and imports it.
  await gcloud('keys', 'create', 'gc-mac', '--purpose=mac', '--default-algorithm=hmac-sha256');
  const macKey = randomBytes(32);
  const targetFile = join(work, 'target');
  writeFileSync(targetFile, macKey);
  const self = JSON.parse(
    await gcloud(
      'keys',
      'versions',
      'import',
      '--key=gc-mac',
      '--import-job=gc-job',
      '--algorithm=hmac-sha256',
      `--target-key-file=${targetFile}`,
      '--format=json',
    ),
  );
  assert.equal(self.state, 'ENABLED');
  assert.equal(self.name, `${ringName}/cryptoKeys/gc-mac/cryptoKeyVersions/2`);
  const data = join(work, 'data');
  const sig = join(work, 'sig');
  writeFileSync(data, 'tagged by gcloud');
  await gcloud('mac-sign', '--key=gc-mac', '--version=2', `--input-file=${data}`, `--signature-file=${sig}`);
  assert.deepEqual(readFileSync(sig), createHmac('sha256', macKey).update('tagged by gcloud').digest());
});

test('Node client: createImportJob, getImportJob, listImportJobs, importCryptoKeyVersion', async () => {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: await s.token(), expiry_date: Date.now() + 3_600_000 });
  const client = new KeyManagementServiceClient({
    apiEndpoint: '127.0.0.1',
    port: s.server.port,
    protocol: 'http',
    fallback: true,
    authClient: authClient as never,
  });
  try {
    const [created] = await client.createImportJob({
      parent: ringName,
      importJobId: 'node-job',
      importJob: { importMethod: 'RSA_OAEP_3072_SHA1_AES_256', protectionLevel: 'SOFTWARE' },
    });
    assert.equal(created.name, `${ringName}/importJobs/node-job`);
    assert.equal(created.state, 'ACTIVE');
    assert.equal(created.importMethod, 'RSA_OAEP_3072_SHA1_AES_256');
    assert.equal(created.protectionLevel, 'SOFTWARE');
    const [got] = await client.getImportJob({ name: created.name! });
    assert.equal(got.publicKey?.pem, created.publicKey?.pem);
    const [all] = await client.listImportJobs({ parent: ringName });
    assert.ok(all.some((x) => x.name === created.name));
    const [k] = await client.createCryptoKey({
      parent: ringName,
      cryptoKeyId: 'node-mac',
      skipInitialVersionCreation: true,
      cryptoKey: { purpose: 'MAC', importOnly: true, versionTemplate: { algorithm: 'HMAC_SHA512' } },
    });
    assert.equal(k.importOnly, true);
    const macKey = randomBytes(64);
    const [v] = await client.importCryptoKeyVersion({
      parent: k.name!,
      algorithm: 'HMAC_SHA512',
      importJob: created.name!,
      wrappedKey: nodeWrap(got.publicKey!.pem!, 'RSA_OAEP_3072_SHA1_AES_256', macKey),
    });
    assert.equal(v.state, 'ENABLED');
    assert.equal(v.importJob, created.name);
    assert.equal(v.reimportEligible, true);
    const data = Buffer.from('tag me, Node');
    const [tag] = await client.macSign({ name: v.name!, data });
    assert.deepEqual(Buffer.from(tag.mac as Uint8Array), createHmac('sha512', macKey).update(data).digest());
  } finally {
    await client.close();
  }
});

// Moves the clock past every job's expiry: keep it last.
test('an import job expires 3 days after creation: EXPIRED, no public key, and it cannot be used', async () => {
  const j = await job('expiring', 'RSA_OAEP_3072_SHA256');
  const keyName = await key('late', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const wrapped = b64(opensslWrap(j.publicKey.pem, 'RSA_OAEP_3072_SHA256', randomBytes(32)));
  s.advance(3 * DAY - 60_000);
  assert.equal(ok(await s.call('GET', `/v1/${j.name}`)).state, 'ACTIVE');
  s.advance(2 * 60_000);
  const expired = ok(await s.call('GET', `/v1/${j.name}`));
  assert.equal(expired.state, 'EXPIRED');
  assert.equal(expired.expireEventTime, j.expireTime);
  assert.equal(expired.publicKey, undefined);
  const listed = ok(await s.call('GET', `${ring}/importJobs?filter=state=EXPIRED`));
  assert.ok(listed.importJobs.some((x: any) => x.name === j.name));
  assertError(
    await importInto(keyName, {
      algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
      importJob: j.name,
      wrappedKey: wrapped,
    }),
    400,
    'FAILED_PRECONDITION',
    'EXPIRED',
    'ACTIVE import job',
  );
  assert.equal(ok(await s.call('GET', `/v1/${keyName}/cryptoKeyVersions`)).totalSize, 0);
});
