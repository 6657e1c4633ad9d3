import { DomainError } from '../../core/errors.js';
import type { Reply, RequestContext } from '../../http/types.js';
import {
  authenticate,
  checkKeyPath,
  type GoogleEkmDeps,
  keyPathOf,
  parseMessage,
  recordContext,
} from '../common.js';
import { DestroyKeyRequest, type DestroyKeyResponse } from '../types.js';

/**
 * POST {keyUri}:destroyKey — coordinated keys only: destroys the key material. The caller needs a grant on the
 * key itself (the identity that created it holds one): a grant on the crypto space lets a caller create keys
 * there, not destroy keys another identity created. Destroying a destroyed coordinated key succeeds again for a
 * caller granted on it (idempotent).
 */
export async function destroyKey(
  ctx: RequestContext,
  deps: GoogleEkmDeps,
  keyId: string,
  cryptoSpaceId?: string,
): Promise<Reply> {
  const caller = await authenticate(ctx, deps);
  const request = parseMessage(DestroyKeyRequest, ctx);
  recordContext(ctx, request.additionalContext);
  checkKeyPath(deps, undefined, keyId, cryptoSpaceId);
  const state = deps.keys.state.read();
  const key = state.keys[keyId];
  if (!key) throw new DomainError('KEY_NOT_FOUND', `key ${keyId} does not exist at this EKM`);
  if (!key.coordinated) {
    throw new DomainError(
      'NOT_COORDINATED',
      `key ${keyId} is managed manually at the EKM; destroy it with the EKM's admin tools`,
    );
  }
  // A destroyed key has no grants left; the identity that created it may still repeat the destroy.
  const granted = caller.principals.some(
    (p) => key.grants.includes(p) || (key.status === 'DESTROYED' && p === key.coordinated?.createdBy),
  );
  if (!granted && key.status !== 'DESTROYED')
    throw new DomainError('ACCESS_DENIED', `the caller has no grant on key ${keyId}`);
  if (!granted) throw new DomainError('KEY_NOT_FOUND', `key ${keyId} does not exist at this EKM`);
  const destroyed = await deps.admin.destroyKey(keyId);
  const response: DestroyKeyResponse = {
    keyPath: keyPathOf(keyId, key.coordinated.cryptoSpaceId),
    destroyTime: destroyed.destroyTime ?? new Date().toISOString(),
  };
  return { status: 200, body: response, outcome: 'OK' };
}
