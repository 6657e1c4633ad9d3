/** cryptoKeyVersions.getPublicKey: the public half of an ASYMMETRIC_SIGN or ASYMMETRIC_DECRYPT version. */
import type { Deps } from '../context.js';
import { publicKeyOf } from '../crypto/algorithms.js';
import { crc32cString } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import { enumValue } from '../resources/fields.js';
import { PublicKeyFormat, type PublicKeyFormatName } from '../resources/types.js';
import { publicKeyWithHsm } from './hsm-keys.js';
import { useVersionOrHsm } from './use-version.js';

export interface PublicKeyResponse {
  pem?: string;
  algorithm: string;
  pemCrc32c?: string;
  name: string;
  protectionLevel: string;
  publicKeyFormat?: PublicKeyFormatName;
  publicKey?: { data: string; crc32cChecksum: string };
}

/**
 * Without a format, the key is a PEM SubjectPublicKeyInfo in `pem` (with `pemCrc32c`). With `publicKeyFormat` PEM
 * or DER it is in `publicKey.data` (and `pem` too for PEM); NIST_PQC and XWING_RAW_BYTES are for post-quantum
 * keys, which OpenEKM does not create.
 */
export async function getPublicKey(deps: Deps, name: string, rawFormat?: string): Promise<PublicKeyResponse> {
  let format = enumValue(PublicKeyFormat, rawFormat, 'publicKeyFormat');
  if (format === 'PUBLIC_KEY_FORMAT_UNSPECIFIED') format = undefined;
  const use = await useVersionOrHsm(
    deps,
    undefined,
    name,
    ['ASYMMETRIC_SIGN', 'ASYMMETRIC_DECRYPT'],
    'getPublicKey',
  );
  const { version } = use;
  if (format === 'NIST_PQC' || format === 'XWING_RAW_BYTES') {
    throw RpcError.invalidArgument(
      `publicKeyFormat ${format} is for post-quantum keys; ${version.algorithm} keys are available as PEM or DER.`,
      'publicKeyFormat',
    );
  }
  const out: PublicKeyResponse = {
    algorithm: version.algorithm,
    name: version.name,
    protectionLevel: version.protectionLevel,
  };
  let spki: (as: 'pem' | 'der') => Buffer;
  if ('hsmKey' in use) {
    // HSM: built from the token's public object (its EC point, or modulus and exponent).
    const pub = await publicKeyWithHsm(deps, version);
    spki = (as) =>
      as === 'pem'
        ? Buffer.from(pub.export({ type: 'spki', format: 'pem' }) as string, 'utf8')
        : (pub.export({ type: 'spki', format: 'der' }) as Buffer);
  } else {
    const { material } = use;
    spki = (as) => publicKeyOf(material, as);
  }
  if (format === undefined || format === 'PEM') {
    const pem = spki('pem');
    out.pem = pem.toString('utf8');
    out.pemCrc32c = crc32cString(pem);
  }
  if (format !== undefined) {
    const data = spki(format === 'PEM' ? 'pem' : 'der');
    out.publicKeyFormat = format;
    out.publicKey = { data: data.toString('base64'), crc32cChecksum: crc32cString(data) };
  }
  return out;
}
