/**
 * Key import (Cloud KMS's ImportJob methods 1–6): the import job's RSA wrapping key pair, unwrapping what a
 * caller wrapped with its public key, and checking that the unwrapped material fits the algorithm it is imported
 * as. All of it is node:crypto (OpenSSL).
 *
 * Wrapped forms (RFC 8017 RSA-OAEP with an empty label, MGF1 with the same hash; RFC 5649 AES key wrap with
 * padding, default IV A65959A6):
 *   - RSA_OAEP_{3072,4096}_{SHA1,SHA256}_AES_256: RSA-OAEP(job key, ephemeral AES-256 key) ‖ AES-KWP(ephemeral, material)
 *   - RSA_OAEP_{3072,4096}_SHA256:                RSA-OAEP-SHA256(job key, material)  (material ≤ modulus − 66 bytes)
 * Material, as sealed afterwards like generated material (crypto/algorithms.ts): the raw bytes of symmetric and
 * HMAC keys, the private key as PKCS#8 DER for asymmetric keys.
 */
import { constants, createDecipheriv, createPrivateKey, generateKeyPair, privateDecrypt } from 'node:crypto';
import { promisify } from 'node:util';
import { RpcError } from '../errors.js';
import type { AlgorithmName, ImportMethodName } from '../resources/types.js';
import { HASH_BYTES, SPECS } from './algorithms.js';

const generateKeyPairAsync = promisify(generateKeyPair);

interface MethodSpec {
  bits: 3072 | 4096;
  hash: 'sha1' | 'sha256';
  /** Whether the material is wrapped with an ephemeral AES-256 key (KWP) whose RSA-OAEP wrap comes first. */
  aes: boolean;
}

/** The import methods OpenEKM implements. */
export const IMPORT_METHODS: Partial<Record<ImportMethodName, MethodSpec>> = {
  RSA_OAEP_3072_SHA1_AES_256: { bits: 3072, hash: 'sha1', aes: true },
  RSA_OAEP_4096_SHA1_AES_256: { bits: 4096, hash: 'sha1', aes: true },
  RSA_OAEP_3072_SHA256_AES_256: { bits: 3072, hash: 'sha256', aes: true },
  RSA_OAEP_4096_SHA256_AES_256: { bits: 4096, hash: 'sha256', aes: true },
  RSA_OAEP_3072_SHA256: { bits: 3072, hash: 'sha256', aes: false },
  RSA_OAEP_4096_SHA256: { bits: 4096, hash: 'sha256', aes: false },
};

/** A new wrapping key pair for an import job: its public key as PEM, its private key as PKCS#8 DER. */
export async function generateWrappingKey(
  method: ImportMethodName,
): Promise<{ publicKeyPem: string; privateKeyDer: Buffer }> {
  const spec = IMPORT_METHODS[method]!;
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: spec.bits,
    publicExponent: 0x10001,
  });
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    privateKeyDer: privateKey.export({ type: 'pkcs8', format: 'der' }),
  };
}

/** Why an import failed (the version's importFailureReason); never carries material. */
export class ImportFailure extends Error {}

const KWP_IV = Buffer.from('A65959A6', 'hex');

/**
 * The material inside `wrapped`. A wrapped key of the wrong shape for the method is INVALID_ARGUMENT (nothing was
 * tried); one that does not open under the job's key throws ImportFailure.
 */
export function unwrapKey(
  method: ImportMethodName,
  privateKeyDer: Buffer,
  wrapped: Buffer,
  field: string,
): Buffer {
  const spec = IMPORT_METHODS[method]!;
  const rsaBytes = spec.bits / 8;
  const key = createPrivateKey({ key: privateKeyDer, format: 'der', type: 'pkcs8' });
  const oaep = (block: Buffer): Buffer => {
    try {
      return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: spec.hash }, block);
    } catch {
      throw new ImportFailure(
        `The RSA-OAEP part of the wrapped key does not decrypt with the import job's key (RSA ${spec.bits}, OAEP and MGF1 with ${spec.hash.toUpperCase()}, empty label): wrap with this job's public key and the method's hash.`,
      );
    }
  };
  if (!spec.aes) {
    if (wrapped.length !== rsaBytes) {
      throw RpcError.invalidArgument(
        `${field} must be exactly ${rsaBytes} bytes for ${method} (one RSA-OAEP block); got ${wrapped.length}.`,
        field,
      );
    }
    return oaep(wrapped);
  }
  const kwpLength = wrapped.length - rsaBytes;
  if (kwpLength < 16 || kwpLength % 8 !== 0) {
    throw RpcError.invalidArgument(
      `${field} must be the ${rsaBytes}-byte RSA-OAEP wrap of an AES-256 key followed by the AES-KWP (RFC 5649) wrap of the key material (a multiple of 8 bytes, at least 16); got ${wrapped.length} bytes.`,
      field,
    );
  }
  const aesKey = oaep(wrapped.subarray(0, rsaBytes));
  if (aesKey.length !== 32) {
    throw new ImportFailure(
      `The RSA-OAEP part of the wrapped key holds ${aesKey.length} bytes; ${method} wraps a 32-byte AES-256 key.`,
    );
  }
  try {
    const d = createDecipheriv('id-aes256-wrap-pad', aesKey, KWP_IV);
    return Buffer.concat([d.update(wrapped.subarray(rsaBytes)), d.final()]);
  } catch {
    throw new ImportFailure(
      'The AES-KWP part of the wrapped key does not unwrap (RFC 5649 integrity check failed) with the AES key in its RSA-OAEP part.',
    );
  }
}

const CURVES: Record<string, string> = {
  'P-256': 'prime256v1',
  'P-384': 'secp384r1',
  secp256k1: 'secp256k1',
};

/**
 * The material to store for `algorithm`, checked: symmetric keys of exactly the right length, asymmetric keys as
 * a PKCS#8 private key of the right type and size (re-encoded as node:crypto encodes the keys it generates).
 * Material that does not fit throws ImportFailure.
 */
export function importedMaterial(algorithm: AlgorithmName, material: Buffer): Buffer {
  const spec = SPECS[algorithm];
  if (!spec) throw new Error(`no material for ${algorithm}`);
  const exactly = (n: number) => {
    if (material.length !== n) {
      throw new ImportFailure(
        `${algorithm} key material must be ${n} raw bytes; the unwrapped material is ${material.length} bytes.`,
      );
    }
    return material;
  };
  switch (spec.kind) {
    case 'symmetric':
      return exactly(32);
    case 'hmac':
      return exactly(HASH_BYTES[spec.hash]);
    case 'aes':
      return exactly(spec.bytes);
    default:
      break;
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
  } catch {
    throw new ImportFailure(
      `${algorithm} key material must be a private key in PKCS#8 DER; the unwrapped material does not parse as one.`,
    );
  }
  const details = key.asymmetricKeyDetails ?? {};
  const type = key.asymmetricKeyType;
  let fits: boolean;
  let want: string;
  switch (spec.kind) {
    case 'ec':
      want = `an EC key on ${spec.curve}`;
      fits = type === 'ec' && details.namedCurve === CURVES[spec.curve];
      break;
    case 'ed25519':
      want = 'an Ed25519 key';
      fits = type === 'ed25519';
      break;
    default:
      want = `an RSA key of ${spec.bits} bits`;
      fits = type === 'rsa' && details.modulusLength === spec.bits;
  }
  if (!fits) {
    const got =
      type === 'rsa' || type === 'rsa-pss'
        ? `a ${type.toUpperCase()} key of ${details.modulusLength} bits`
        : type === 'ec'
          ? `an EC key on ${details.namedCurve}`
          : `a ${type} key`;
    throw new ImportFailure(`${algorithm} needs ${want}; the imported material is ${got}.`);
  }
  return key.export({ type: 'pkcs8', format: 'der' });
}
