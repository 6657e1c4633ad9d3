/**
 * locations.generateRandomBytes. Cloud KMS serves it at protection level HSM only (SOFTWARE is UNIMPLEMENTED
 * there), with lengthBytes from 8 to 1024. OpenEKM has no HSM, so after the same validation every level is
 * answered UNIMPLEMENTED, naming what is missing; node:crypto's randomBytes is the local alternative.
 */
import type { Deps } from '../context.js';
import { RpcError } from '../errors.js';
import { allowOnly, enumValue, type JsonObject } from '../resources/fields.js';
import { parseLocationName } from '../resources/names.js';
import { ProtectionLevel } from '../resources/types.js';

export async function generateRandomBytes(
  _deps: Deps,
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
  if (level === 'HSM') {
    throw RpcError.unimplemented(
      'generateRandomBytes with protection level HSM is not implemented by OpenEKM: it has no HSM. Generate random bytes locally (e.g. crypto.randomBytes).',
    );
  }
  throw RpcError.unimplemented(
    `generateRandomBytes is offered only at protection level HSM, as in Cloud KMS; ${level && level !== 'PROTECTION_LEVEL_UNSPECIFIED' ? level : 'an unspecified level'} is not. Generate random bytes locally (e.g. crypto.randomBytes).`,
  );
}
