/**
 * Audit entries in the Cloud Audit Logs shape: one per KMS method call (admin and crypto, refused and failed ones
 * included), written as one JSON line on stdout so Cloud Logging ingests it. The entry is built in one place
 * (Gateway.handle) from what the pipeline knows (who, what, outcome, latency) plus what operations report through
 * the request's mutable `AuditRecord` (the version actually used, the justification, the EKM error domain, the
 * authorization decisions). Only names, identifiers and outcomes ever enter it: no bodies, tokens or key material.
 */
import type { OperationId } from '../api/routes.js';

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

const KMS = 'google.cloud.kms.v1.KeyManagementService';
const IAM = 'google.iam.v1.IAMPolicy';

interface MethodInfo {
  method: string;
  permission: string;
  /** Admin writes go to the Admin Activity log; reads and crypto to Data Access. */
  write: boolean;
}

const METHODS: Partial<Record<OperationId, MethodInfo>> = {
  createKeyRing: { method: 'CreateKeyRing', permission: 'cloudkms.keyRings.create', write: true },
  getKeyRing: { method: 'GetKeyRing', permission: 'cloudkms.keyRings.get', write: false },
  createEkmConnection: {
    method: 'CreateEkmConnection',
    permission: 'cloudkms.ekmConnections.create',
    write: true,
  },
  getEkmConnection: { method: 'GetEkmConnection', permission: 'cloudkms.ekmConnections.get', write: false },
  listEkmConnections: {
    method: 'ListEkmConnections',
    permission: 'cloudkms.ekmConnections.list',
    write: false,
  },
  patchEkmConnection: {
    method: 'UpdateEkmConnection',
    permission: 'cloudkms.ekmConnections.update',
    write: true,
  },
  verifyConnectivity: {
    method: 'VerifyConnectivity',
    permission: 'cloudkms.ekmConnections.get',
    write: false,
  },
  getEkmConfig: { method: 'GetEkmConfig', permission: 'cloudkms.ekmConfigs.get', write: false },
  updateEkmConfig: { method: 'UpdateEkmConfig', permission: 'cloudkms.ekmConfigs.update', write: true },
  listKeyRings: { method: 'ListKeyRings', permission: 'cloudkms.keyRings.list', write: false },
  createCryptoKey: { method: 'CreateCryptoKey', permission: 'cloudkms.cryptoKeys.create', write: true },
  getCryptoKey: { method: 'GetCryptoKey', permission: 'cloudkms.cryptoKeys.get', write: false },
  listCryptoKeys: { method: 'ListCryptoKeys', permission: 'cloudkms.cryptoKeys.list', write: false },
  patchCryptoKey: { method: 'UpdateCryptoKey', permission: 'cloudkms.cryptoKeys.update', write: true },
  updatePrimaryVersion: {
    method: 'UpdateCryptoKeyPrimaryVersion',
    permission: 'cloudkms.cryptoKeys.update',
    write: true,
  },
  encrypt: { method: 'Encrypt', permission: 'cloudkms.cryptoKeyVersions.useToEncrypt', write: false },
  decrypt: { method: 'Decrypt', permission: 'cloudkms.cryptoKeyVersions.useToDecrypt', write: false },
  createCryptoKeyVersion: {
    method: 'CreateCryptoKeyVersion',
    permission: 'cloudkms.cryptoKeyVersions.create',
    write: true,
  },
  getCryptoKeyVersion: {
    method: 'GetCryptoKeyVersion',
    permission: 'cloudkms.cryptoKeyVersions.get',
    write: false,
  },
  listCryptoKeyVersions: {
    method: 'ListCryptoKeyVersions',
    permission: 'cloudkms.cryptoKeyVersions.list',
    write: false,
  },
  patchCryptoKeyVersion: {
    method: 'UpdateCryptoKeyVersion',
    permission: 'cloudkms.cryptoKeyVersions.update',
    write: true,
  },
  destroyCryptoKeyVersion: {
    method: 'DestroyCryptoKeyVersion',
    permission: 'cloudkms.cryptoKeyVersions.destroy',
    write: true,
  },
  restoreCryptoKeyVersion: {
    method: 'RestoreCryptoKeyVersion',
    permission: 'cloudkms.cryptoKeyVersions.restore',
    write: true,
  },
};

const IAM_METHODS: Record<string, { method: string; action: string; write: boolean }> = {
  getIamPolicy: { method: 'GetIamPolicy', action: 'getIamPolicy', write: false },
  setIamPolicy: { method: 'SetIamPolicy', action: 'setIamPolicy', write: true },
  testIamPermissions: { method: 'TestIamPermissions', action: '', write: false },
};

/** The audited method of an operation (IAM routes by their verb); undefined for health, JWKS and the like. */
export function auditedMethod(
  operation: OperationId | undefined,
  verb: string,
  resourceName: string,
): MethodInfo | undefined {
  if (!operation) return undefined;
  if (operation === 'iam') {
    const m = IAM_METHODS[verb];
    if (!m) return undefined;
    const kind = resourceName.includes('/cryptoKeys/')
      ? 'cryptoKeys'
      : resourceName.includes('/ekmConnections/')
        ? 'ekmConnections'
        : 'keyRings';
    return {
      method: `${IAM}.${m.method}`,
      permission: m.action ? `cloudkms.${kind}.${m.action}` : '',
      write: m.write,
    };
  }
  const m = METHODS[operation];
  return m ? { ...m, method: `${KMS}.${m.method}` } : undefined;
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
