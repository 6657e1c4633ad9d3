/**
 * Stage 7, record: one request log line per request, and the Cloud Audit Logs entry of every audited method
 * (Admin Activity always; Data Access when OPENEKM_AUDIT_DATA_ACCESS is on). Only names, identifiers and outcomes.
 */
import { type AuditRecord, auditEntry } from '../audit/audit.js';
import { numericCode, type RpcError } from '../errors.js';
import type { Logger } from '../log.js';
import type { FunctionName, Route } from './routes.js';

export interface Outcome {
  fn: FunctionName;
  /** The request id echoed to the caller: the caller's x-request-id, or ours. */
  requestId: string;
  /** Ours, always: the audit entry's insertId. */
  insertId: string;
  /** The x-request-id the caller sent, when it sent one. */
  callerRequestId?: string;
  method: string;
  path: string;
  route?: Route;
  /** The resource the path names (the parent, for a collection). */
  resourceName: string;
  status: number;
  error?: RpcError;
  principal?: string;
  remoteIp?: string;
  userAgent?: string;
  latencyMs: number;
  audit: AuditRecord;
}

export function record(log: Logger, o: Outcome, auditDataAccess: boolean, now: Date): void {
  log.request({
    function: o.fn,
    requestId: o.requestId,
    insertId: o.insertId,
    method: o.method,
    path: o.path,
    operation: o.route?.rpc,
    status: o.status,
    errorCode: o.error?.code,
    principal: o.principal,
    remoteIp: o.remoteIp,
    userAgent: o.userAgent,
    latencyMs: o.latencyMs,
  });
  const audited = o.route?.audit;
  if (!audited || (audited === 'data' && !auditDataAccess)) return;
  log.entry(
    auditEntry(
      {
        method: { method: o.route!.rpc, permission: o.route!.permission ?? '', write: audited === 'admin' },
        resourceName: o.resourceName,
        principal: o.principal,
        callerIp: o.remoteIp,
        userAgent: o.userAgent,
        requestId: o.requestId,
        insertId: o.insertId,
        ...(o.callerRequestId === undefined ? {} : { callerRequestId: o.callerRequestId }),
        code: o.error ? numericCode(o.error.code) : 0,
        message: o.error?.message ?? '',
        latencyMs: o.latencyMs,
        record: o.audit,
      },
      now,
    ),
  );
}
