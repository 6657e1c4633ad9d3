import { DomainError } from '../../core/errors.js';
import type { Reply, RequestContext } from '../../http/types.js';
import { authenticate, type GoogleEkmDeps, parseMessage, recordContext } from '../common.js';
import { CheckCryptoSpacePermissionsRequest, type CheckCryptoSpacePermissionsResponse } from '../types.js';

/** POST {base}/v0/cryptospaces/{id}:checkCryptoSpacePermissions — may the caller manage keys here? */
export async function checkCryptoSpacePermissions(
  ctx: RequestContext,
  deps: GoogleEkmDeps,
  cryptoSpaceId: string,
): Promise<Reply> {
  const caller = await authenticate(ctx, deps);
  const request = parseMessage(CheckCryptoSpacePermissionsRequest, ctx);
  recordContext(ctx, request.additionalContext);
  const space = deps.keys.state.read().cryptoSpaces[cryptoSpaceId];
  if (!space)
    throw new DomainError(
      'CRYPTO_SPACE_NOT_FOUND',
      `crypto space ${cryptoSpaceId} does not exist at this EKM`,
    );
  if (!caller.principals.some((p) => space.grants.includes(p))) {
    throw new DomainError('ACCESS_DENIED', `the caller has no grant on crypto space ${cryptoSpaceId}`);
  }
  const response: CheckCryptoSpacePermissionsResponse = {
    cryptoSpacePath: `v0/cryptospaces/${cryptoSpaceId}`,
    principal: caller.principal,
    permissions: ['createKey', 'destroyKey', 'wrap', 'unwrap'],
  };
  return { status: 200, body: response, outcome: 'OK' };
}
