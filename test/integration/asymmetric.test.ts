/**
 * ASYMMETRIC_SIGN and ASYMMETRIC_DECRYPT keys over HTTP against the real Firestore emulator: creation per
 * algorithm, getPublicKey (PEM, DER, CRC32C), asymmetricSign over data and over digests with every signature checked
 * by node:crypto and by the OpenSSL command line, asymmetricDecrypt of ciphertexts made by node:crypto and by
 * OpenSSL, the integrity fields, and Cloud KMS's answers to wrong input, wrong purposes and version states.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  constants,
  createHash,
  createPublicKey,
  verify as nodeVerify,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertError, ok, violationField } from './admin-helpers.js';

let s: TestStack;
let ring: string;
let dir: string;

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const crc = (b: Buffer) => String(crc32c(b) >>> 0);

before(async () => {
  s = await startTestStack();
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=asym`, {}));
  ring = `${loc}/keyRings/asym`;
  dir = mkdtempSync(join(tmpdir(), 'openekm-asym-'));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await s.stop();
});

async function makeKey(id: string, purpose: string, algorithm: string): Promise<any> {
  return ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}`, { purpose, versionTemplate: { algorithm } }),
  );
}

async function publicPem(version: string): Promise<string> {
  const pk = ok(await s.call('GET', `${version}/publicKey`));
  assert.equal(pk.pemCrc32c, crc(Buffer.from(pk.pem, 'utf8')));
  return pk.pem;
}

async function sign(version: string, body: Record<string, unknown>): Promise<Buffer> {
  const r = ok(await s.call('POST', `${version}:asymmetricSign`, body));
  const sig = Buffer.from(r.signature, 'base64');
  assert.equal(r.signatureCrc32c, crc(sig));
  assert.equal(r.name, version.slice('/v1/'.length));
  assert.equal(r.protectionLevel, 'SOFTWARE');
  return sig;
}

function openssl(args: string[], input?: Buffer): string {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
}

/** Verifies with `openssl dgst` (or pkeyutl for Ed25519); true when OpenSSL says "Verified OK"/"Success". */
function opensslVerifies(pem: string, algorithm: string, data: Buffer, sig: Buffer): boolean {
  const tag = randomBytes(4).toString('hex');
  const [pub, msg, sigf] = ['pub.pem', 'msg', 'sig'].map((f) => join(dir, `${tag}-${f}`)) as [
    string,
    string,
    string,
  ];
  writeFileSync(pub, pem);
  writeFileSync(msg, data);
  writeFileSync(sigf, sig);
  try {
    if (algorithm === 'EC_SIGN_ED25519') {
      return /Success/.test(
        openssl(['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', msg, '-sigfile', sigf]),
      );
    }
    const hash = /SHA512/.test(algorithm) ? 'sha512' : /P384/.test(algorithm) ? 'sha384' : 'sha256';
    const pss = /PSS/.test(algorithm)
      ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${hash === 'sha512' ? 64 : 32}`]
      : [];
    return /Verified OK/.test(openssl(['dgst', `-${hash}`, '-verify', pub, ...pss, '-signature', sigf, msg]));
  } catch {
    return false;
  }
}

function nodeVerifies(pem: string, algorithm: string, data: Buffer, sig: Buffer): boolean {
  const key = createPublicKey(pem);
  if (algorithm === 'EC_SIGN_ED25519') return nodeVerify(null, data, key, sig);
  const hash = /SHA512/.test(algorithm) ? 'sha512' : /P384/.test(algorithm) ? 'sha384' : 'sha256';
  if (/PSS/.test(algorithm)) {
    return nodeVerify(
      hash,
      data,
      { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === 'sha512' ? 64 : 32 },
      sig,
    );
  }
  return nodeVerify(hash, data, key, sig);
}

const SIGNING: [string, string][] = [
  ['ec256', 'EC_SIGN_P256_SHA256'],
  ['ec384', 'EC_SIGN_P384_SHA384'],
  ['k1', 'EC_SIGN_SECP256K1_SHA256'],
  ['ed', 'EC_SIGN_ED25519'],
  ['pss2048', 'RSA_SIGN_PSS_2048_SHA256'],
  ['pss3072', 'RSA_SIGN_PSS_3072_SHA256'],
  ['pss4096', 'RSA_SIGN_PSS_4096_SHA512'],
  ['pkcs2048', 'RSA_SIGN_PKCS1_2048_SHA256'],
  ['pkcs4096', 'RSA_SIGN_PKCS1_4096_SHA512'],
];

test('every signing algorithm: a key without primary, its public key, signatures over data and digests that node:crypto and OpenSSL verify', async () => {
  for (const [id, algorithm] of SIGNING) {
    const key = await makeKey(id, 'ASYMMETRIC_SIGN', algorithm);
    assert.equal(key.purpose, 'ASYMMETRIC_SIGN');
    assert.equal(key.versionTemplate.algorithm, algorithm);
    assert.equal(key.primary, undefined, 'only ENCRYPT_DECRYPT keys have a primary');
    const version = `${ring}/cryptoKeys/${id}/cryptoKeyVersions/1`;
    const v = ok(await s.call('GET', version));
    assert.equal(v.state, 'ENABLED');
    assert.equal(v.algorithm, algorithm);
    const pk = ok(await s.call('GET', `${version}/publicKey`));
    assert.equal(pk.algorithm, algorithm);
    assert.equal(pk.name, version.slice(4));
    assert.equal(pk.protectionLevel, 'SOFTWARE');
    assert.match(pk.pem, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.equal(pk.pemCrc32c, crc(Buffer.from(pk.pem, 'utf8')));
    assert.equal(pk.publicKey, undefined, 'without publicKeyFormat the key is in pem only');

    const data = randomBytes(100);
    const sig = await sign(version, { data: b64(data), dataCrc32c: crc(data) });
    assert.ok(
      nodeVerifies(pk.pem, algorithm, data, sig),
      `${algorithm}: node:crypto verifies data signature`,
    );
    assert.ok(opensslVerifies(pk.pem, algorithm, data, sig), `${algorithm}: OpenSSL verifies data signature`);
    const other = Buffer.concat([data, Buffer.from('!')]);
    assert.ok(!nodeVerifies(pk.pem, algorithm, other, sig), `${algorithm}: a changed message fails`);
    assert.ok(
      !opensslVerifies(pk.pem, algorithm, other, sig),
      `${algorithm}: OpenSSL refuses a changed message`,
    );

    if (algorithm !== 'EC_SIGN_ED25519') {
      const hash = /SHA512/.test(algorithm) ? 'sha512' : /P384/.test(algorithm) ? 'sha384' : 'sha256';
      const digest = createHash(hash).update(data).digest();
      const r = ok(
        await s.call('POST', `${version}:asymmetricSign`, {
          digest: { [hash]: b64(digest) },
          digestCrc32c: crc(digest),
        }),
      );
      assert.equal(r.verifiedDigestCrc32c, true);
      assert.equal(r.verifiedDataCrc32c, false);
      const dsig = Buffer.from(r.signature, 'base64');
      assert.ok(
        nodeVerifies(pk.pem, algorithm, data, dsig),
        `${algorithm}: node:crypto verifies digest signature`,
      );
      assert.ok(
        opensslVerifies(pk.pem, algorithm, data, dsig),
        `${algorithm}: OpenSSL verifies digest signature`,
      );
      if (algorithm.startsWith('RSA')) {
        const bits = Number(/_(\d{4})_/.exec(algorithm)![1]);
        assert.equal(dsig.length, bits / 8, 'RSA signatures are modulus-length');
      }
    } else {
      assert.equal(sig.length, 64);
    }
  }
});

test('RSA_SIGN_RAW_PKCS1: data only, at most the modulus length less 11, padded without DigestInfo', async () => {
  await makeKey('raw', 'ASYMMETRIC_SIGN', 'RSA_SIGN_RAW_PKCS1_2048');
  const version = `${ring}/cryptoKeys/raw/cryptoKeyVersions/1`;
  const pem = await publicPem(version);
  const data = randomBytes(245);
  const sig = await sign(version, { data: b64(data) });
  // Undoing the signature with the public key gives back exactly the bytes signed.
  writeFileSync(join(dir, 'raw.pem'), pem);
  const opened = execFileSync(
    'openssl',
    [
      'pkeyutl',
      '-verifyrecover',
      '-pubin',
      '-inkey',
      join(dir, 'raw.pem'),
      '-pkeyopt',
      'rsa_padding_mode:pkcs1',
    ],
    { input: sig, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  assert.deepEqual(opened, data);
  assertError(
    await s.call('POST', `${version}:asymmetricSign`, { data: b64(randomBytes(246)) }),
    400,
    'INVALID_ARGUMENT',
    'at most 245 bytes',
  );
  assertError(
    await s.call('POST', `${version}:asymmetricSign`, { digest: { sha256: b64(randomBytes(32)) } }),
    400,
    'INVALID_ARGUMENT',
    'data, not a digest',
  );
});

test('asymmetricSign refuses wrong input with the field and what to do; CRC32C mismatches as Cloud KMS words them', async () => {
  const version = `${ring}/cryptoKeys/ec256/cryptoKeyVersions/1`;
  const sign = (body: unknown) => s.call('POST', `${version}:asymmetricSign`, body);
  const d32 = b64(randomBytes(32));
  assertError(
    await sign({ digest: { sha384: b64(randomBytes(48)) } }),
    400,
    'INVALID_ARGUMENT',
    'digest.sha256',
  );
  assertError(await sign({ digest: { sha256: b64(randomBytes(31)) } }), 400, 'INVALID_ARGUMENT', '32 bytes');
  assertError(await sign({ digest: { sha256: d32 }, data: b64('x') }), 400, 'INVALID_ARGUMENT', 'not both');
  assertError(await sign({}), 400, 'INVALID_ARGUMENT', 'data', 'digest');
  const bad = await sign({ data: b64('hello'), dataCrc32c: '1' });
  assertError(
    bad,
    400,
    'INVALID_ARGUMENT',
    'The checksum in field data_crc32c did not match the data in field data.',
  );
  assertError(
    await sign({ digest: { sha256: d32 }, digestCrc32c: '7' }),
    400,
    'INVALID_ARGUMENT',
    'The checksum in field digest_crc32c did not match the data in field digest.',
  );
  assertError(await sign({ data: b64('x'), extra: 1 }), 400, 'INVALID_ARGUMENT', 'Unknown name "extra"');
  assertError(
    await s.call('POST', `${ring}/cryptoKeys/ed/cryptoKeyVersions/1:asymmetricSign`, {
      digest: { sha256: d32 },
    }),
    400,
    'INVALID_ARGUMENT',
    'signs the message itself',
  );
});

const DECRYPTING: [string, string, 'sha1' | 'sha256' | 'sha512', number][] = [
  ['oaep2048', 'RSA_DECRYPT_OAEP_2048_SHA256', 'sha256', 2048],
  ['oaep3072', 'RSA_DECRYPT_OAEP_3072_SHA256', 'sha256', 3072],
  ['oaep4096', 'RSA_DECRYPT_OAEP_4096_SHA512', 'sha512', 4096],
  ['oaep2048s1', 'RSA_DECRYPT_OAEP_2048_SHA1', 'sha1', 2048],
];

test('asymmetricDecrypt opens RSA-OAEP ciphertexts made by node:crypto and by OpenSSL, with its CRC32C fields', async () => {
  for (const [id, algorithm, hash, bits] of DECRYPTING) {
    await makeKey(id, 'ASYMMETRIC_DECRYPT', algorithm);
    const version = `${ring}/cryptoKeys/${id}/cryptoKeyVersions/1`;
    const pem = await publicPem(version);
    const plaintext = randomBytes(32);
    const ct = publicEncrypt(
      { key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
      plaintext,
    );
    const r = ok(
      await s.call('POST', `${version}:asymmetricDecrypt`, {
        ciphertext: b64(ct),
        ciphertextCrc32c: crc(ct),
      }),
    );
    assert.deepEqual(Buffer.from(r.plaintext, 'base64'), plaintext, algorithm);
    assert.equal(r.plaintextCrc32c, crc(plaintext));
    assert.equal(r.verifiedCiphertextCrc32c, true);
    assert.equal(r.protectionLevel, 'SOFTWARE');
    assert.equal(r.name, undefined, 'AsymmetricDecryptResponse has no name');

    writeFileSync(join(dir, `${id}.pem`), pem);
    writeFileSync(join(dir, `${id}.in`), plaintext);
    const osslCt = execFileSync('openssl', [
      'pkeyutl',
      '-encrypt',
      '-pubin',
      '-inkey',
      join(dir, `${id}.pem`),
      '-in',
      join(dir, `${id}.in`),
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      `rsa_oaep_md:${hash}`,
      '-pkeyopt',
      `rsa_mgf1_md:${hash}`,
    ]);
    assert.equal(osslCt.length, bits / 8);
    const o = ok(await s.call('POST', `${version}:asymmetricDecrypt`, { ciphertext: b64(osslCt) }));
    assert.deepEqual(Buffer.from(o.plaintext, 'base64'), plaintext, `${algorithm}: OpenSSL's ciphertext`);
    assert.equal(o.verifiedCiphertextCrc32c, false);
  }
  const version = `${ring}/cryptoKeys/oaep2048/cryptoKeyVersions/1`;
  const pem = await publicPem(version);
  // The wrong OAEP hash, a changed ciphertext, and a wrong length are all "Decryption failed".
  const sha1 = publicEncrypt(
    { key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    randomBytes(8),
  );
  const wrongHash = await s.call('POST', `${version}:asymmetricDecrypt`, { ciphertext: b64(sha1) });
  assertError(wrongHash, 400, 'INVALID_ARGUMENT', 'Decryption failed', 'SHA256');
  assertError(
    await s.call('POST', `${version}:asymmetricDecrypt`, { ciphertext: b64(randomBytes(100)) }),
    400,
    'INVALID_ARGUMENT',
    'Decryption failed',
    '256 bytes',
  );
  assertError(
    await s.call('POST', `${version}:asymmetricDecrypt`, { ciphertext: b64(sha1), ciphertextCrc32c: '0' }),
    400,
    'INVALID_ARGUMENT',
    'The checksum in field ciphertext_crc32c did not match the data in field ciphertext.',
  );
});

test('getPublicKey in PEM and DER with publicKey.data and its checksum; NIST_PQC is for post-quantum keys', async () => {
  const version = `${ring}/cryptoKeys/ec384/cryptoKeyVersions/1`;
  const plain = ok(await s.call('GET', `${version}/publicKey`));
  const pem = ok(await s.call('GET', `${version}/publicKey?publicKeyFormat=PEM`));
  assert.equal(pem.publicKeyFormat, 'PEM');
  assert.equal(Buffer.from(pem.publicKey.data, 'base64').toString('utf8'), plain.pem);
  assert.equal(pem.publicKey.crc32cChecksum, crc(Buffer.from(plain.pem, 'utf8')));
  const der = ok(await s.call('GET', `${version}/publicKey?publicKeyFormat=DER`));
  assert.equal(der.publicKeyFormat, 'DER');
  assert.equal(der.pem, undefined);
  const derBytes = Buffer.from(der.publicKey.data, 'base64');
  assert.equal(der.publicKey.crc32cChecksum, crc(derBytes));
  assert.ok(
    createPublicKey({ key: derBytes, format: 'der', type: 'spki' }).equals(createPublicKey(plain.pem)),
    'the DER and PEM forms are the same key',
  );
  const asInt = ok(await s.call('GET', `${version}/publicKey?publicKeyFormat=2`));
  assert.equal(asInt.publicKey.data, der.publicKey.data);
  assertError(
    await s.call('GET', `${version}/publicKey?publicKeyFormat=NIST_PQC`),
    400,
    'INVALID_ARGUMENT',
    'post-quantum',
  );
  assertError(
    await s.call('GET', `${version}/publicKey?publicKeyFormat=JPEG`),
    400,
    'INVALID_ARGUMENT',
    'publicKeyFormat',
  );
});

test('purposes and states: wrong purpose and disabled versions are FAILED_PRECONDITION; destroy/restore; new versions have new keys', async () => {
  ok(await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=sym`, { purpose: 'ENCRYPT_DECRYPT' }));
  const sym = `${ring}/cryptoKeys/sym/cryptoKeyVersions/1`;
  assertError(
    await s.call('GET', `${sym}/publicKey`),
    400,
    'FAILED_PRECONDITION',
    'ASYMMETRIC_SIGN',
    'ENCRYPT_DECRYPT',
  );
  assertError(
    await s.call('POST', `${sym}:asymmetricSign`, { data: b64('x') }),
    400,
    'FAILED_PRECONDITION',
    'purpose ASYMMETRIC_SIGN',
  );
  const signKey = `${ring}/cryptoKeys/ec256`;
  assertError(
    await s.call('POST', `${signKey}/cryptoKeyVersions/1:asymmetricDecrypt`, {
      ciphertext: b64(randomBytes(256)),
    }),
    400,
    'FAILED_PRECONDITION',
    'ASYMMETRIC_DECRYPT',
  );
  assertError(
    await s.call('POST', `${signKey}:encrypt`, { plaintext: b64('x') }),
    400,
    'INVALID_ARGUMENT',
    'ENCRYPT_DECRYPT',
  );
  assertError(
    await s.call('POST', `${signKey}:updatePrimaryVersion`, { cryptoKeyVersionId: '1' }),
    400,
    'FAILED_PRECONDITION',
    'Only ENCRYPT_DECRYPT keys have a primary version',
  );

  const v2 = ok(await s.call('POST', `${signKey}/cryptoKeyVersions`, {}));
  assert.equal(v2.name, `${signKey.slice(4)}/cryptoKeyVersions/2`);
  assert.equal(v2.algorithm, 'EC_SIGN_P256_SHA256');
  assert.equal(v2.state, 'ENABLED');
  const pem1 = await publicPem(`${signKey}/cryptoKeyVersions/1`);
  const pem2 = await publicPem(`/v1/${v2.name}`);
  assert.notEqual(pem1, pem2, 'each version has its own key pair');
  assert.equal(ok(await s.call('GET', signKey)).primary, undefined);

  const v2path = `/v1/${v2.name}`;
  ok(await s.call('PATCH', `${v2path}?updateMask=state`, { state: 'DISABLED' }));
  const disabled = await s.call('POST', `${v2path}:asymmetricSign`, { data: b64('x') });
  assertError(disabled, 400, 'FAILED_PRECONDITION', 'is not enabled, current state is: DISABLED.');
  assert.equal(disabled.json.error.details[0].violations[0].type, 'KEY_DISABLED');
  assertError(await s.call('GET', `${v2path}/publicKey`), 400, 'FAILED_PRECONDITION', 'DISABLED');
  assert.equal(ok(await s.call('POST', `${v2path}:destroy`, {})).state, 'DESTROY_SCHEDULED');
  assertError(await s.call('GET', `${v2path}/publicKey`), 400, 'FAILED_PRECONDITION', 'DESTROY_SCHEDULED');
  assert.equal(ok(await s.call('POST', `${v2path}:restore`, {})).state, 'DISABLED');
  ok(await s.call('PATCH', `${v2path}?updateMask=state`, { state: 'ENABLED' }));
  assert.equal(await publicPem(v2path), pem2, 'a restored version keeps its key');
  const data = Buffer.from('after restore');
  assert.ok(nodeVerifies(pem2, 'EC_SIGN_P256_SHA256', data, await sign(v2path, { data: b64(data) })));
  assertError(await s.call('GET', `${signKey}/cryptoKeyVersions/9/publicKey`), 404, 'NOT_FOUND');
});

test('creation rules: the algorithm must fit the purpose; unimplemented algorithms and levels are UNIMPLEMENTED; no rotation', async () => {
  const create = (id: string, body: unknown) => s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}`, body);
  const wrong = await create('bad1', {
    purpose: 'ASYMMETRIC_SIGN',
    versionTemplate: { algorithm: 'HMAC_SHA256' },
  });
  assertError(wrong, 400, 'INVALID_ARGUMENT', 'HMAC_SHA256 is for MAC keys', 'EC_SIGN_P256_SHA256');
  assert.equal(violationField(wrong), 'versionTemplate.algorithm');
  assertError(
    await create('bad2', {
      purpose: 'ASYMMETRIC_DECRYPT',
      versionTemplate: { algorithm: 'RSA_SIGN_PSS_2048_SHA256' },
    }),
    400,
    'INVALID_ARGUMENT',
    'for ASYMMETRIC_SIGN keys',
  );
  assertError(
    await create('bad3', {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256' },
    }),
    400,
    'INVALID_ARGUMENT',
    'GOOGLE_SYMMETRIC_ENCRYPTION',
  );
  assertError(
    await create('bad4', { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'PQ_SIGN_ML_DSA_65' } }),
    501,
    'UNIMPLEMENTED',
    'PQ_SIGN_ML_DSA_65',
  );
  assertError(
    await create('bad5', {
      purpose: 'ASYMMETRIC_SIGN',
      versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256', protectionLevel: 'EXTERNAL' },
    }),
    501,
    'UNIMPLEMENTED',
    'EXTERNAL',
  );
  assertError(
    await create('bad6', {
      purpose: 'ASYMMETRIC_SIGN',
      versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256' },
      rotationPeriod: '86400s',
      nextRotationTime: new Date(Date.now() + 86_400_000).toISOString(),
    }),
    400,
    'INVALID_ARGUMENT',
    'Only ENCRYPT_DECRYPT keys rotate',
  );
  // Enums by number, as the Node client sends them: 5 = ASYMMETRIC_SIGN, 12 = EC_SIGN_P256_SHA256.
  const num = ok(await create('bynum', { purpose: 5, versionTemplate: { algorithm: 12 } }));
  assert.equal(num.versionTemplate.algorithm, 'EC_SIGN_P256_SHA256');
  // Skipping the first version, then patching the template to another algorithm of the same purpose.
  ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=later&skipInitialVersionCreation=true`, {
      purpose: 'ASYMMETRIC_SIGN',
      versionTemplate: { algorithm: 'EC_SIGN_P256_SHA256' },
    }),
  );
  const later = `${ring}/cryptoKeys/later`;
  assert.equal((ok(await s.call('GET', `${later}/cryptoKeyVersions`)).cryptoKeyVersions ?? []).length, 0);
  ok(
    await s.call('PATCH', `${later}?updateMask=versionTemplate.algorithm`, {
      versionTemplate: { algorithm: 'EC_SIGN_P384_SHA384' },
    }),
  );
  assertError(
    await s.call('PATCH', `${later}?updateMask=versionTemplate.algorithm`, {
      versionTemplate: { algorithm: 'RSA_DECRYPT_OAEP_2048_SHA256' },
    }),
    400,
    'INVALID_ARGUMENT',
    'for ASYMMETRIC_DECRYPT keys',
  );
  const v1 = ok(await s.call('POST', `${later}/cryptoKeyVersions`, {}));
  assert.equal(v1.algorithm, 'EC_SIGN_P384_SHA384');
  const pk = ok(await s.call('GET', `/v1/${v1.name}/publicKey`));
  assert.equal(createPublicKey(pk.pem).asymmetricKeyDetails?.namedCurve, 'secp384r1');
  for (const id of ['bad1', 'bad2', 'bad3', 'bad4', 'bad5', 'bad6']) {
    assertError(await s.call('GET', `${ring}/cryptoKeys/${id}`), 404, 'NOT_FOUND');
  }
});

test('generateRandomBytes: lengths 8..1024 checked; SOFTWARE UNIMPLEMENTED as in Cloud KMS; HSM without a token FAILED_PRECONDITION naming the settings', async () => {
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  const gen = (body: unknown) => s.call('POST', `${loc}:generateRandomBytes`, body);
  assertError(await gen({ lengthBytes: 4, protectionLevel: 'HSM' }), 400, 'INVALID_ARGUMENT', '8 to 1024');
  assertError(await gen({ lengthBytes: 2000, protectionLevel: 'HSM' }), 400, 'INVALID_ARGUMENT', '8 to 1024');
  assertError(await gen({ lengthBytes: 32, protectionLevel: 'SOFTWARE' }), 501, 'UNIMPLEMENTED', 'HSM');
  assertError(
    await gen({ lengthBytes: 32, protectionLevel: 'HSM' }),
    400,
    'FAILED_PRECONDITION',
    'generateRandomBytes at protection level HSM needs a PKCS#11 token',
    'OPENEKM_HSM_MODULE',
  );
});

test('Cloud KMS methods OpenEKM does not implement answer 501 UNIMPLEMENTED naming the method, never 404', async () => {
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  const key = `${ring}/cryptoKeys/ec256`;
  const cases: [string, string, string][] = [
    ['POST', `${key}/cryptoKeyVersions/1:decapsulate`, 'Decapsulate'],
    ['GET', `/v1/projects/${s.project}/locations`, 'ListLocations'],
    ['GET', loc, 'GetLocation'],
  ];
  for (const [method, path, rpc] of cases) {
    assertError(
      await s.call(method, path, method === 'POST' ? {} : undefined),
      501,
      'UNIMPLEMENTED',
      rpc,
      'not implemented',
    );
  }
});
