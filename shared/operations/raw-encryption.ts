/**
 * cryptoKeyVersions.rawEncrypt and rawDecrypt (RAW_ENCRYPT_DECRYPT keys): AES in GCM, CBC or CTR mode with no
 * OpenEKM framing, so the caller (or another AES implementation) can handle the ciphertext directly.
 *   GCM: a 12-byte IV chosen here (a caller's IV is refused); AAD allowed; ciphertext ‖ 16-byte tag.
 *   CBC, CTR: a 16-byte IV, the caller's or chosen here; no AAD; CBC takes whole 16-byte blocks (no padding).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Deps, RequestContext } from '../context.js';
import { crc32cString } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import { allowOnly, type Json, type JsonObject } from '../resources/fields.js';
import { atMost, checkedBytes, type InUse, MAX_INPUT_BYTES, useVersion } from './use-version.js';

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const BLOCK = 16;

function aesOf(use: InUse) {
  if (use.spec.kind !== 'aes') throw RpcError.failedPrecondition(`${use.version.algorithm} is not raw AES.`);
  return { mode: use.spec.mode, cipher: `aes-${use.spec.bytes * 8}-${use.spec.mode}` as const };
}

function int32(raw: Json | undefined, field: string): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  const n = typeof raw === 'string' && /^-?[0-9]{1,10}$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) {
    throw RpcError.invalidArgument(`Invalid value at '${field}': expected an integer.`, field);
  }
  return n;
}

function noAad(algorithm: string, aad: Buffer): void {
  if (aad.length > 0) {
    throw RpcError.invalidArgument(
      `${algorithm} takes no additional authenticated data; only the GCM algorithms do.`,
      'additionalAuthenticatedData',
    );
  }
}

function ivOf16(algorithm: string, iv: Buffer): void {
  if (iv.length !== BLOCK) {
    throw RpcError.invalidArgument(
      `${algorithm} needs a 16-byte initializationVector; it got ${iv.length} bytes.`,
      'initializationVector',
    );
  }
}

function wholeBlocks(algorithm: string, data: Buffer, field: string): void {
  if (data.length % BLOCK !== 0) {
    throw RpcError.invalidArgument(
      `${algorithm} does not pad: the ${field} must be a multiple of 16 bytes; it is ${data.length}. Pad it yourself (e.g. PKCS#7) or use AES GCM or CTR.`,
      field,
    );
  }
}

export interface RawEncryptResponse {
  ciphertext: string;
  initializationVector: string;
  tagLength: number;
  ciphertextCrc32c: string;
  initializationVectorCrc32c: string;
  verifiedPlaintextCrc32c: boolean;
  verifiedAdditionalAuthenticatedDataCrc32c: boolean;
  verifiedInitializationVectorCrc32c: boolean;
  name: string;
  protectionLevel: string;
}

export async function rawEncrypt(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<RawEncryptResponse> {
  allowOnly(body, [
    'name',
    'plaintext',
    'additionalAuthenticatedData',
    'plaintextCrc32c',
    'additionalAuthenticatedDataCrc32c',
    'initializationVector',
    'initializationVectorCrc32c',
  ]);
  const pt = checkedBytes(body, 'plaintext', 'plaintextCrc32c', ['plaintext_crc32c', 'plaintext']);
  const aad = checkedBytes(body, 'additionalAuthenticatedData', 'additionalAuthenticatedDataCrc32c', [
    'additional_authenticated_data_crc32c',
    'additional_authenticated_data',
  ]);
  const iv = checkedBytes(body, 'initializationVector', 'initializationVectorCrc32c', [
    'initialization_vector_crc32c',
    'initialization_vector',
  ]);
  if (pt.bytes === undefined) throw RpcError.invalidArgument('plaintext is required (base64).', 'plaintext');
  const plaintext = pt.bytes;
  const aadBytes = aad.bytes ?? Buffer.alloc(0);
  const hint = 'Encrypt larger data locally under a data key (envelope encryption).';
  atMost(plaintext, MAX_INPUT_BYTES, 'plaintext', hint);
  atMost(aadBytes, MAX_INPUT_BYTES, 'additionalAuthenticatedData', hint);
  const use = await useVersion(deps, ctx, name, ['RAW_ENCRYPT_DECRYPT'], 'rawEncrypt');
  const algorithm = use.version.algorithm;
  const { mode, cipher: cipherName } = aesOf(use);
  let ivBytes = iv.bytes ?? Buffer.alloc(0);
  let ciphertext: Buffer;
  if (mode === 'gcm') {
    if (ivBytes.length > 0) {
      throw RpcError.invalidArgument(
        `${algorithm} chooses its own 12-byte initialization vector: send no initializationVector.`,
        'initializationVector',
      );
    }
    ivBytes = randomBytes(GCM_IV_BYTES);
    const c = createCipheriv(cipherName as 'aes-256-gcm', use.material, ivBytes, {
      authTagLength: GCM_TAG_BYTES,
    });
    c.setAAD(aadBytes);
    ciphertext = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  } else {
    noAad(algorithm, aadBytes);
    if (ivBytes.length === 0) ivBytes = randomBytes(BLOCK);
    ivOf16(algorithm, ivBytes);
    if (mode === 'cbc') wholeBlocks(algorithm, plaintext, 'plaintext');
    const c = createCipheriv(cipherName, use.material, ivBytes);
    c.setAutoPadding(false);
    ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  }
  return {
    ciphertext: ciphertext.toString('base64'),
    initializationVector: ivBytes.toString('base64'),
    tagLength: mode === 'gcm' ? GCM_TAG_BYTES : 0,
    ciphertextCrc32c: crc32cString(ciphertext),
    initializationVectorCrc32c: crc32cString(ivBytes),
    verifiedPlaintextCrc32c: pt.verified,
    verifiedAdditionalAuthenticatedDataCrc32c: aad.verified,
    verifiedInitializationVectorCrc32c: iv.verified,
    name: use.version.name,
    protectionLevel: use.version.protectionLevel,
  };
}

export interface RawDecryptResponse {
  plaintext: string;
  plaintextCrc32c: string;
  protectionLevel: string;
  verifiedCiphertextCrc32c: boolean;
  verifiedAdditionalAuthenticatedDataCrc32c: boolean;
  verifiedInitializationVectorCrc32c: boolean;
}

export async function rawDecrypt(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<RawDecryptResponse> {
  allowOnly(body, [
    'name',
    'ciphertext',
    'additionalAuthenticatedData',
    'initializationVector',
    'tagLength',
    'ciphertextCrc32c',
    'additionalAuthenticatedDataCrc32c',
    'initializationVectorCrc32c',
  ]);
  const ct = checkedBytes(body, 'ciphertext', 'ciphertextCrc32c', ['ciphertext_crc32c', 'ciphertext']);
  const aad = checkedBytes(body, 'additionalAuthenticatedData', 'additionalAuthenticatedDataCrc32c', [
    'additional_authenticated_data_crc32c',
    'additional_authenticated_data',
  ]);
  const iv = checkedBytes(body, 'initializationVector', 'initializationVectorCrc32c', [
    'initialization_vector_crc32c',
    'initialization_vector',
  ]);
  const tagLength = int32(body.tagLength, 'tagLength') ?? 0;
  if (!ct.bytes || ct.bytes.length === 0) {
    throw RpcError.invalidArgument('ciphertext is required (base64).', 'ciphertext');
  }
  if (!iv.bytes || iv.bytes.length === 0) {
    throw RpcError.invalidArgument(
      'initializationVector is required: send the one rawEncrypt returned.',
      'initializationVector',
    );
  }
  const ciphertext = ct.bytes;
  const ivBytes = iv.bytes;
  const aadBytes = aad.bytes ?? Buffer.alloc(0);
  atMost(ciphertext, MAX_INPUT_BYTES + GCM_TAG_BYTES, 'ciphertext', '');
  atMost(aadBytes, MAX_INPUT_BYTES, 'additionalAuthenticatedData', '');
  const use = await useVersion(deps, ctx, name, ['RAW_ENCRYPT_DECRYPT'], 'rawDecrypt');
  const algorithm = use.version.algorithm;
  const { mode, cipher: cipherName } = aesOf(use);
  let plaintext: Buffer;
  if (mode === 'gcm') {
    const tag = tagLength === 0 ? GCM_TAG_BYTES : tagLength;
    if (tag < 12 || tag > 16) {
      throw RpcError.invalidArgument(
        `tagLength ${tagLength} is not valid for ${algorithm}: use 16 (or 0 for the default 16), or 12 to 16.`,
        'tagLength',
      );
    }
    if (ivBytes.length !== GCM_IV_BYTES) {
      throw RpcError.invalidArgument(
        `${algorithm} needs the 12-byte initializationVector rawEncrypt returned; it got ${ivBytes.length} bytes.`,
        'initializationVector',
      );
    }
    if (ciphertext.length < tag) {
      throw RpcError.invalidArgument(
        `The ciphertext is shorter than its ${tag}-byte authentication tag.`,
        'ciphertext',
      );
    }
    try {
      const d = createDecipheriv(cipherName as 'aes-256-gcm', use.material, ivBytes, { authTagLength: tag });
      d.setAAD(aadBytes);
      d.setAuthTag(ciphertext.subarray(ciphertext.length - tag));
      plaintext = Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - tag)), d.final()]);
    } catch {
      throw RpcError.invalidArgument(
        'Decryption failed: the ciphertext, initialization vector, tag length or additional authenticated data is not what rawEncrypt used with this key version.',
        'ciphertext',
      );
    }
  } else {
    noAad(algorithm, aadBytes);
    ivOf16(algorithm, ivBytes);
    if (tagLength !== 0) {
      throw RpcError.invalidArgument(
        `${algorithm} has no authentication tag: send tagLength 0 or none.`,
        'tagLength',
      );
    }
    if (mode === 'cbc') wholeBlocks(algorithm, ciphertext, 'ciphertext');
    const d = createDecipheriv(cipherName, use.material, ivBytes);
    d.setAutoPadding(false);
    plaintext = Buffer.concat([d.update(ciphertext), d.final()]);
  }
  return {
    plaintext: plaintext.toString('base64'),
    plaintextCrc32c: crc32cString(plaintext),
    protectionLevel: use.version.protectionLevel,
    verifiedCiphertextCrc32c: ct.verified,
    verifiedAdditionalAuthenticatedDataCrc32c: aad.verified,
    verifiedInitializationVectorCrc32c: iv.verified,
  };
}
