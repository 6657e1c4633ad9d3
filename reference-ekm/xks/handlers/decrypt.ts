import type { Reply, RequestContext } from '../../http/types.js';
import { gcmAad } from '../aad.js';
import {
  base64Field,
  MAX_AAD_BYTES,
  MAX_CIPHERTEXT_METADATA_BYTES,
  MAX_PLAINTEXT_BYTES,
  parseXksMessage,
  type XksDeps,
} from '../common.js';
import { XksError } from '../errors.js';
import { DecryptRequest, type DecryptResponse } from '../types.js';

/** POST …/keys/{externalKeyId}/decrypt — accepts 12- and 16-byte IVs; any tampering → InvalidCiphertextException. */
export async function decrypt(
  ctx: RequestContext,
  deps: XksDeps,
  keyId: string,
  principals: string[],
): Promise<Reply> {
  const request = parseXksMessage(DecryptRequest, ctx);
  const ciphertext = base64Field('ciphertext', request.ciphertext, MAX_PLAINTEXT_BYTES);
  const aad = base64Field('additionalAuthenticatedData', request.additionalAuthenticatedData, MAX_AAD_BYTES);
  const iv = base64Field('initializationVector', request.initializationVector, 1024);
  const tag = base64Field('authenticationTag', request.authenticationTag, 1024);
  const metadata = base64Field('ciphertextMetadata', request.ciphertextMetadata, 255);
  if (iv.length !== 12 && iv.length !== 16)
    throw new XksError('ValidationException', 'initializationVector must be 12 or 16 bytes');
  if (tag.length !== 16) throw new XksError('ValidationException', 'authenticationTag must be 16 bytes');
  if (metadata.length > MAX_CIPHERTEXT_METADATA_BYTES) {
    throw new XksError(
      'ValidationException',
      `ciphertextMetadata must be at most ${MAX_CIPHERTEXT_METADATA_BYTES} bytes`,
    );
  }
  const key = deps.keys.authorize(keyId, principals, 'decrypt');
  const plaintext = await deps.keys.decrypt(key, { iv, ciphertext, tag }, gcmAad(aad, metadata));
  const response: DecryptResponse = { plaintext: plaintext.toString('base64') };
  return { status: 200, body: response, outcome: 'OK' };
}
