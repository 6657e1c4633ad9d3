/**
 * The closed set of reasons a request can fail for, independent of protocol. Each protocol maps them
 * to its own error names and status codes in exactly one place (google-ekm/errors.ts, xks/errors.ts).
 * The message is safe to return; the cause is for the log only.
 */
export type DomainFailure =
  | 'INVALID_ARGUMENT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNAUTHENTICATED'
  | 'UNKNOWN_PATH'
  | 'ALREADY_EXISTS'
  | 'KEY_NOT_FOUND'
  | 'CRYPTO_SPACE_NOT_FOUND'
  | 'ACCESS_DENIED'
  | 'JUSTIFICATION_REFUSED'
  | 'KEY_DISABLED'
  | 'USAGE_NOT_ALLOWED'
  | 'NOT_COORDINATED'
  | 'DECRYPT_FAILED'
  | 'THROTTLED'
  | 'BACKEND_UNAVAILABLE'
  | 'BACKEND_ERROR';

export class DomainError extends Error {
  constructor(
    readonly failure: DomainFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DomainError';
  }
}
