/**
 * HSM protection level (docs/hsm.md): a version's key is an object in the configured PKCS#11 token, made before
 * the version is written, used there for every encrypt and decrypt, and destroyed with the version.
 */
import type { Deps, RequestContext } from '../context.js';
import {
  type CiphertextHeader,
  openInside,
  type ParsedCiphertext,
  sealInside,
} from '../crypto/ciphertext.js';
import { RpcError } from '../errors.js';
import type { Hsm, HsmKeyRef } from '../hsm/hsm.js';
import type { StoredCryptoKeyVersion } from '../resources/types.js';

/** The configured token, or the FAILED_PRECONDITION that tells the operator what to configure. */
export function requireHsm(deps: Deps, subject: string): Hsm {
  if (deps.hsm) return deps.hsm;
  throw RpcError.failedPrecondition(
    `HSM keys need a PKCS#11 token, and this OpenEKM has none configured. An operator must set OPENEKM_HSM_MODULE (the HSM's PKCS#11 library), OPENEKM_HSM_TOKEN_LABEL (or OPENEKM_HSM_SLOT) and OPENEKM_HSM_PIN_FILE (docs/hsm.md).`,
    [{ type: 'HSM_NOT_CONFIGURED', subject, description: 'No PKCS#11 token is configured.' }],
  );
}

/**
 * Makes the token key of a version about to be created, outside any transaction, then runs `write`. When the
 * write fails the new token object is destroyed again, so a refused create leaves nothing behind.
 */
export async function withNewHsmKey<T>(
  deps: Deps,
  ctx: RequestContext | undefined,
  keyName: string,
  write: (hsmKey: HsmKeyRef) => Promise<T>,
): Promise<T> {
  const hsm = requireHsm(deps, keyName);
  const ref = await hsm.generateKey({ subject: keyName, signal: ctx?.signal });
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

export function sealWithHsm(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  header: CiphertextHeader,
  plaintext: Buffer,
  aad: Buffer,
): Promise<Buffer> {
  const hsm = requireHsm(deps, version.name);
  const options = { subject: version.name, signal: ctx.signal };
  return sealInside({
    header,
    versionName: version.name,
    plaintext,
    aad,
    encrypt: (iv, context, data) => hsm.encrypt(keyOf(version), iv, context, data, options),
  });
}

export function openWithHsm(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  parsed: ParsedCiphertext,
  aad: Buffer,
): Promise<Buffer> {
  const hsm = requireHsm(deps, version.name);
  const options = { subject: version.name, signal: ctx.signal };
  return openInside({
    parsed,
    versionName: version.name,
    aad,
    decrypt: (iv, context, sealed) => hsm.decrypt(keyOf(version), iv, context, sealed, options),
  });
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
