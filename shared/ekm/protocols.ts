/**
 * What the two partner protocols share: the call context, the interface each implements (google-ekm.ts for the
 * Google EKM API v0, xks.ts for the AWS XKS proxy API v1), and how a failed partner answer becomes an error
 * domain. Each call is one attempt; retries and deadlines live in EkmClient.
 */
import type { ResolvedKey } from './endpoints.js';
import { type EkmDomain, EkmFailure } from './errors.js';
import type { EkmHttpResponse } from './transport.js';

export interface EkmCallContext {
  /** The CryptoKeyVersion resource name the operation is for. */
  versionName: string;
  /** Key Access Justification reason name, e.g. CUSTOMER_INITIATED_ACCESS. */
  reason: string;
  principal: string;
  requestId: string;
  /** The additional authenticated data bound at the EKM (a digest of the version name and the caller's AAD). */
  aad: Buffer;
  healthCheck?: boolean;
}

/**
 * The context of a call OpenEKM makes for itself rather than for a caller's crypto request (health checks,
 * connection checks, the coordinated-key control plane): reason GOOGLE_INITIATED_SYSTEM_OPERATION, no AAD.
 */
export function systemCall(versionName: string, principal: string, requestId: string): EkmCallContext {
  return {
    versionName,
    reason: 'GOOGLE_INITIATED_SYSTEM_OPERATION',
    principal,
    requestId,
    aad: Buffer.alloc(0),
  };
}

export interface EkmProtocol {
  wrap(key: ResolvedKey, plaintext: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer>;
  unwrap(key: ResolvedKey, blob: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer>;
  /** Checks that the key exists, is usable for encrypt and decrypt, and that we are allowed to use it. */
  checkKey(key: ResolvedKey, ctx: EkmCallContext, signal: AbortSignal): Promise<void>;
}

/** A base64 (or base64url) field of a partner answer; UNEXPECTED_RESPONSE when it is not one. */
export function b64(v: unknown, field: string): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/\-_]*={0,2}$/.test(v)) {
    throw new EkmFailure('UNEXPECTED_RESPONSE', `the EKM answer has no valid ${field}`);
  }
  return Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** HTTP status (and google.rpc status name, when given) of a failed partner answer → error domain. */
export function domainOfStatus(
  status: number,
  rpcStatus: unknown,
  op: 'wrap' | 'unwrap' | 'check',
): EkmDomain {
  if (status === 401 || status === 403) return 'EXTERNAL_PERMISSION_DENIED';
  if (status === 404) return 'EXTERNAL_NOT_FOUND';
  if (status === 429) return 'EXTERNAL_RESOURCE_EXHAUSTED';
  if (status === 503) return 'OVERLOADED_EKM';
  if (status === 501 || status === 405) return 'EXTERNAL_NOT_IMPLEMENTED';
  if (status === 504) return 'TIMEOUT';
  if (status >= 500) return 'EXTERNAL_SERVER_ERROR';
  // 400: the key exists but refuses this use (disabled, wrong usage), or the request/blob is bad.
  if (status === 400 && rpcStatus === 'FAILED_PRECONDITION') return 'EXTERNAL_PERMISSION_DENIED';
  if (status === 400 && op === 'unwrap') return 'DECRYPTION_FAILED';
  return 'UNEXPECTED_ERROR';
}

/**
 * Whether a Google EKM refusal is about the request's access reason (ErrorInfo reason or message naming the
 * justification) rather than about OpenEKM: the caller chose that reason, so it must not disable the version.
 */
function refusesJustification(body: { message?: unknown; details?: unknown } | undefined): boolean {
  const reasons = Array.isArray(body?.details)
    ? body.details.map((d) => (d as { reason?: unknown } | null)?.reason)
    : [];
  return [body?.message, ...reasons].some((x) => typeof x === 'string' && /justification/i.test(x));
}

/** The EkmFailure of a non-success partner answer. */
export function failureOf(
  res: EkmHttpResponse,
  op: 'wrap' | 'unwrap' | 'check',
  protocolDomain?: EkmDomain,
  identityRefused?: boolean,
): EkmFailure {
  const raw = res.body as { error?: unknown } | undefined;
  const body = (raw && typeof raw.error === 'object' ? raw.error : raw) as
    | { message?: unknown; status?: unknown; errorName?: unknown; errorMessage?: unknown; details?: unknown }
    | undefined;
  identityRefused ??= (res.status === 401 || res.status === 403) && !refusesJustification(body);
  const said = [body?.errorName ?? body?.status, body?.message ?? body?.errorMessage]
    .filter((x) => typeof x === 'string')
    .join(': ');
  return new EkmFailure(
    protocolDomain ?? domainOfStatus(res.status, body?.status, op),
    `HTTP ${res.status}${said ? ` ${said.slice(0, 200)}` : ''}`,
    { identityRefused },
  );
}
