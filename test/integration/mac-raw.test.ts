/**
 * MAC and RAW_ENCRYPT_DECRYPT keys over HTTP against the real Firestore emulator: macSign/macVerify per HMAC hash
 * with their integrity fields, rawEncrypt/rawDecrypt in GCM, CBC and CTR with IVs, AAD and tag lengths, checked
 * against properties of the modes themselves (CBC chaining, CTR keystream, GCM authentication), and the
 * INVALID_ARGUMENT / FAILED_PRECONDITION answers of Cloud KMS.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertError, ok } from './admin-helpers.js';

let s: TestStack;
let ring: string;

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const crc = (b: Buffer) => String(crc32c(b) >>> 0);
const xor = (a: Buffer, b: Buffer) => Buffer.from(a.map((x, i) => x ^ b[i]!));

before(async () => {
  s = await startTestStack();
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=macraw`, {}));
  ring = `${loc}/keyRings/macraw`;
});
after(() => s.stop());

async function makeVersion(id: string, purpose: string, algorithm: string): Promise<string> {
  const key = ok(
    await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}`, { purpose, versionTemplate: { algorithm } }),
  );
  assert.equal(key.primary, undefined);
  return `${ring}/cryptoKeys/${id}/cryptoKeyVersions/1`;
}

const HMACS: [string, number][] = [
  ['HMAC_SHA1', 20],
  ['HMAC_SHA224', 28],
  ['HMAC_SHA256', 32],
  ['HMAC_SHA384', 48],
  ['HMAC_SHA512', 64],
];

test('macSign and macVerify for every HMAC: tag lengths, determinism, success and failure, integrity fields', async () => {
  for (const [algorithm, len] of HMACS) {
    const v = await makeVersion(algorithm.toLowerCase().replace('_', '-'), 'MAC', algorithm);
    const data = randomBytes(200);
    const r = ok(await s.call('POST', `${v}:macSign`, { data: b64(data), dataCrc32c: crc(data) }));
    const mac = Buffer.from(r.mac, 'base64');
    assert.equal(mac.length, len, algorithm);
    assert.equal(r.macCrc32c, crc(mac));
    assert.equal(r.verifiedDataCrc32c, true);
    assert.equal(r.name, v.slice(4));
    assert.equal(r.protectionLevel, 'SOFTWARE');
    const again = ok(await s.call('POST', `${v}:macSign`, { data: b64(data) }));
    assert.equal(again.mac, r.mac, 'HMAC is deterministic');
    assert.equal(again.verifiedDataCrc32c, false);
    const other = ok(
      await s.call('POST', `${v}:macSign`, { data: b64(Buffer.concat([data, Buffer.from('x')])) }),
    );
    assert.notEqual(other.mac, r.mac);

    const yes = ok(
      await s.call('POST', `${v}:macVerify`, {
        data: b64(data),
        dataCrc32c: crc(data),
        mac: r.mac,
        macCrc32c: crc(mac),
      }),
    );
    assert.deepEqual(
      [yes.success, yes.verifiedSuccessIntegrity, yes.verifiedDataCrc32c, yes.verifiedMacCrc32c, yes.name],
      [true, true, true, true, v.slice(4)],
    );
    const tampered = Buffer.from(mac);
    tampered[0]! ^= 1;
    const no = ok(await s.call('POST', `${v}:macVerify`, { data: b64(data), mac: b64(tampered) }));
    assert.deepEqual([no.success, no.verifiedSuccessIntegrity, no.verifiedMacCrc32c], [false, false, false]);
    const short = ok(
      await s.call('POST', `${v}:macVerify`, { data: b64(data), mac: b64(mac.subarray(0, 10)) }),
    );
    assert.equal(short.success, false, 'a truncated tag does not verify');
  }
  // Each key has its own secret: the same data gets different tags under two HMAC_SHA256 keys.
  const a = await makeVersion('twin-a', 'MAC', 'HMAC_SHA256');
  const b = await makeVersion('twin-b', 'MAC', 'HMAC_SHA256');
  const d = b64('same data');
  assert.notEqual(
    ok(await s.call('POST', `${a}:macSign`, { data: d })).mac,
    ok(await s.call('POST', `${b}:macSign`, { data: d })).mac,
  );
});

test('MAC errors: checksums, size, missing tag, wrong purpose, disabled version', async () => {
  const v = `${ring}/cryptoKeys/hmac-sha256/cryptoKeyVersions/1`;
  assertError(
    await s.call('POST', `${v}:macSign`, { data: b64('x'), dataCrc32c: '1' }),
    400,
    'INVALID_ARGUMENT',
    'The checksum in field data_crc32c did not match the data in field data.',
  );
  const mac = ok(await s.call('POST', `${v}:macSign`, { data: b64('x') })).mac;
  assertError(
    await s.call('POST', `${v}:macVerify`, { data: b64('x'), mac, macCrc32c: '1' }),
    400,
    'INVALID_ARGUMENT',
    'The checksum in field mac_crc32c did not match the data in field mac.',
  );
  assertError(
    await s.call('POST', `${v}:macVerify`, { data: b64('x') }),
    400,
    'INVALID_ARGUMENT',
    'mac is required',
  );
  assertError(
    await s.call('POST', `${v}:macSign`, { data: b64(Buffer.alloc(64 * 1024 + 1)) }),
    400,
    'INVALID_ARGUMENT',
    'too large',
  );
  assertError(
    await s.call('POST', `${v}:asymmetricSign`, { data: b64('x') }),
    400,
    'FAILED_PRECONDITION',
    'ASYMMETRIC_SIGN',
    'MAC',
  );
  assertError(await s.call('GET', `${v}/publicKey`), 400, 'FAILED_PRECONDITION', 'purpose MAC');
  ok(await s.call('PATCH', `${v}?updateMask=state`, { state: 'DISABLED' }));
  assertError(
    await s.call('POST', `${v}:macSign`, { data: b64('x') }),
    400,
    'FAILED_PRECONDITION',
    'DISABLED',
  );
  ok(await s.call('PATCH', `${v}?updateMask=state`, { state: 'ENABLED' }));
});

async function rawEncrypt(v: string, body: Record<string, unknown>) {
  const r = ok(await s.call('POST', `${v}:rawEncrypt`, body));
  const ct = Buffer.from(r.ciphertext, 'base64');
  const iv = Buffer.from(r.initializationVector, 'base64');
  assert.equal(r.ciphertextCrc32c, crc(ct));
  assert.equal(r.initializationVectorCrc32c, crc(iv));
  assert.equal(r.name, v.slice(4));
  assert.equal(r.protectionLevel, 'SOFTWARE');
  return { r, ct, iv };
}

async function rawDecrypt(v: string, body: Record<string, unknown>): Promise<Buffer> {
  const r = ok(await s.call('POST', `${v}:rawDecrypt`, body));
  const pt = Buffer.from(r.plaintext, 'base64');
  assert.equal(r.plaintextCrc32c, crc(pt));
  return pt;
}

test('raw AES-GCM (128 and 256): server IV of 12 bytes, ciphertext ‖ 16-byte tag, AAD bound, tampering refused', async () => {
  for (const [algorithm, id] of [
    ['AES_128_GCM', 'gcm128'],
    ['AES_256_GCM', 'gcm256'],
  ] as const) {
    const v = await makeVersion(id, 'RAW_ENCRYPT_DECRYPT', algorithm);
    const pt = randomBytes(77);
    const aad = Buffer.from('context');
    const { r, ct, iv } = await rawEncrypt(v, {
      plaintext: b64(pt),
      plaintextCrc32c: crc(pt),
      additionalAuthenticatedData: b64(aad),
      additionalAuthenticatedDataCrc32c: crc(aad),
      initializationVectorCrc32c: '0',
    });
    assert.equal(iv.length, 12);
    assert.equal(ct.length, pt.length + 16);
    assert.equal(r.tagLength, 16);
    assert.deepEqual(
      [
        r.verifiedPlaintextCrc32c,
        r.verifiedAdditionalAuthenticatedDataCrc32c,
        r.verifiedInitializationVectorCrc32c,
      ],
      [true, true, true],
    );
    const dec = ok(
      await s.call('POST', `${v}:rawDecrypt`, {
        ciphertext: b64(ct),
        ciphertextCrc32c: crc(ct),
        initializationVector: b64(iv),
        initializationVectorCrc32c: crc(iv),
        additionalAuthenticatedData: b64(aad),
        additionalAuthenticatedDataCrc32c: crc(aad),
        tagLength: 16,
      }),
    );
    assert.deepEqual(Buffer.from(dec.plaintext, 'base64'), pt);
    assert.deepEqual(
      [
        dec.verifiedCiphertextCrc32c,
        dec.verifiedAdditionalAuthenticatedDataCrc32c,
        dec.verifiedInitializationVectorCrc32c,
      ],
      [true, true, true],
    );
    // tagLength 0 means 16.
    assert.deepEqual(
      await rawDecrypt(v, {
        ciphertext: b64(ct),
        initializationVector: b64(iv),
        additionalAuthenticatedData: b64(aad),
      }),
      pt,
    );
    const second = await rawEncrypt(v, { plaintext: b64(pt), additionalAuthenticatedData: b64(aad) });
    assert.notDeepEqual(second.iv, iv, 'a fresh IV per call');
    const failed = (body: Record<string, unknown>) => s.call('POST', `${v}:rawDecrypt`, body);
    assertError(
      await failed({
        ciphertext: b64(ct),
        initializationVector: b64(iv),
        additionalAuthenticatedData: b64('other'),
      }),
      400,
      'INVALID_ARGUMENT',
      'Decryption failed',
    );
    const flipped = Buffer.from(ct);
    flipped[3]! ^= 0x80;
    assertError(
      await failed({
        ciphertext: b64(flipped),
        initializationVector: b64(iv),
        additionalAuthenticatedData: b64(aad),
      }),
      400,
      'INVALID_ARGUMENT',
      'Decryption failed',
    );
    assertError(
      await s.call('POST', `${v}:rawEncrypt`, {
        plaintext: b64(pt),
        initializationVector: b64(randomBytes(12)),
      }),
      400,
      'INVALID_ARGUMENT',
      'chooses its own 12-byte initialization vector',
    );
    assertError(
      await failed({ ciphertext: b64(ct), initializationVector: b64(randomBytes(16)) }),
      400,
      'INVALID_ARGUMENT',
      '12-byte initializationVector',
    );
  }
});

test('raw AES-CBC: caller or server IV of 16 bytes, whole blocks, chaining holds; no AAD', async () => {
  const v = await makeVersion('cbc', 'RAW_ENCRYPT_DECRYPT', 'AES_256_CBC');
  const iv = randomBytes(16);
  const pt = randomBytes(48);
  const {
    ct,
    iv: got,
    r,
  } = await rawEncrypt(v, {
    plaintext: b64(pt),
    initializationVector: b64(iv),
    initializationVectorCrc32c: crc(iv),
  });
  assert.deepEqual(got, iv);
  assert.equal(r.verifiedInitializationVectorCrc32c, true);
  assert.equal(ct.length, 48, 'no padding');
  // CBC chaining: the last block encrypted alone with the previous ciphertext block as IV gives the same block.
  const tail = await rawEncrypt(v, {
    plaintext: b64(pt.subarray(32)),
    initializationVector: b64(ct.subarray(16, 32)),
  });
  assert.deepEqual(tail.ct, ct.subarray(32));
  assert.deepEqual(await rawDecrypt(v, { ciphertext: b64(ct), initializationVector: b64(iv) }), pt);
  const server = await rawEncrypt(v, { plaintext: b64(pt) });
  assert.equal(server.iv.length, 16);
  assert.deepEqual(
    await rawDecrypt(v, { ciphertext: b64(server.ct), initializationVector: b64(server.iv) }),
    pt,
  );
  assertError(
    await s.call('POST', `${v}:rawEncrypt`, { plaintext: b64(randomBytes(20)) }),
    400,
    'INVALID_ARGUMENT',
    'multiple of 16 bytes',
  );
  assertError(
    await s.call('POST', `${v}:rawEncrypt`, { plaintext: b64(pt), additionalAuthenticatedData: b64('a') }),
    400,
    'INVALID_ARGUMENT',
    'no additional authenticated data',
  );
  assertError(
    await s.call('POST', `${v}:rawEncrypt`, {
      plaintext: b64(pt),
      initializationVector: b64(randomBytes(12)),
    }),
    400,
    'INVALID_ARGUMENT',
    '16-byte initializationVector',
  );
  assertError(
    await s.call('POST', `${v}:rawDecrypt`, { ciphertext: b64(ct) }),
    400,
    'INVALID_ARGUMENT',
    'initializationVector is required',
  );
});

test('raw AES-CTR: the same IV gives the same keystream, any length; checksums as Cloud KMS words them', async () => {
  const v = await makeVersion('ctr', 'RAW_ENCRYPT_DECRYPT', 'AES_128_CTR');
  const iv = randomBytes(16);
  const a = randomBytes(40);
  const b = randomBytes(40);
  const ea = await rawEncrypt(v, { plaintext: b64(a), initializationVector: b64(iv) });
  const eb = await rawEncrypt(v, { plaintext: b64(b), initializationVector: b64(iv) });
  assert.equal(ea.r.tagLength ?? 0, 0);
  assert.deepEqual(xor(ea.ct, a), xor(eb.ct, b), 'CTR: ciphertext xor plaintext is the keystream of the IV');
  assert.deepEqual(await rawDecrypt(v, { ciphertext: b64(ea.ct), initializationVector: b64(iv) }), a);
  assertError(
    await s.call('POST', `${v}:rawEncrypt`, { plaintext: b64(a), plaintextCrc32c: '5' }),
    400,
    'INVALID_ARGUMENT',
    'The checksum in field plaintext_crc32c did not match the data in field plaintext.',
  );
  assertError(
    await s.call('POST', `${v}:rawDecrypt`, {
      ciphertext: b64(ea.ct),
      initializationVector: b64(iv),
      initializationVectorCrc32c: '5',
    }),
    400,
    'INVALID_ARGUMENT',
    'The checksum in field initialization_vector_crc32c did not match the data in field initialization_vector.',
  );
  assertError(
    await s.call('POST', `${ring}/cryptoKeys/ctr:encrypt`, { plaintext: b64(a) }),
    400,
    'INVALID_ARGUMENT',
    'ENCRYPT_DECRYPT',
  );
});
