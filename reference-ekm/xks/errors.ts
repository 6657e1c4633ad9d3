import { DomainError, type DomainFailure } from '../core/errors.js';
import type { Reply } from '../http/types.js';
import type { Logger } from '../log.js';

/** Every error name of the XKS proxy API v1 with its HTTP status — the closed set, one mapping. */
export const XKS_ERRORS = {
  ValidationException: 400,
  InvalidStateException: 400,
  InvalidCiphertextException: 400,
  InvalidKeyUsageException: 400,
  AuthenticationFailedException: 401,
  AccessDeniedException: 403,
  KeyNotFoundException: 404,
  InvalidUriPathException: 404,
  ThrottlingException: 429,
  UnsupportedOperationException: 501,
  DependencyTimeoutException: 503,
  InternalException: 500,
} as const;
export type XksErrorName = keyof typeof XKS_ERRORS;

const BY_FAILURE: Record<DomainFailure, XksErrorName> = {
  INVALID_ARGUMENT: 'ValidationException',
  PAYLOAD_TOO_LARGE: 'UnsupportedOperationException',
  UNAUTHENTICATED: 'AuthenticationFailedException',
  UNKNOWN_PATH: 'InvalidUriPathException',
  ALREADY_EXISTS: 'ValidationException',
  KEY_NOT_FOUND: 'KeyNotFoundException',
  CRYPTO_SPACE_NOT_FOUND: 'KeyNotFoundException',
  ACCESS_DENIED: 'AccessDeniedException',
  JUSTIFICATION_REFUSED: 'AccessDeniedException',
  KEY_DISABLED: 'InvalidStateException',
  USAGE_NOT_ALLOWED: 'InvalidKeyUsageException',
  NOT_COORDINATED: 'UnsupportedOperationException',
  DECRYPT_FAILED: 'InvalidCiphertextException',
  THROTTLED: 'ThrottlingException',
  BACKEND_UNAVAILABLE: 'DependencyTimeoutException',
  BACKEND_ERROR: 'InternalException',
};

/** Thrown by XKS handlers for conditions named directly in the spec. */
export class XksError extends Error {
  constructor(
    readonly errorName: XksErrorName,
    message: string,
  ) {
    super(message);
    this.name = 'XksError';
  }
}

/** `{"errorName": ..., "errorMessage": ...}`; the message is printable ASCII, under 512 characters. */
export function xksReply(
  errorName: XksErrorName,
  message: string,
  status: number = XKS_ERRORS[errorName],
): Reply {
  const errorMessage = message.replace(/[^\x20-\x7e]/g, '?').slice(0, 500);
  return { status, outcome: errorName, body: { errorName, errorMessage } };
}

export function xksFailure(error: unknown, log: Logger, fields: Record<string, unknown>): Reply {
  const context = {
    operation: String(fields.operation ?? ''),
    keyId: typeof fields.keyId === 'string' ? fields.keyId : undefined,
  };
  if (error instanceof XksError) return xksReply(error.errorName, error.message);
  if (error instanceof DomainError) {
    if (error.cause !== undefined)
      log.error({ msg: 'xks request failed', failure: error.failure, ...context }, error.cause);
    return xksReply(BY_FAILURE[error.failure], error.message);
  }
  log.error({ msg: 'unexpected error in xks handler', ...context }, error);
  return xksReply('InternalException', 'the XKS proxy failed to process the request');
}

export function injectedXksStatus(http: number): Reply {
  const found = (Object.entries(XKS_ERRORS) as Array<[XksErrorName, number]>).find(
    ([name, status]) => status === http && name !== 'InvalidUriPathException',
  );
  return xksReply(found?.[0] ?? 'InternalException', `injected fault: HTTP ${http}`, http);
}
