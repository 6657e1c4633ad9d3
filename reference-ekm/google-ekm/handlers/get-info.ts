import type { Reply, RequestContext } from '../../http/types.js';
import { authenticate, type GoogleEkmDeps } from '../common.js';
import type { GetInfoResponse } from '../types.js';

export const PRODUCT_VERSION = '0.1.0';

/** GET {base}/info — who this EKM is. Any caller with a valid token may ask; no grant is needed. */
export async function getInfo(ctx: RequestContext, deps: GoogleEkmDeps): Promise<Reply> {
  await authenticate(ctx, deps);
  const response: GetInfoResponse = {
    vendor: 'OpenEKM',
    product: 'OpenEKM reference EKM',
    productVersion: PRODUCT_VERSION,
    apiVersions: ['v0'],
    keyStore: deps.backendModel,
    serverTime: new Date().toISOString(),
  };
  return { status: 200, body: response, outcome: 'OK' };
}
