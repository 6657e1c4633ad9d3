/**
 * Stage 4, authorize: the one IAM check of the pipeline (docs/iam.md) — the route's permission on the path's
 * resource, recorded in the audit entry whatever the outcome. Synchronous when configuration alone grants it.
 */
import type { Authorizer } from '../access/iam.js';
import type { Caller } from '../access/identity.js';
import { type AuditRecord, recordAuthorization } from '../audit/audit.js';

export function authorize(
  authorizer: Authorizer,
  audit: AuditRecord,
  caller: Caller,
  permission: string,
  resource: string,
): Promise<void> | undefined {
  const decision = { resource, permission, granted: false };
  recordAuthorization(audit, decision);
  const pending = authorizer.authorize(caller, permission, resource);
  if (!pending) {
    decision.granted = true;
    return undefined;
  }
  return pending.then(() => {
    decision.granted = true;
  });
}
