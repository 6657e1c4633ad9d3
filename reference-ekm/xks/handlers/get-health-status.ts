import type { Reply, RequestContext } from '../../http/types.js';
import { parseXksMessage, type XksDeps } from '../common.js';
import { GetHealthStatusRequest, type GetHealthStatusResponse } from '../types.js';

/** POST …/kms/xks/v1/health — deep health from the cache; exempt from secondary authorization. */
export async function getHealthStatus(ctx: RequestContext, deps: XksDeps): Promise<Reply> {
  parseXksMessage(GetHealthStatusRequest, ctx);
  const { status } = await deps.health.status();
  const response: GetHealthStatusResponse = {
    xksProxyFleetSize: 1,
    xksProxyVendor: 'OpenEKM',
    xksProxyModel: 'OpenEKM reference EKM 0.1.0',
    ekmVendor: 'OpenEKM',
    ekmFleetDetails: [
      { id: `${deps.keys.store.backend}-1`, model: deps.keys.store.model, healthStatus: status },
    ],
  };
  return { status: 200, body: response, outcome: 'OK' };
}
