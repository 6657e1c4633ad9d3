import { DomainError } from '../../core/errors.js';
import type { Reply, RequestContext } from '../../http/types.js';
import {
  authenticate,
  bytesField,
  checkJustification,
  checkKeyPath,
  type GoogleEkmDeps,
  MAX_DATA_BYTES,
  parseMessage,
  recordContext,
} from '../common.js';
import { UnwrapRequest, type UnwrapResponse } from '../types.js';
import { decodeWrappedBlob, wrapAad } from '../wrapped-blob.js';

/** POST {keyUri}:unwrap — returns the plaintext of a blob made by :wrap with the same key and AAD. */
export async function unwrap(
  ctx: RequestContext,
  deps: GoogleEkmDeps,
  keyId: string,
  cryptoSpaceId?: string,
): Promise<Reply> {
  const caller = await authenticate(ctx, deps);
  const request = parseMessage(UnwrapRequest, ctx);
  recordContext(ctx, request.additionalContext);
  checkKeyPath(deps, request.keyPath, keyId, cryptoSpaceId);
  const blob = bytesField('wrappedBlob', request.wrappedBlob, MAX_DATA_BYTES + 64);
  const aad = bytesField('additionalAuthenticatedData', request.additionalAuthenticatedData);
  const key = deps.keys.authorize(keyId, caller.principals, 'unwrap');
  checkJustification(key, request.additionalContext);
  const sealed = decodeWrappedBlob(blob);
  if (!sealed) {
    throw new DomainError('DECRYPT_FAILED', 'the wrappedBlob was not produced by this EKM (unknown format)');
  }
  const plaintext = await deps.keys.decrypt(key, sealed, wrapAad(keyId, aad));
  const response: UnwrapResponse = { plaintext: plaintext.toString('base64') };
  return { status: 200, body: response, outcome: 'OK' };
}
