import type { Reply, RequestContext } from '../../http/types.js';
import {
  authenticate,
  type GoogleEkmDeps,
  grantedCryptoSpace,
  parseMessage,
  recordContext,
} from '../common.js';
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
  grantedCryptoSpace(deps, caller.principals, cryptoSpaceId);
  const response: CheckCryptoSpacePermissionsResponse = {
    cryptoSpacePath: `v0/cryptospaces/${cryptoSpaceId}`,
    principal: caller.principal,
    permissions: ['createKey', 'destroyKey', 'wrap', 'unwrap'],
  };
  return { status: 200, body: response, outcome: 'OK' };
}
