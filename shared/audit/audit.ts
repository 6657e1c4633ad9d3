/**
 * Audit entries in the Cloud Audit Logs shape: one per KMS method call (admin and crypto, refused and failed ones
 * included), written as one JSON line on stdout so Cloud Logging ingests it. The entry is built in one place
 * (shared/api/record.ts) from what the pipeline knows (who, what, outcome, latency) plus what operations report through
 * the request's mutable `AuditRecord` (the version actually used, the justification, the EKM error domain, the
 * authorization decisions). Only names, identifiers and outcomes ever enter it: no bodies, tokens or key material.
 */
/** One authorization decision, as in google.cloud.audit.AuthorizationInfo. */
export interface AuthorizationInfo {
  /** The resource the permission was checked on (a resource name, or `projects/p` for the project). */
  resource: string;
  permission: string;
  granted: boolean;
}

/** Key Access Justification facts of an EKM operation. */
export interface JustificationAudit {
  /** The access reason the caller stated (or the default). */
  reason: string;
  /** Whether the key had a keyAccessJustificationsPolicy that was checked. */
  policyEnforced: boolean;
  /** Whether the reason was sent to the external key manager (an EKM call was made). */
  reasonSentToEkm: boolean;
}

/**
 * What operations add to the request's audit entry. The pipeline creates it per request and passes it in the
 * RequestContext; operations fill what they learn. The IAM check appends to `authorization` (see
 * `recordAuthorization`); when nothing is recorded an authenticated call counts as granted.
 */
export interface AuditRecord {
  /** The CryptoKeyVersion a crypto operation actually used (the primary, or the one the ciphertext names). */
  version?: string;
  protectionLevel?: string;
  justification?: JustificationAudit;
  /** The EKM error domain of a failed EKM hop. */
  ekmErrorDomain?: string;
  authorization?: AuthorizationInfo[];
}

/** The IAM hook: records one permission check on the request's audit entry. */
export function recordAuthorization(audit: AuditRecord | undefined, info: AuthorizationInfo): void {
  if (!audit) return;
  if (audit.authorization) audit.authorization.push(info);
  else audit.authorization = [info];
}

/** The audited method: its full RPC name, the permission it checks, and which log it goes to. */
export interface MethodInfo {
  method: string;
  permission: string;
  /** Admin writes go to the Admin Activity log; reads and crypto to Data Access. */
  write: boolean;
}

export interface AuditInput {
  method: MethodInfo;
  /** The resource (or, for create and list, the parent) named in the request, without /v1/. */
  resourceName: string;
  /** undefined when the caller was not authenticated. */
  principal: string | undefined;
  callerIp: string | undefined;
  userAgent: string | undefined;
  requestId: string;
  /** google.rpc code number and message of the answer (0 and '' on success). */
  code: number;
  message: string;
  latencyMs: number;
  record: AuditRecord;
}

const AUDIT_TYPE = 'type.googleapis.com/google.cloud.audit.AuditLog';

/** The project of a resource name `projects/p/...`, for the log name. */
function projectOf(resourceName: string): string {
  const m = /^projects\/([^/]+)/.exec(resourceName);
  return m ? m[1]! : '-';
}

/**
 * The Cloud Audit Logs entry as a plain object, ready for one JSON.stringify. Written to stdout, Cloud Logging
 * keeps it as the jsonPayload of an entry whose `logName`, `protoPayload` and `severity` fields read as below.
 */
export function auditEntry(a: AuditInput, time: Date): Record<string, unknown> {
  const r = a.record;
  let authorizationInfo = r.authorization;
  if (!authorizationInfo && a.principal !== undefined && a.method.permission) {
    // No IAM decision recorded: an authenticated caller may use every method (until IAM checks record theirs).
    authorizationInfo = [
      { resource: a.resourceName, permission: a.method.permission, granted: a.code !== 7 },
    ];
  }
  const metadata: Record<string, unknown> = {};
  if (r.version) metadata.cryptoKeyVersion = r.version;
  if (r.protectionLevel) metadata.protectionLevel = r.protectionLevel;
  if (r.justification) metadata.keyAccessJustification = r.justification;
  if (r.ekmErrorDomain) metadata.ekmErrorDomain = r.ekmErrorDomain;
  metadata.latency = `${(a.latencyMs / 1000).toFixed(6)}s`;
  const protoPayload: Record<string, unknown> = {
    '@type': AUDIT_TYPE,
    serviceName: 'cloudkms.googleapis.com',
    methodName: a.method.method,
    resourceName: a.resourceName,
    authenticationInfo: a.principal === undefined ? {} : { principalEmail: principalEmail(a.principal) },
    requestMetadata: { callerIp: a.callerIp, callerSuppliedUserAgent: a.userAgent },
    authorizationInfo,
    status: a.code === 0 ? {} : { code: a.code, message: a.message },
    metadata,
  };
  const log = a.method.write ? 'activity' : 'data_access';
  return {
    severity: a.code === 0 ? 'INFO' : a.code === 13 || a.code === 2 || a.code === 15 ? 'ERROR' : 'NOTICE',
    logName: `projects/${projectOf(a.resourceName)}/logs/cloudaudit.googleapis.com%2F${log}`,
    protoPayload,
    insertId: a.requestId,
    timestamp: time.toISOString(),
    'logging.googleapis.com/labels': { requestId: a.requestId, kind: 'audit' },
  };
}

/** `user:a@b` → `a@b`, as Cloud Audit Logs show principals. */
function principalEmail(principal: string): string {
  const i = principal.indexOf(':');
  return i > 0 && !principal.startsWith('anonymous') ? principal.slice(i + 1) : principal;
}
