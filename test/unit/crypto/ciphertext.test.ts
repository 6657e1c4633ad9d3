/** The OpenEKM ciphertext format v1 (shared/crypto/ciphertext.ts): layout, binding and the bland failure. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  FORMAT_VERSION,
  open,
  parseCiphertext,
  SEALED_DEK_BYTES,
  seal,
} from '../../../shared/crypto/ciphertext.js';
import { RpcError } from '../../../shared/errors.js';

const NAME = 'projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/7';
const material = randomBytes(32);

async function sealed(plaintext = Buffer.from('hello'), aad = Buffer.alloc(0)): Promise<Buffer> {
  return seal({
    header: { protectionLevel: 1, versionNumber: 7 },
    versionName: NAME,
    material,
    plaintext,
    aad,
  });
}

async function opens(
  ct: Buffer,
  opts: { name?: string; material?: Buffer; aad?: Buffer } = {},
): Promise<Buffer> {
  return open({
    parsed: parseCiphertext(ct),
    versionName: opts.name ?? NAME,
    material: opts.material ?? material,
    aad: opts.aad ?? Buffer.alloc(0),
  });
}

function isBland(err: unknown): boolean {
  return (
    err instanceof RpcError &&
    err.code === 'INVALID_ARGUMENT' &&
    /^Decryption failed/.test(err.message) &&
    err.details.length === 0
  );
}

test('layout: header, key-protection block, IV, data, tag', async () => {
  const pt = Buffer.from('twelve bytes');
  const ct = await sealed(pt);
  assert.equal(ct.readUInt8(0), FORMAT_VERSION);
  assert.equal(ct.readUInt8(1), 1);
  assert.equal(ct.readUInt32BE(2), 7);
  assert.equal(ct.readUInt16BE(6), SEALED_DEK_BYTES);
  assert.equal(ct.length, 8 + SEALED_DEK_BYTES + 12 + pt.length + 16);
  const p = parseCiphertext(ct);
  assert.equal(p.versionNumber, 7);
  assert.equal(p.protectionLevel, 1);
  assert.equal(p.data.length, pt.length);
  assert.ok((await opens(ct)).equals(pt));
});

test('round trips empty and 64 KiB plaintexts, with and without AAD', async () => {
  for (const pt of [Buffer.alloc(0), randomBytes(1), randomBytes(64 * 1024)]) {
    const aad = randomBytes(33);
    assert.ok((await opens(await sealed(pt), {})).equals(pt));
    assert.ok((await opens(await sealed(pt, aad), { aad })).equals(pt));
  }
});

test('fresh randomness: the same input never seals to the same bytes', async () => {
  const a = await sealed();
  const b = await sealed();
  assert.notDeepEqual(a, b);
  assert.notDeepEqual(a.subarray(8, 24), b.subarray(8, 24), 'salts differ');
});

test('bound to version name, material and AAD', async () => {
  const ct = await sealed(Buffer.from('x'), Buffer.from('aad'));
  assert.ok((await opens(ct, { aad: Buffer.from('aad') })).equals(Buffer.from('x')));
  await assert.rejects(opens(ct), isBland);
  await assert.rejects(opens(ct, { aad: Buffer.from('aae') }), isBland);
  await assert.rejects(opens(ct, { aad: Buffer.from('aad'), name: NAME.replace('/7', '/8') }), isBland);
  await assert.rejects(opens(ct, { aad: Buffer.from('aad'), name: NAME.replace('/k/', '/k2/') }), isBland);
  await assert.rejects(opens(ct, { aad: Buffer.from('aad'), material: randomBytes(32) }), isBland);
});

test('every single-bit change anywhere is detected with the bland error', async () => {
  const ct = await sealed(Buffer.from('0123456789abcdef'));
  for (let i = 0; i < ct.length; i++) {
    const t = Buffer.from(ct);
    t[i] = t[i]! ^ 0x80;
    await assert.rejects((async () => opens(t))(), (err) => isBland(err), `byte ${i} of ${ct.length}`);
  }
});

test('malformed inputs: too short, wrong format version, version 0, block length beyond the end', () => {
  assert.throws(() => parseCiphertext(Buffer.alloc(0)), isBland);
  assert.throws(() => parseCiphertext(Buffer.alloc(35)), isBland);
  const ok = Buffer.alloc(8 + SEALED_DEK_BYTES + 12 + 16);
  ok.writeUInt8(1, 0);
  ok.writeUInt8(1, 1);
  ok.writeUInt32BE(1, 2);
  ok.writeUInt16BE(SEALED_DEK_BYTES, 6);
  assert.doesNotThrow(() => parseCiphertext(ok));
  const v2 = Buffer.from(ok);
  v2.writeUInt8(2, 0);
  assert.throws(() => parseCiphertext(v2), isBland);
  const zero = Buffer.from(ok);
  zero.writeUInt32BE(0, 2);
  assert.throws(() => parseCiphertext(zero), isBland);
  const long = Buffer.from(ok);
  long.writeUInt16BE(SEALED_DEK_BYTES + 1, 6);
  assert.throws(() => parseCiphertext(long), isBland);
});

test('the key-protection hook wraps and unwraps the sealed data key, and is bound too', async () => {
  const wrapKey = randomBytes(1)[0]!;
  const protectKey = async (b: Buffer) => Buffer.concat([Buffer.from('EKM'), b.map((x) => x ^ wrapKey)]);
  const unprotectKey = async (b: Buffer) => Buffer.from(b.subarray(3).map((x) => x ^ wrapKey));
  const ct = await seal({
    header: { protectionLevel: 3, versionNumber: 2 },
    versionName: NAME,
    material,
    plaintext: Buffer.from('external'),
    aad: Buffer.alloc(0),
    protectKey,
  });
  assert.equal(ct.readUInt16BE(6), SEALED_DEK_BYTES + 3);
  const parsed = parseCiphertext(ct);
  assert.equal(parsed.protectionLevel, 3);
  const pt = await open({ parsed, versionName: NAME, material, aad: Buffer.alloc(0), unprotectKey });
  assert.equal(pt.toString(), 'external');
  await assert.rejects(open({ parsed, versionName: NAME, material, aad: Buffer.alloc(0) }), isBland);
});
