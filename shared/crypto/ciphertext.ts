/**
 * The OpenEKM ciphertext format, version 1 (docs/ciphertext-format.md is the normative description).
 *
 *   offset  size  field
 *   0       1     format version (1)
 *   1       1     protection level of the version (1 SOFTWARE, 2 HSM, 3 EXTERNAL, 4 EXTERNAL_VPC)
 *   2       4     version number, unsigned big-endian
 *   6       2     L: length of the key-protection block, unsigned big-endian
 *   8       L     key-protection block: the data key sealed under the version's internal material
 *                 (salt 16 ‖ sealed key 32 ‖ tag 16); EXTERNAL levels put the EKM-wrapped form of it here;
 *                 HSM leaves it empty (L = 0): the token encrypts the plaintext itself (sealInside)
 *   8+L     12    data IV
 *   20+L    n     AES-256-GCM ciphertext of the plaintext
 *   20+L+n  16    data tag
 *
 * Both GCM operations authenticate the 8 header bytes and the context: uint32 length of the version's resource
 * name ‖ the name (UTF-8) ‖ the caller's additional authenticated data. Moving a ciphertext to another version,
 * key or AAD therefore fails, and the header cannot be edited.
 *
 * The data key is fresh for every encrypt. It is sealed with a key derived by HKDF-SHA256 from the version's
 * internal material and a random 16-byte salt, so no (key, IV) pair ever repeats and no per-key message limit
 * applies.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { RpcError } from '../errors.js';

export const FORMAT_VERSION = 1;
const HEADER = 8;
const IV = 12;
const TAG = 16;
const SALT = 16;
const DEK = 32;
export const SEALED_DEK_BYTES = SALT + DEK + TAG;
const DEK_INFO = Buffer.from('openekm/dek/v1', 'utf8');
const ZERO_IV = Buffer.alloc(IV);

export interface CiphertextHeader {
  protectionLevel: number;
  versionNumber: number;
}

export interface ParsedCiphertext extends CiphertextHeader {
  header: Buffer;
  keyBlock: Buffer;
  iv: Buffer;
  data: Buffer;
  tag: Buffer;
}

/** The error every malformed, tampered or foreign ciphertext gets: deliberately the same bland message. */
export function decryptionFailed(cause?: unknown): RpcError {
  return new RpcError(
    'INVALID_ARGUMENT',
    'Decryption failed: the ciphertext is invalid, or it was not produced by this key with this additional authenticated data.',
    [],
    { cause },
  );
}

function encodeHeader(h: CiphertextHeader, keyBlockLength: number): Buffer {
  const header = Buffer.alloc(HEADER);
  header.writeUInt8(FORMAT_VERSION, 0);
  header.writeUInt8(h.protectionLevel, 1);
  header.writeUInt32BE(h.versionNumber, 2);
  header.writeUInt16BE(keyBlockLength, 6);
  return header;
}

function context(header: Buffer, versionName: string, aad: Buffer): Buffer {
  const name = Buffer.from(versionName, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(name.length, 0);
  return Buffer.concat([header, len, name, aad]);
}

function sealingKey(material: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', material, salt, DEK_INFO, 32));
}

/** Reads the header only: which version a ciphertext names. Throws the bland error on anything malformed. */
export function parseCiphertext(ciphertext: Buffer): ParsedCiphertext {
  if (ciphertext.length < HEADER + IV + TAG || ciphertext.readUInt8(0) !== FORMAT_VERSION)
    throw decryptionFailed();
  const versionNumber = ciphertext.readUInt32BE(2);
  const l = ciphertext.readUInt16BE(6);
  if (versionNumber === 0 || ciphertext.length < HEADER + l + IV + TAG) throw decryptionFailed();
  return {
    protectionLevel: ciphertext.readUInt8(1),
    versionNumber,
    header: ciphertext.subarray(0, HEADER),
    keyBlock: ciphertext.subarray(HEADER, HEADER + l),
    iv: ciphertext.subarray(HEADER + l, HEADER + l + IV),
    data: ciphertext.subarray(HEADER + l + IV, ciphertext.length - TAG),
    tag: ciphertext.subarray(ciphertext.length - TAG),
  };
}

/**
 * Encrypts under a fresh data key. `protectKey` turns the sealed data key into the key-protection block: the
 * identity for SOFTWARE, an EKM wrap for EXTERNAL levels. It receives the header-bound context so the EKM layer
 * can bind it too.
 */
export async function seal(args: {
  header: CiphertextHeader;
  versionName: string;
  material: Buffer;
  plaintext: Buffer;
  aad: Buffer;
  protectKey?: (sealedDek: Buffer) => Promise<Buffer>;
}): Promise<Buffer> {
  // One CSPRNG call for the data key, the salt and the data IV: three disjoint slices of fresh random bytes
  // (three calls cost measurably more per request).
  const random = randomBytes(DEK + SALT + IV);
  const dek = random.subarray(0, DEK);
  const salt = random.subarray(DEK, DEK + SALT);
  // The block length is part of the header; SOFTWARE blocks have a fixed size, EKM blocks are known only after
  // wrapping, so the header is made after protectKey and the context is bound to the final header.
  const dekCipherKey = sealingKey(args.material, salt);
  const pre = encodeHeader(args.header, 0);
  const dekCipher = createCipheriv('aes-256-gcm', dekCipherKey, ZERO_IV);
  dekCipher.setAAD(context(pre, args.versionName, args.aad));
  const sealedDek = Buffer.concat([salt, dekCipher.update(dek), dekCipher.final(), dekCipher.getAuthTag()]);
  const keyBlock = args.protectKey ? await args.protectKey(sealedDek) : sealedDek;
  if (keyBlock.length > 0xffff) throw RpcError.internal(new Error('key-protection block too large'));
  const header = encodeHeader(args.header, keyBlock.length);
  const iv = random.subarray(DEK + SALT);
  const cipher = createCipheriv('aes-256-gcm', dek, iv);
  cipher.setAAD(context(header, args.versionName, args.aad));
  const data = Buffer.concat([cipher.update(args.plaintext), cipher.final()]);
  return Buffer.concat([header, keyBlock, iv, data, cipher.getAuthTag()]);
}

/** Decrypts a parsed ciphertext. `unprotectKey` reverses `protectKey`. Every failure is the bland error. */
export async function open(args: {
  parsed: ParsedCiphertext;
  versionName: string;
  material: Buffer;
  aad: Buffer;
  unprotectKey?: (keyBlock: Buffer) => Promise<Buffer>;
}): Promise<Buffer> {
  const { parsed } = args;
  const sealedDek = args.unprotectKey ? await args.unprotectKey(parsed.keyBlock) : parsed.keyBlock;
  try {
    if (sealedDek.length !== SEALED_DEK_BYTES) throw new Error('sealed data key has the wrong length');
    const salt = sealedDek.subarray(0, SALT);
    const pre = encodeHeader(parsed, 0);
    const dekDecipher = createDecipheriv('aes-256-gcm', sealingKey(args.material, salt), ZERO_IV);
    dekDecipher.setAAD(context(pre, args.versionName, args.aad));
    dekDecipher.setAuthTag(sealedDek.subarray(SALT + DEK));
    const dek = Buffer.concat([
      dekDecipher.update(sealedDek.subarray(SALT, SALT + DEK)),
      dekDecipher.final(),
    ]);
    const decipher = createDecipheriv('aes-256-gcm', dek, parsed.iv);
    decipher.setAAD(context(parsed.header, args.versionName, args.aad));
    decipher.setAuthTag(parsed.tag);
    return Buffer.concat([decipher.update(parsed.data), decipher.final()]);
  } catch (err) {
    throw decryptionFailed(err);
  }
}

/**
 * HSM levels: the plaintext is encrypted inside the token under the version's key, with a fresh random IV and
 * the same authenticated context as the data of other levels; the key-protection block is empty. `encrypt`
 * returns AES-256-GCM ciphertext ‖ 16-byte tag.
 */
export async function sealInside(args: {
  header: CiphertextHeader;
  versionName: string;
  plaintext: Buffer;
  aad: Buffer;
  encrypt: (iv: Buffer, context: Buffer, plaintext: Buffer) => Promise<Buffer>;
}): Promise<Buffer> {
  const header = encodeHeader(args.header, 0);
  const iv = randomBytes(IV);
  const sealed = await args.encrypt(iv, context(header, args.versionName, args.aad), args.plaintext);
  if (sealed.length !== args.plaintext.length + TAG) {
    throw RpcError.internal(new Error(`the token returned ${sealed.length} bytes of AES-GCM output`));
  }
  return Buffer.concat([header, iv, sealed]);
}

/** Reverses sealInside; `decrypt` answers undefined when the tag does not verify. Failures are the bland error. */
export async function openInside(args: {
  parsed: ParsedCiphertext;
  versionName: string;
  aad: Buffer;
  decrypt: (iv: Buffer, context: Buffer, sealed: Buffer) => Promise<Buffer | undefined>;
}): Promise<Buffer> {
  const { parsed } = args;
  if (parsed.keyBlock.length !== 0) throw decryptionFailed();
  const plaintext = await args.decrypt(
    parsed.iv,
    context(parsed.header, args.versionName, args.aad),
    Buffer.concat([parsed.data, parsed.tag]),
  );
  if (!plaintext) throw decryptionFailed();
  return plaintext;
}
