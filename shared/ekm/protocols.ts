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
function domainOfStatus(status: number, rpcStatus: unknown, op: 'wrap' | 'unwrap' | 'check'): EkmDomain {
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

// ---- partner refusal classification (by error code, never by message text) ----
/**
 * google.rpc.ErrorInfo `reason` codes by which a Google EKM partner says it refused the request's access reason
 * (its Key Access Justifications policy) rather than OpenEKM's identity (docs/external-keys.md).
 */
const JUSTIFICATION_REFUSAL_REASONS: ReadonlySet<string> = new Set([
  'JUSTIFICATION_REFUSED',
  'ACCESS_REASON_REFUSED',
  'KEY_ACCESS_JUSTIFICATION_REFUSED',
]);

/**
 * Whether a Google EKM refusal disables the version (docs/external-keys.md, "When the EKM refuses"): the partner
 * refused OpenEKM's identity — HTTP 401/403 or google.rpc status UNAUTHENTICATED / PERMISSION_DENIED — and no
 * ErrorInfo reason code says the refusal was about the request's access reason. A justification refusal belongs to
 * one request (its reason), never to the version. Message text is never read: a key id, a principal or a partner's
 * wording must not decide whether a version is disabled for everyone.
 */
function googleIdentityRefused(
  httpStatus: number,
  body: { status?: unknown; details?: unknown } | undefined,
): boolean {
  const refused =
    httpStatus === 401 ||
    httpStatus === 403 ||
    body?.status === 'UNAUTHENTICATED' ||
    body?.status === 'PERMISSION_DENIED';
  if (!refused) return false;
  const reasons = Array.isArray(body?.details)
    ? body.details.map((d) => (d && typeof d === 'object' ? (d as { reason?: unknown }).reason : undefined))
    : [];
  return !reasons.some((r) => typeof r === 'string' && JUSTIFICATION_REFUSAL_REASONS.has(r));
}

/**
 * XKS error names that refuse OpenEKM's credentials or their grant on the key, and so disable the version. XKS
 * carries no access reason, so no XKS refusal is a justification refusal.
 */
export const XKS_IDENTITY_REFUSALS: ReadonlySet<string> = new Set([
  'AuthenticationFailedException',
  'AccessDeniedException',
]);
// ---- end of partner refusal classification ----

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
  identityRefused ??= googleIdentityRefused(res.status, body);
  const said = [body?.errorName ?? body?.status, body?.message ?? body?.errorMessage]
    .filter((x) => typeof x === 'string')
    .join(': ');
  return new EkmFailure(
    protocolDomain ?? domainOfStatus(res.status, body?.status, op),
    `HTTP ${res.status}${said ? ` ${said.slice(0, 200)}` : ''}`,
    { identityRefused },
  );
}
