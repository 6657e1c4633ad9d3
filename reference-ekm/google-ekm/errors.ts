import { DomainError, type DomainFailure } from '../core/errors.js';
import type { Reply } from '../http/types.js';
import type { Logger } from '../log.js';

/** google.rpc.Code names this EKM answers with: [numeric code, HTTP status]. */
export const RPC_STATUS = {
  INVALID_ARGUMENT: [3, 400],
  FAILED_PRECONDITION: [9, 400],
  UNAUTHENTICATED: [16, 401],
  PERMISSION_DENIED: [7, 403],
  NOT_FOUND: [5, 404],
  ALREADY_EXISTS: [6, 409],
  RESOURCE_EXHAUSTED: [8, 429],
  INTERNAL: [13, 500],
  UNIMPLEMENTED: [12, 501],
  UNAVAILABLE: [14, 503],
  DEADLINE_EXCEEDED: [4, 504],
} as const satisfies Record<string, readonly [number, number]>;
export type RpcStatus = keyof typeof RPC_STATUS;

/** The one mapping from domain failures to Google EKM statuses. */
const BY_FAILURE: Record<DomainFailure, RpcStatus> = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  PAYLOAD_TOO_LARGE: 'INVALID_ARGUMENT',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  UNKNOWN_PATH: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  KEY_NOT_FOUND: 'NOT_FOUND',
  CRYPTO_SPACE_NOT_FOUND: 'NOT_FOUND',
  ACCESS_DENIED: 'PERMISSION_DENIED',
  JUSTIFICATION_REFUSED: 'PERMISSION_DENIED',
  KEY_DISABLED: 'FAILED_PRECONDITION',
  USAGE_NOT_ALLOWED: 'FAILED_PRECONDITION',
  NOT_COORDINATED: 'FAILED_PRECONDITION',
  DECRYPT_FAILED: 'INVALID_ARGUMENT',
  THROTTLED: 'RESOURCE_EXHAUSTED',
  BACKEND_UNAVAILABLE: 'UNAVAILABLE',
  BACKEND_ERROR: 'INTERNAL',
};

export const ERROR_DOMAIN = 'reference-ekm.openekm.dev';

/** A google.rpc.Status body: {code, message, status, details:[ErrorInfo]}; HTTP status from the code. */
export function rpcReply(status: RpcStatus, message: string, reason: string, httpStatus?: number): Reply {
  const [code, http] = RPC_STATUS[status];
  return {
    status: httpStatus ?? http,
    outcome: status,
    body: {
      code,
      message,
      status,
      details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: ERROR_DOMAIN }],
    },
  };
}

export function googleEkmFailure(error: unknown, log: Logger, fields: Record<string, unknown>): Reply {
  if (error instanceof DomainError) {
    if (error.cause !== undefined)
      log.error({ msg: 'google-ekm request failed', failure: error.failure, ...pick(fields) }, error.cause);
    return rpcReply(BY_FAILURE[error.failure], error.message, error.failure);
  }
  log.error({ msg: 'unexpected error in google-ekm handler', ...pick(fields) }, error);
  return rpcReply('INTERNAL', 'the EKM failed to process the request', 'INTERNAL');
}

/** An injected `status=CODE` fault, shaped like a real partner's answer. */
export function injectedGoogleStatus(http: number): Reply {
  const found = (Object.entries(RPC_STATUS) as Array<[RpcStatus, readonly [number, number]]>).find(
    ([, [, h]]) => h === http,
  );
  return rpcReply(found?.[0] ?? 'INTERNAL', `injected fault: HTTP ${http}`, 'INJECTED_FAULT', http);
}

function pick(fields: Record<string, unknown>): Record<string, string | number | boolean | undefined> {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const name of ['operation', 'keyId', 'principal']) {
    const v = fields[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}
