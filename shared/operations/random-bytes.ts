/**
 * locations.generateRandomBytes: random bytes from the HSM's random number generator (C_GenerateRandom in the
 * configured PKCS#11 token, docs/hsm.md). Cloud KMS serves it at protection level HSM only — any other level is
 * UNIMPLEMENTED there, and here — with lengthBytes from 8 to 1024.
 */
import type { Deps, RequestContext } from '../context.js';
import { crc32cString } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import { allowOnly, enumValue, type JsonObject } from '../resources/fields.js';
import { parseLocationName } from '../resources/names.js';
import { ProtectionLevel } from '../resources/types.js';
import { requireHsm } from './hsm-keys.js';

export async function generateRandomBytes(
  deps: Deps,
  ctx: RequestContext,
  location: string,
  body: JsonObject,
): Promise<{ data: string; dataCrc32c: string }> {
  parseLocationName(location, 'location');
  allowOnly(body, ['location', 'lengthBytes', 'protectionLevel']);
  const raw = body.lengthBytes;
  const length = typeof raw === 'string' && /^-?[0-9]{1,10}$/.test(raw) ? Number(raw) : raw;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 8 || length > 1024) {
    throw RpcError.invalidArgument('lengthBytes must be an integer from 8 to 1024.', 'lengthBytes');
  }
  const level = enumValue(ProtectionLevel, body.protectionLevel, 'protectionLevel');
  if (level !== 'HSM') {
    throw RpcError.unimplemented(
      `generateRandomBytes is offered only at protection level HSM, as in Cloud KMS; ${level && level !== 'PROTECTION_LEVEL_UNSPECIFIED' ? level : 'an unspecified level'} is not. Send protectionLevel HSM, or generate random bytes locally (e.g. crypto.randomBytes).`,
    );
  }
  const hsm = requireHsm(deps, location, 'generateRandomBytes at protection level HSM needs');
  const data = await hsm.random(length, { subject: location, signal: ctx.signal });
  return { data: data.toString('base64'), dataCrc32c: crc32cString(data) };
}
