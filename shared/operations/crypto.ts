/**
 * cryptoKeys.encrypt and cryptoKeys.decrypt. Integrity follows Cloud KMS exactly: every supplied CRC32C is
 * checked against the bytes received (a mismatch is INVALID_ARGUMENT with the message gcloud recognises), the
 * `verified*` flags say which ones were, and every response carries the CRC32C of what it returns.
 */

import type { Deps, RequestContext } from '../context.js';
import { decryptionFailed, open, parseCiphertext, seal } from '../crypto/ciphertext.js';
import { crc32c, crc32cString } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import { allowOnly, bytesValue, type JsonObject, uint32Value } from '../resources/fields.js';
import { cryptoKeyOfVersion, parseCryptoKeyName, parseCryptoKeyVersionName } from '../resources/names.js';
import { ProtectionLevel, type StoredCryptoKey, type StoredCryptoKeyVersion } from '../resources/types.js';
import { notEnabled } from '../resources/versions.js';
import { readVersion } from './crypto-key-versions.js';
import { readKey } from './crypto-keys.js';
import { ekmKeyProtection } from './external.js';
import { openWithHsm, sealWithHsm } from './hsm-keys.js';

const MAX_PLAINTEXT_BYTES = 64 * 1024;
const MAX_AAD_BYTES = 64 * 1024;
/** Plaintext limit plus room for the format's header, key-protection block and tag. */
const MAX_CIPHERTEXT_BYTES = MAX_PLAINTEXT_BYTES + 4096;

export function checksumMismatch(checksumField: string, dataField: string): RpcError {
  return RpcError.invalidArgument(
    `The checksum in field ${checksumField} did not match the data in field ${dataField}.`,
    checksumField,
  );
}

function verify(
  data: Buffer,
  expected: number | undefined,
  checksumField: string,
  dataField: string,
): boolean {
  if (expected === undefined) return false;
  if (crc32c(data) !== expected) throw checksumMismatch(checksumField, dataField);
  return true;
}

function limit(data: Buffer, max: number, field: string): void {
  if (data.length > max) {
    throw RpcError.invalidArgument(
      `The ${field} is too large: ${data.length} bytes, the limit is ${max} bytes. Encrypt larger data locally under a data key (envelope encryption).`,
      field,
    );
  }
}

/** The key's own justification policy, enforced before any EKM is called. */
export function checkJustification(
  key: StoredCryptoKey,
  version: StoredCryptoKeyVersion,
  reason: string,
): void {
  const policy = key.keyAccessJustificationsPolicy;
  if (policy && !(policy.allowedAccessReasons as string[]).includes(reason)) {
    throw RpcError.failedPrecondition(
      `${key.name} has a keyAccessJustificationsPolicy that does not allow the access reason ${reason}. Add it to allowedAccessReasons, or state an allowed reason in the X-OpenEKM-Access-Reason header.`,
      [
        {
          type: 'KEY_ACCESS_JUSTIFICATION',
          subject: version.name,
          description: `The access reason ${reason} is not in the key's allowedAccessReasons.`,
        },
      ],
    );
  }
}

/** Reports the version a request uses, and its justification facts, for the request's audit entry. */
export function noteUse(ctx: RequestContext, key: StoredCryptoKey, version: StoredCryptoKeyVersion): void {
  const audit = ctx.audit;
  if (!audit) return;
  audit.version = version.name;
  audit.protectionLevel = version.protectionLevel;
  if (version.protectionLevel !== 'SOFTWARE') {
    audit.justification = {
      reason: ctx.reason,
      policyEnforced: key.keyAccessJustificationsPolicy !== undefined,
      reasonSentToEkm: false,
    };
  }
}

/** What the ciphertext layer needs to protect the data key: nothing for SOFTWARE, the EKM for EXTERNAL. */
function keyProtection(deps: Deps, ctx: RequestContext, version: StoredCryptoKeyVersion, aad: Buffer) {
  if (version.protectionLevel === 'SOFTWARE') return {};
  if (version.protectionLevel === 'EXTERNAL' || version.protectionLevel === 'EXTERNAL_VPC') {
    return ekmKeyProtection(deps, ctx, version, aad);
  }
  throw RpcError.failedPrecondition(
    `Crypto operations on ${version.protectionLevel} keys are not available in OpenEKM.`,
  );
}

function materialOf(deps: Deps, v: StoredCryptoKeyVersion): Buffer {
  if (!v.material) throw notEnabled(v);
  return deps.rootKeys.unseal(v.material, v.name);
}

export interface EncryptResponse {
  name: string;
  ciphertext: string;
  ciphertextCrc32c: string;
  verifiedPlaintextCrc32c: boolean;
  verifiedAdditionalAuthenticatedDataCrc32c: boolean;
  protectionLevel: string;
}

export async function encrypt(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<EncryptResponse> {
  const isVersion = name.includes('/cryptoKeyVersions/');
  const keyName = isVersion ? cryptoKeyOfVersion(name) : name;
  if (isVersion) parseCryptoKeyVersionName(name);
  else parseCryptoKeyName(name);
  allowOnly(body, [
    'name',
    'plaintext',
    'additionalAuthenticatedData',
    'plaintextCrc32c',
    'additionalAuthenticatedDataCrc32c',
  ]);
  const plaintext = bytesValue(body.plaintext, 'plaintext');
  if (plaintext === undefined) throw RpcError.invalidArgument('plaintext is required (base64).', 'plaintext');
  const aad = bytesValue(body.additionalAuthenticatedData, 'additionalAuthenticatedData') ?? Buffer.alloc(0);
  limit(plaintext, MAX_PLAINTEXT_BYTES, 'plaintext');
  limit(aad, MAX_AAD_BYTES, 'additionalAuthenticatedData');
  const verifiedPlaintextCrc32c = verify(
    plaintext,
    uint32Value(body.plaintextCrc32c, 'plaintextCrc32c'),
    'plaintext_crc32c',
    'plaintext',
  );
  const verifiedAdditionalAuthenticatedDataCrc32c = verify(
    aad,
    uint32Value(body.additionalAuthenticatedDataCrc32c, 'additionalAuthenticatedDataCrc32c'),
    'additional_authenticated_data_crc32c',
    'additional_authenticated_data',
  );

  const key = await readKey(deps, keyName, { cached: true });
  if (key.purpose !== 'ENCRYPT_DECRYPT') {
    throw RpcError.invalidArgument(`${keyName} does not have purpose ENCRYPT_DECRYPT.`, 'name');
  }
  let versionName = name;
  if (!isVersion) {
    if (!key.primaryVersionId) {
      throw RpcError.failedPrecondition(
        `${keyName} has no primary version. Create a version and make it primary with updatePrimaryVersion.`,
        [{ type: 'NO_PRIMARY_VERSION', subject: keyName, description: 'The key has no primary version.' }],
      );
    }
    versionName = `${keyName}/cryptoKeyVersions/${key.primaryVersionId}`;
  }
  const version = await readVersion(deps, versionName, { cached: true });
  noteUse(ctx, key, version);
  if (version.state !== 'ENABLED') throw notEnabled(version);
  checkJustification(key, version, ctx.reason);

  const header = {
    protectionLevel: ProtectionLevel[version.protectionLevel],
    versionNumber: Number(version.name.slice(version.name.lastIndexOf('/') + 1)),
  };
  const ciphertext =
    version.protectionLevel === 'HSM'
      ? await sealWithHsm(deps, ctx, version, header, plaintext, aad)
      : await seal({
          header,
          versionName: version.name,
          material: materialOf(deps, version),
          plaintext,
          aad,
          ...keyProtection(deps, ctx, version, aad),
        });
  return {
    name: version.name,
    ciphertext: ciphertext.toString('base64'),
    ciphertextCrc32c: crc32cString(ciphertext),
    verifiedPlaintextCrc32c,
    verifiedAdditionalAuthenticatedDataCrc32c,
    protectionLevel: version.protectionLevel,
  };
}

export interface DecryptResponse {
  plaintext: string;
  plaintextCrc32c: string;
  usedPrimary: boolean;
  protectionLevel: string;
}

export async function decrypt(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<DecryptResponse> {
  if (name.includes('/cryptoKeyVersions/')) {
    throw RpcError.invalidArgument(
      'Decrypt takes a crypto key name, not a version: the version is read from the ciphertext.',
      'name',
    );
  }
  parseCryptoKeyName(name);
  allowOnly(body, [
    'name',
    'ciphertext',
    'additionalAuthenticatedData',
    'ciphertextCrc32c',
    'additionalAuthenticatedDataCrc32c',
  ]);
  const ciphertext = bytesValue(body.ciphertext, 'ciphertext');
  if (ciphertext === undefined || ciphertext.length === 0) {
    throw RpcError.invalidArgument('ciphertext is required (base64).', 'ciphertext');
  }
  const aad = bytesValue(body.additionalAuthenticatedData, 'additionalAuthenticatedData') ?? Buffer.alloc(0);
  limit(ciphertext, MAX_CIPHERTEXT_BYTES, 'ciphertext');
  limit(aad, MAX_AAD_BYTES, 'additionalAuthenticatedData');
  verify(
    ciphertext,
    uint32Value(body.ciphertextCrc32c, 'ciphertextCrc32c'),
    'ciphertext_crc32c',
    'ciphertext',
  );
  verify(
    aad,
    uint32Value(body.additionalAuthenticatedDataCrc32c, 'additionalAuthenticatedDataCrc32c'),
    'additional_authenticated_data_crc32c',
    'additional_authenticated_data',
  );

  const key = await readKey(deps, name, { cached: true });
  const parsed = parseCiphertext(ciphertext);
  const versionName = `${name}/cryptoKeyVersions/${parsed.versionNumber}`;
  const version = await readVersion(deps, versionName, { cached: true, allowMissing: true });
  // A ciphertext naming a version this key never had is foreign: the same bland answer as tampering.
  if (!version || ProtectionLevel[version.protectionLevel] !== parsed.protectionLevel) {
    throw decryptionFailed();
  }
  noteUse(ctx, key, version);
  if (version.state !== 'ENABLED') throw notEnabled(version);
  checkJustification(key, version, ctx.reason);
  const plaintext =
    version.protectionLevel === 'HSM'
      ? await openWithHsm(deps, ctx, version, parsed, aad)
      : await open({
          parsed,
          versionName,
          material: materialOf(deps, version),
          aad,
          ...keyProtection(deps, ctx, version, aad),
        });
  return {
    plaintext: plaintext.toString('base64'),
    plaintextCrc32c: crc32cString(plaintext),
    usedPrimary: key.primaryVersionId === String(parsed.versionNumber),
    protectionLevel: version.protectionLevel,
  };
}
