/**
 * Who sees what of the EKM health report. Operators (openekm.status.get: OPENEKM_OPERATORS and the default owners)
 * see every target. Anyone else who reaches the report — anonymous callers when OPENEKM_STATUS_PUBLIC is set — sees
 * the deployment's declared EKM endpoints and only the EKM connections of projects they may view
 * (cloudkms.ekmConnections.get on the connection): one project's connections, replica hosts and failures are not
 * shown to another project's users.
 */
import { VIEW_STATUS } from '../access/roles.js';
import type { RequestContext } from '../context.js';
import type { EkmHealthReport } from './report.js';

export async function visibleReport(ctx: RequestContext, report: EkmHealthReport): Promise<EkmHealthReport> {
  const may = async (permission: string, resource: string): Promise<boolean> => {
    if (!ctx.authorize) return false;
    try {
      await ctx.authorize(permission, resource);
      return true;
    } catch {
      return false;
    }
  };
  if (await may(VIEW_STATUS, '')) return report;
  const seen = new Map<string, boolean>();
  const targets = [];
  for (const t of report.targets) {
    if (t.kind === 'connection') {
      let ok = seen.get(t.name);
      if (ok === undefined) {
        ok = await may('cloudkms.ekmConnections.get', t.name);
        seen.set(t.name, ok);
      }
      if (!ok) continue;
    }
    targets.push(t);
  }
  return { ...report, targets };
}
