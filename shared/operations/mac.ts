/** cryptoKeyVersions.macSign and macVerify: HMAC with the version's hash (in the token for HSM versions). */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Deps, RequestContext } from '../context.js';
import { crc32cString } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import { allowOnly, type JsonObject } from '../resources/fields.js';
import { macWithHsm, verifyMacWithHsm } from './hsm-keys.js';
import { atMost, checkedBytes, type InUse, MAX_INPUT_BYTES, useVersionOrHsm } from './use-version.js';

const LARGER = 'MAC a digest of larger data instead.';

function tag(use: InUse, data: Buffer): Buffer {
  if (use.spec.kind !== 'hmac') throw RpcError.failedPrecondition(`${use.version.algorithm} does not MAC.`);
  return createHmac(use.spec.hash, use.material).update(data).digest();
}

export interface MacSignResponse {
  name: string;
  mac: string;
  macCrc32c: string;
  verifiedDataCrc32c: boolean;
  protectionLevel: string;
}

export async function macSign(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<MacSignResponse> {
  allowOnly(body, ['name', 'data', 'dataCrc32c']);
  const data = checkedBytes(body, 'data', 'dataCrc32c', ['data_crc32c', 'data']);
  const bytes = data.bytes ?? Buffer.alloc(0);
  atMost(bytes, MAX_INPUT_BYTES, 'data', LARGER);
  const use = await useVersionOrHsm(deps, ctx, name, ['MAC'], 'macSign');
  const mac = 'hsmKey' in use ? await macWithHsm(deps, ctx, use.version, use.spec, bytes) : tag(use, bytes);
  return {
    name: use.version.name,
    mac: mac.toString('base64'),
    macCrc32c: crc32cString(mac),
    verifiedDataCrc32c: data.verified,
    protectionLevel: use.version.protectionLevel,
  };
}

export interface MacVerifyResponse {
  name: string;
  success: boolean;
  verifiedDataCrc32c: boolean;
  verifiedMacCrc32c: boolean;
  verifiedSuccessIntegrity: boolean;
  protectionLevel: string;
}

/** A wrong tag is not an error: 200 with success false (and verifiedSuccessIntegrity equal to it, as gcloud checks). */
export async function macVerify(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<MacVerifyResponse> {
  allowOnly(body, ['name', 'data', 'dataCrc32c', 'mac', 'macCrc32c']);
  const data = checkedBytes(body, 'data', 'dataCrc32c', ['data_crc32c', 'data']);
  const mac = checkedBytes(body, 'mac', 'macCrc32c', ['mac_crc32c', 'mac']);
  const bytes = data.bytes ?? Buffer.alloc(0);
  atMost(bytes, MAX_INPUT_BYTES, 'data', LARGER);
  if (!mac.bytes || mac.bytes.length === 0) {
    throw RpcError.invalidArgument('mac is required: the tag to verify (base64).', 'mac');
  }
  const use = await useVersionOrHsm(deps, ctx, name, ['MAC'], 'macVerify');
  let success: boolean;
  if ('hsmKey' in use) {
    success = await verifyMacWithHsm(deps, ctx, use.version, use.spec, bytes, mac.bytes);
  } else {
    const want = tag(use, bytes);
    success = want.length === mac.bytes.length && timingSafeEqual(want, mac.bytes);
  }
  return {
    name: use.version.name,
    success,
    verifiedDataCrc32c: data.verified,
    verifiedMacCrc32c: mac.verified,
    verifiedSuccessIntegrity: success,
    protectionLevel: use.version.protectionLevel,
  };
}
