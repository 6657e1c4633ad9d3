/** cryptoKeyVersions.asymmetricSign: a signature over a message (`data`) or its pre-computed `digest`. */
import type { Deps, RequestContext } from '../context.js';
import { HASH_BYTES, signWith } from '../crypto/algorithms.js';
import { crc32c, crc32cString } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import { allowOnly, bytesValue, type JsonObject, optionalObject, uint32Value } from '../resources/fields.js';
import { checksumMismatch } from './crypto.js';
import { signWithHsm } from './hsm-keys.js';
import { atMost, checkedBytes, MAX_INPUT_BYTES, useVersionOrHsm } from './use-version.js';

export interface AsymmetricSignResponse {
  signature: string;
  signatureCrc32c: string;
  verifiedDigestCrc32c: boolean;
  verifiedDataCrc32c: boolean;
  name: string;
  protectionLevel: string;
}

const DIGEST_FIELDS = ['sha256', 'sha384', 'sha512', 'externalMu'];

export async function asymmetricSign(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<AsymmetricSignResponse> {
  allowOnly(body, ['name', 'digest', 'digestCrc32c', 'data', 'dataCrc32c']);
  const digestObj = optionalObject(body, 'digest');
  if (digestObj) allowOnly(digestObj, DIGEST_FIELDS, 'digest');
  const given = digestObj
    ? DIGEST_FIELDS.filter((f) => digestObj[f] !== undefined && digestObj[f] !== null)
    : [];
  if (given.length > 1) {
    throw RpcError.invalidArgument(
      `digest holds ${given.join(' and ')}: give exactly one digest field.`,
      'digest',
    );
  }
  const digestField = given[0];
  const digestBytes = digestField ? bytesValue(digestObj![digestField], `digest.${digestField}`) : undefined;
  const digest = { bytes: digestBytes };
  // digestCrc32c covers the digest's bytes, whichever digest field holds them.
  let verifiedDigestCrc32c = false;
  const digestCrc = uint32Value(body.digestCrc32c, 'digestCrc32c');
  if (digestCrc !== undefined) {
    if (crc32c(digestBytes ?? Buffer.alloc(0)) !== digestCrc)
      throw checksumMismatch('digest_crc32c', 'digest');
    verifiedDigestCrc32c = true;
  }
  const data = checkedBytes(body, 'data', 'dataCrc32c', ['data_crc32c', 'data']);
  const hasData = data.bytes !== undefined && !(digest.bytes && data.bytes.length === 0);
  if (digest.bytes && hasData) {
    throw RpcError.invalidArgument('Give either data or digest, not both.', 'data');
  }
  if (!digest.bytes && !hasData) {
    throw RpcError.invalidArgument(
      'Give the message to sign in data (base64), or its digest in digest.sha256, digest.sha384 or digest.sha512.',
      'data',
    );
  }
  if (data.bytes) {
    atMost(
      data.bytes,
      MAX_INPUT_BYTES,
      'data',
      'Sign a digest of larger messages instead (the digest field).',
    );
  }

  const use = await useVersionOrHsm(deps, ctx, name, ['ASYMMETRIC_SIGN'], 'asymmetricSign');
  const { spec, version } = use;
  if (digest.bytes) {
    if (spec.kind === 'ed25519' || spec.kind === 'rsa-raw-pkcs1') {
      throw RpcError.invalidArgument(
        `${version.algorithm} signs the message itself: send it in data, not a digest.`,
        'digest',
      );
    }
    if (spec.kind !== 'ec' && spec.kind !== 'rsa-pss' && spec.kind !== 'rsa-pkcs1') {
      throw RpcError.failedPrecondition(`${version.algorithm} does not sign.`);
    }
    if (digestField !== spec.hash) {
      throw RpcError.invalidArgument(
        `${version.algorithm} signs ${spec.hash.toUpperCase()} digests: send digest.${spec.hash}, not digest.${digestField}.`,
        `digest.${digestField}`,
      );
    }
    if (digest.bytes.length !== HASH_BYTES[spec.hash]) {
      throw RpcError.invalidArgument(
        `digest.${digestField} must be ${HASH_BYTES[spec.hash]} bytes; it is ${digest.bytes.length}.`,
        `digest.${digestField}`,
      );
    }
  }
  if (data.bytes && spec.kind === 'rsa-raw-pkcs1' && data.bytes.length > spec.bits / 8 - 11) {
    throw RpcError.invalidArgument(
      `${version.algorithm} signs at most ${spec.bits / 8 - 11} bytes of data (the modulus length less 11); it got ${data.bytes.length}. Sign a DigestInfo or a digest, not the message.`,
      'data',
    );
  }
  const input = digest.bytes ? { digest: digest.bytes } : { data: data.bytes ?? Buffer.alloc(0) };
  // HSM: the private key stays in the token, which signs (operations/hsm-keys.ts).
  const signature =
    'hsmKey' in use
      ? await signWithHsm(deps, ctx, version, spec, input)
      : signWith(spec, use.material, input);
  return {
    signature: signature.toString('base64'),
    signatureCrc32c: crc32cString(signature),
    verifiedDigestCrc32c,
    verifiedDataCrc32c: data.verified,
    name: version.name,
    protectionLevel: version.protectionLevel,
  };
}
