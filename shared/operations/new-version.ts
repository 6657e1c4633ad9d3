/** A new CryptoKeyVersion of a key: its id from the key's counter, its state, and fresh internal key material. */
import type { Deps } from '../context.js';
import { RootKeyring } from '../crypto/material.js';
import { RpcError } from '../errors.js';
import type {
  ExternalProtectionLevelOptions,
  StoredCryptoKey,
  StoredCryptoKeyVersion,
} from '../resources/types.js';

const MAX_VERSIONS_PER_KEY = 0xffffffff;

/**
 * A new version of `key` (which is mutated: its counter advances). Called inside the transaction that writes
 * both, so concurrent creates get distinct, gap-free ids. `material` is the version's key material generated
 * beforehand for its algorithm (materialFor); without it, 32 random bytes (ENCRYPT_DECRYPT keys). An HSM version
 * takes the token key made for it beforehand (operations/hsm-keys.ts) instead of internal material.
 */
export function newVersion(
  deps: Deps,
  key: StoredCryptoKey,
  state: 'ENABLED' | 'DISABLED',
  external: ExternalProtectionLevelOptions | undefined,
  material?: Buffer,
  hsmKey?: StoredCryptoKeyVersion['hsmKey'],
): StoredCryptoKeyVersion {
  if (key.versionCounter >= MAX_VERSIONS_PER_KEY) {
    throw RpcError.failedPrecondition(`${key.name} has reached the maximum number of versions.`);
  }
  key.versionCounter += 1;
  const name = `${key.name}/cryptoKeyVersions/${key.versionCounter}`;
  const now = deps.now().toISOString();
  const v: StoredCryptoKeyVersion = {
    name,
    state,
    protectionLevel: key.versionTemplate.protectionLevel,
    algorithm: key.versionTemplate.algorithm,
    createTime: now,
    generateTime: now,
  };
  // HSM: the key lives in the token; the version keeps only the reference.
  if (v.protectionLevel === 'HSM') {
    if (!hsmKey) throw RpcError.internal(new Error(`no token key was made for the HSM version ${name}`));
    v.hsmKey = hsmKey;
  } else {
    v.material = deps.rootKeys.seal(material ?? RootKeyring.generateMaterial(), name);
  }
  if (external) v.externalProtectionLevelOptions = external;
  return v;
}
