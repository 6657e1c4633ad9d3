/**
 * HSM protection level (docs/hsm.md): a version's key is an object (or key pair) in the configured PKCS#11
 * token, made before the version is written, used there for every encrypt, decrypt, MAC and signature, and
 * destroyed with the version.
 */
import { createHash, type KeyObject } from 'node:crypto';
import type { Deps, RequestContext } from '../context.js';
import { DIGEST_INFO, EC_CURVES, HASH_BYTES, type Hash, SPECS, type Spec } from '../crypto/algorithms.js';
import {
  type CiphertextHeader,
  openInside,
  type ParsedCiphertext,
  sealInside,
} from '../crypto/ciphertext.js';
import { RpcError } from '../errors.js';
import type { Hsm, HsmKeyRef } from '../hsm/hsm.js';
import type { TokenKeyKind, TokenMechanism } from '../hsm/protocol.js';
import type { AlgorithmName, StoredCryptoKey, StoredCryptoKeyVersion } from '../resources/types.js';

/**
 * The configured token, or the FAILED_PRECONDITION that tells the operator what to configure. `need` says what
 * needs it.
 */
export function requireHsm(deps: Deps, subject: string, need = 'HSM keys need'): Hsm {
  if (deps.hsm) return deps.hsm;
  throw RpcError.failedPrecondition(
    `${need} a PKCS#11 token, and this OpenEKM has none configured. An operator must set OPENEKM_HSM_MODULE (the HSM's PKCS#11 library), OPENEKM_HSM_TOKEN_LABEL (or OPENEKM_HSM_SLOT) and OPENEKM_HSM_PIN_FILE (docs/hsm.md).`,
    [{ type: 'HSM_NOT_CONFIGURED', subject, description: 'No PKCS#11 token is configured.' }],
  );
}

/** The algorithms HSM keys offer, in messages. */
const HSM_ALGORITHMS =
  'GOOGLE_SYMMETRIC_ENCRYPTION, HMAC_SHA1/224/256/384/512, EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384, EC_SIGN_SECP256K1_SHA256, EC_SIGN_ED25519, RSA_SIGN_PKCS1_*, RSA_SIGN_PSS_* and RSA_SIGN_RAW_PKCS1_*';

/**
 * What the token makes for a version of `algorithm`; UNIMPLEMENTED, naming the algorithm, for those HSM keys do
 * not offer (RSA decryption, raw AES).
 */
export function hsmKeyKind(algorithm: AlgorithmName): TokenKeyKind {
  const spec = SPECS[algorithm];
  switch (spec?.kind) {
    case 'symmetric':
      return { type: 'aes' };
    case 'hmac':
      // As SOFTWARE HMAC keys: as long as the hash's output.
      return { type: 'hmac', bytes: HASH_BYTES[spec.hash] };
    case 'ec':
      return { type: 'ec', curve: spec.curve };
    case 'ed25519':
      return { type: 'ed25519' };
    case 'rsa-pkcs1':
    case 'rsa-pss':
    case 'rsa-raw-pkcs1':
      return { type: 'rsa', bits: spec.bits };
    default:
      throw RpcError.unimplemented(
        `Algorithm ${algorithm} at protection level HSM is not implemented by OpenEKM. HSM keys offer ${HSM_ALGORITHMS}; use one of them, or protection level SOFTWARE for ${algorithm}.`,
      );
  }
}

/**
 * What the token makes of imported material of `algorithm`: symmetric and HMAC keys only (an AES key object, a
 * generic secret). Asymmetric private keys are not put into the token: UNIMPLEMENTED, naming the algorithm.
 */
export function hsmImportKind(algorithm: AlgorithmName): TokenKeyKind & { type: 'aes' | 'hmac' } {
  const kind = hsmKeyKind(algorithm);
  if (kind.type === 'aes' || kind.type === 'hmac') return kind;
  throw RpcError.unimplemented(
    `Importing ${algorithm} key material at protection level HSM is not implemented by OpenEKM: only GOOGLE_SYMMETRIC_ENCRYPTION and HMAC_* keys can be imported into the HSM (docs/key-import.md). Import ${algorithm} into a key with protection level SOFTWARE, or generate it in the HSM with cryptoKeyVersions.create.`,
  );
}

/**
 * Makes the token key of a version of `key` about to be created, outside any transaction, then runs `write`.
 * When the write fails the new token object is destroyed again, so a refused create leaves nothing behind.
 */
export async function withNewHsmKey<T>(
  deps: Deps,
  ctx: RequestContext | undefined,
  key: StoredCryptoKey,
  write: (hsmKey: HsmKeyRef) => Promise<T>,
): Promise<T> {
  const keyName = key.name;
  const kind = hsmKeyKind(key.versionTemplate.algorithm);
  const hsm = requireHsm(deps, keyName);
  const ref = await hsm.generateKey(kind, { subject: keyName, signal: ctx?.signal });
  try {
    return await write(ref);
  } catch (err) {
    await hsm.destroyKey(ref, { subject: keyName }).catch((cause: unknown) =>
      deps.log.error('HSM key of a version that was not created could not be destroyed', {
        key: keyName,
        label: ref.label,
        cause: cause instanceof Error ? cause.message : String(cause),
      }),
    );
    throw err;
  }
}

function keyOf(v: StoredCryptoKeyVersion): HsmKeyRef {
  if (!v.hsmKey) throw RpcError.internal(new Error(`${v.name} is an HSM version without a token key`));
  return v.hsmKey;
}

/** What every use of a version's token key needs: the token, the key, and the call's subject and signal. */
function tokenUse(deps: Deps, ctx: RequestContext, version: StoredCryptoKeyVersion) {
  const hsm = requireHsm(deps, version.name);
  return { hsm, key: keyOf(version), options: { subject: version.name, signal: ctx.signal } };
}

export function sealWithHsm(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  header: CiphertextHeader,
  plaintext: Buffer,
  aad: Buffer,
): Promise<Buffer> {
  const { hsm, key, options } = tokenUse(deps, ctx, version);
  return sealInside({
    header,
    versionName: version.name,
    plaintext,
    aad,
    encrypt: (iv, context, data) => hsm.encrypt(key, iv, context, data, options),
  });
}

export function openWithHsm(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  parsed: ParsedCiphertext,
  aad: Buffer,
): Promise<Buffer> {
  const { hsm, key, options } = tokenUse(deps, ctx, version);
  return openInside({
    parsed,
    versionName: version.name,
    aad,
    decrypt: (iv, context, sealed) => hsm.decrypt(key, iv, context, sealed, options),
  });
}

const HMAC_MECHANISMS: Record<Hash, TokenMechanism> = {
  sha1: 'hmac-sha1',
  sha224: 'hmac-sha224',
  sha256: 'hmac-sha256',
  sha384: 'hmac-sha384',
  sha512: 'hmac-sha512',
};

function hmacMechanism(version: StoredCryptoKeyVersion, spec: Spec): TokenMechanism {
  if (spec.kind !== 'hmac') throw RpcError.failedPrecondition(`${version.algorithm} does not MAC.`);
  return HMAC_MECHANISMS[spec.hash];
}

/** The HMAC of `data` under an HSM MAC version, computed in the token. */
export function macWithHsm(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  spec: Spec,
  data: Buffer,
): Promise<Buffer> {
  const { hsm, key, options } = tokenUse(deps, ctx, version);
  return hsm.sign(key, hmacMechanism(version, spec), data, options);
}

/** Whether `mac` is the HMAC of `data` under an HSM MAC version, checked in the token. */
export function verifyMacWithHsm(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  spec: Spec,
  data: Buffer,
  mac: Buffer,
): Promise<boolean> {
  const { hsm, key, options } = tokenUse(deps, ctx, version);
  return hsm.verify(key, hmacMechanism(version, spec), data, mac, options);
}

/**
 * Signs with an HSM ASYMMETRIC_SIGN version in the token, in Cloud KMS's encodings (as SOFTWARE keys do, see
 * crypto/algorithms.ts): ECDSA as DER SEQUENCE{r, s} (the token answers r ‖ s), RSA as a big-endian integer of the
 * modulus length, Ed25519 as 64 bytes. `digest` is the caller's digest of the spec's hash, or `data` the message,
 * hashed here (raw PKCS#1 and Ed25519 sign the data itself).
 */
export async function signWithHsm(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  spec: Spec,
  input: { digest?: Buffer; data?: Buffer },
): Promise<Buffer> {
  const { hsm, key, options } = tokenUse(deps, ctx, version);
  const digestOf = (hash: Hash) =>
    input.digest ??
    createHash(hash)
      .update(input.data ?? Buffer.alloc(0))
      .digest();
  switch (spec.kind) {
    case 'ec': {
      const raw = await hsm.sign(key, 'ecdsa', digestOf(spec.hash), options);
      return Buffer.from(EC_CURVES[spec.curve].Signature.fromCompact(raw).toDERRawBytes());
    }
    case 'ed25519':
      // Pure Ed25519 signs the message itself (a digest is refused before this).
      return hsm.sign(key, 'eddsa', nonEmpty(version, input.data), options);
    case 'rsa-pkcs1': {
      const prefix = DIGEST_INFO[spec.hash];
      if (!prefix) throw RpcError.internal(new Error(`no DigestInfo for ${spec.hash}`));
      const info = Buffer.concat([Buffer.from(prefix, 'hex'), digestOf(spec.hash)]);
      return hsm.sign(key, 'rsa-pkcs', info, options);
    }
    case 'rsa-pss': {
      if (spec.hash !== 'sha256' && spec.hash !== 'sha512') {
        throw RpcError.internal(new Error(`no PSS mechanism for ${spec.hash}`));
      }
      return hsm.sign(key, `rsa-pss-${spec.hash}`, digestOf(spec.hash), options);
    }
    case 'rsa-raw-pkcs1':
      return hsm.sign(key, 'rsa-pkcs', nonEmpty(version, input.data), options);
    default:
      throw RpcError.unimplemented(
        `asymmetricSign with HSM key versions of algorithm ${version.algorithm} is not implemented by OpenEKM.`,
      );
  }
}

/** Data signed as it is: tokens take no empty input for a one-part signature (a NULL pointer). */
function nonEmpty(version: StoredCryptoKeyVersion, data: Buffer | undefined): Buffer {
  if (data?.length) return data;
  throw RpcError.invalidArgument(
    `${version.algorithm} at protection level HSM signs at least one byte of data; data is empty.`,
    'data',
  );
}

/** The public key of an HSM ASYMMETRIC_SIGN version, read from the token's public object. */
export function publicKeyWithHsm(deps: Deps, version: StoredCryptoKeyVersion): Promise<KeyObject> {
  const hsm = requireHsm(deps, version.name);
  return hsm.publicKey(keyOf(version), { subject: version.name });
}

/**
 * Destroys the token object of a version whose destruction is due, before the version is written DESTROYED: a
 * version is never shown DESTROYED while its key still exists. While the token cannot be reached this fails
 * (UNAVAILABLE), and the next read or scheduled run tries again.
 */
export async function destroyHsmKey(deps: Deps, v: StoredCryptoKeyVersion): Promise<void> {
  if (!v.hsmKey) return;
  const hsm = requireHsm(deps, v.name);
  const count = await hsm.destroyKey(v.hsmKey, { subject: v.name });
  deps.log.info('HSM key destroyed', { version: v.name, label: v.hsmKey.label, objects: count });
}
