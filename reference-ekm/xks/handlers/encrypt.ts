import { DomainError } from '../../core/errors.js';
import type { Reply, RequestContext } from '../../http/types.js';
import { CIPHERTEXT_METADATA, ciphertextDataIntegrityValue, gcmAad } from '../aad.js';
import { base64Field, MAX_AAD_BYTES, MAX_PLAINTEXT_BYTES, parseXksMessage, type XksDeps } from '../common.js';
import { XksError } from '../errors.js';
import { EncryptRequest, type EncryptResponse } from '../types.js';

/**
 * POST …/keys/{externalKeyId}/encrypt — AES-256-GCM in the key store with a fresh 96-bit IV. The GCM
 * AAD is the spec's length-prefixed aad ‖ ciphertextMetadata. With ciphertextDataIntegrityValueAlgorithm
 * the CDIV is computed from the response fields and then a decrypt is proven before answering.
 */
export async function encrypt(
  ctx: RequestContext,
  deps: XksDeps,
  keyId: string,
  principals: string[],
): Promise<Reply> {
  const request = parseXksMessage(EncryptRequest, ctx);
  const plaintext = base64Field('plaintext', request.plaintext, MAX_PLAINTEXT_BYTES);
  const aad = base64Field('additionalAuthenticatedData', request.additionalAuthenticatedData, MAX_AAD_BYTES);
  const key = deps.keys.authorize(keyId, principals, 'encrypt');
  const wantsCdiv = request.ciphertextDataIntegrityValueAlgorithm === 'SHA_256';
  if (wantsCdiv) deps.keys.requireUsage(key, 'decrypt');
  const metadata = CIPHERTEXT_METADATA;
  const sealed = await deps.keys.encrypt(key, plaintext, gcmAad(aad, metadata));
  const response: EncryptResponse = {
    ciphertext: sealed.ciphertext.toString('base64'),
    ciphertextMetadata: metadata.toString('base64'),
    initializationVector: sealed.iv.toString('base64'),
    authenticationTag: sealed.tag.toString('base64'),
  };
  if (wantsCdiv) {
    response.ciphertextDataIntegrityValue = ciphertextDataIntegrityValue({
      aad,
      ciphertextMetadata: metadata,
      ...sealed,
    });
    let roundTrip: Buffer;
    try {
      roundTrip = await deps.keys.decrypt(key, sealed, gcmAad(aad, metadata));
    } catch (error) {
      throw new DomainError('BACKEND_ERROR', 'the ciphertext could not be verified by decryption', {
        cause: error,
      });
    }
    if (!roundTrip.equals(plaintext))
      throw new XksError('InternalException', 'the ciphertext did not decrypt to the plaintext');
  }
  return { status: 200, body: response, outcome: 'OK' };
}
