import { DomainError } from '../../core/errors.js';
import type { Reply, RequestContext } from '../../http/types.js';
import {
  authenticate,
  bytesField,
  checkJustification,
  checkKeyPath,
  type GoogleEkmDeps,
  parseMessage,
  recordContext,
} from '../common.js';
import { WrapRequest, type WrapResponse } from '../types.js';
import { encodeWrappedBlob, wrapAad } from '../wrapped-blob.js';

/** POST {keyUri}:wrap — encrypts `plaintext` under the key; the KMS sends its sealed data key here. */
export async function wrap(
  ctx: RequestContext,
  deps: GoogleEkmDeps,
  keyId: string,
  cryptoSpaceId?: string,
): Promise<Reply> {
  const caller = await authenticate(ctx, deps);
  const request = parseMessage(WrapRequest, ctx);
  recordContext(ctx, request.additionalContext);
  checkKeyPath(deps, request.keyPath, keyId, cryptoSpaceId);
  const plaintext = bytesField('plaintext', request.plaintext);
  if (plaintext.length === 0) throw new DomainError('INVALID_ARGUMENT', 'plaintext is required');
  const aad = bytesField('additionalAuthenticatedData', request.additionalAuthenticatedData);
  const key = deps.keys.authorize(keyId, caller.principals, 'wrap');
  checkJustification(key, request.additionalContext);
  const sealed = await deps.keys.encrypt(key, plaintext, wrapAad(keyId, aad));
  const response: WrapResponse = { wrappedBlob: encodeWrappedBlob(sealed).toString('base64') };
  return { status: 200, body: response, outcome: 'OK' };
}
