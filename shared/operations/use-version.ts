/**
 * What every crypto method addressed to one CryptoKeyVersion does first (asymmetricSign, asymmetricDecrypt,
 * getPublicKey, macSign, macVerify, rawEncrypt, rawDecrypt): the version's key must have the method's purpose, the
 * version must be ENABLED and SOFTWARE (or HSM, for the methods HSM keys offer: useVersionOrHsm), and the key's justification policy must allow the request. Also the
 * integrity fields these methods share.
 */
import type { Deps, RequestContext } from '../context.js';
import { SPECS, type Spec } from '../crypto/algorithms.js';
import { crc32c } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import type { HsmKeyRef } from '../hsm/hsm.js';
import { bytesValue, type JsonObject, uint32Value } from '../resources/fields.js';
import { cryptoKeyOfVersion, parseCryptoKeyVersionName } from '../resources/names.js';
import type { CryptoKeyPurposeName, StoredCryptoKey, StoredCryptoKeyVersion } from '../resources/types.js';
import { notEnabled } from '../resources/versions.js';
import { checkJustification, checksumMismatch, noteUse } from './crypto.js';
import { readVersion } from './crypto-key-versions.js';
import { readKey } from './crypto-keys.js';

/** Data, AAD and plaintext limits of SOFTWARE keys in Cloud KMS. */
export const MAX_INPUT_BYTES = 64 * 1024;

export interface InUse {
  key: StoredCryptoKey;
  version: StoredCryptoKeyVersion;
  spec: Spec;
  /** The unsealed key material (never logged or returned). */
  material: Buffer;
}

/**
 * The version `name` ready for `method`, which needs one of `purposes`. Wrong purpose and a version that is not
 * ENABLED are FAILED_PRECONDITION, as in Cloud KMS.
 */
export async function useVersion(
  deps: Deps,
  ctx: RequestContext | undefined,
  name: string,
  purposes: readonly CryptoKeyPurposeName[],
  method: string,
): Promise<InUse> {
  const { key, version } = await enabledVersion(deps, ctx, name, purposes, method);
  return softwareInUse(deps, ctx, key, version, method);
}

/** A version whose key is in the HSM (docs/hsm.md): the token key's reference instead of material. */
export interface InHsm {
  key: StoredCryptoKey;
  version: StoredCryptoKeyVersion;
  spec: Spec;
  hsmKey: HsmKeyRef;
}

/** As useVersion, for the methods HSM versions offer too: an HSM version comes back with its token key. */
export async function useVersionOrHsm(
  deps: Deps,
  ctx: RequestContext | undefined,
  name: string,
  purposes: readonly CryptoKeyPurposeName[],
  method: string,
): Promise<InUse | InHsm> {
  const { key, version } = await enabledVersion(deps, ctx, name, purposes, method);
  const spec = SPECS[version.algorithm];
  if (version.protectionLevel !== 'HSM' || !spec || !version.hsmKey) {
    return softwareInUse(deps, ctx, key, version, method);
  }
  if (ctx) checkJustification(key, version, ctx.reason);
  return { key, version, spec, hsmKey: version.hsmKey };
}

async function enabledVersion(
  deps: Deps,
  ctx: RequestContext | undefined,
  name: string,
  purposes: readonly CryptoKeyPurposeName[],
  method: string,
): Promise<{ key: StoredCryptoKey; version: StoredCryptoKeyVersion }> {
  parseCryptoKeyVersionName(name);
  const keyName = cryptoKeyOfVersion(name);
  const key = await readKey(deps, keyName, { cached: true });
  if (!purposes.includes(key.purpose)) {
    throw RpcError.failedPrecondition(
      `${method} needs a key with purpose ${purposes.join(' or ')}, but ${keyName} has purpose ${key.purpose}. Create a key with purpose ${purposes[0]} for this method.`,
      [
        {
          type: 'KEY_PURPOSE',
          subject: keyName,
          description: `The key's purpose ${key.purpose} does not allow ${method}.`,
        },
      ],
    );
  }
  const version = await readVersion(deps, name, { cached: true });
  if (ctx) noteUse(ctx, key, version);
  if (version.state !== 'ENABLED') throw notEnabled(version);
  return { key, version };
}

function softwareInUse(
  deps: Deps,
  ctx: RequestContext | undefined,
  key: StoredCryptoKey,
  version: StoredCryptoKeyVersion,
  method: string,
): InUse {
  const spec = SPECS[version.algorithm];
  if (version.protectionLevel !== 'SOFTWARE' || !spec || !version.material) {
    throw RpcError.unimplemented(
      `${method} with ${version.protectionLevel} key versions of algorithm ${version.algorithm} is not implemented by OpenEKM; use a SOFTWARE key.`,
    );
  }
  if (ctx) checkJustification(key, version, ctx.reason);
  return { key, version, spec, material: deps.rootKeys.unseal(version.material, version.name) };
}

/** A bytes field and whether its CRC32C was sent and matched (a mismatch is Cloud KMS's INVALID_ARGUMENT). */
export function checkedBytes(
  body: JsonObject,
  field: string,
  crcField: string,
  snake: [string, string],
): { bytes: Buffer | undefined; verified: boolean } {
  const bytes = bytesValue(body[field], field);
  const expected = uint32Value(body[crcField], crcField);
  if (expected === undefined) return { bytes, verified: false };
  if (crc32c(bytes ?? Buffer.alloc(0)) !== expected) throw checksumMismatch(snake[0], snake[1]);
  return { bytes, verified: true };
}

export function atMost(data: Buffer, max: number, field: string, hint: string): void {
  if (data.length > max) {
    throw RpcError.invalidArgument(
      `The ${field} is too large: ${data.length} bytes, the limit is ${max} bytes. ${hint}`,
      field,
    );
  }
}
