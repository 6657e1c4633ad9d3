import type { Reply, RequestContext } from '../../http/types.js';
import { parseXksMessage, type XksDeps } from '../common.js';
import { GetKeyMetadataRequest, type GetKeyMetadataResponse } from '../types.js';

/** POST …/keys/{externalKeyId}/metadata — spec, usage and status of a key (also of a disabled one). */
export async function getKeyMetadata(
  ctx: RequestContext,
  deps: XksDeps,
  keyId: string,
  principals: string[],
): Promise<Reply> {
  parseXksMessage(GetKeyMetadataRequest, ctx);
  const key = deps.keys.authorize(keyId, principals, 'metadata');
  const response: GetKeyMetadataResponse = {
    keySpec: 'AES_256',
    keyUsage: key.usage,
    keyStatus: key.status === 'ENABLED' ? 'ENABLED' : 'DISABLED',
  };
  return { status: 200, body: response, outcome: 'OK' };
}
