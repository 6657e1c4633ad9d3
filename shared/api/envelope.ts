/**
 * The HTTP edge of the one error type: google.rpc.Status codes as HTTP statuses and the JSON error envelope of
 * Google REST APIs (`{"error": {"code", "message", "status", "details"}}`). The only place an RpcError becomes HTTP.
 */
import type { Code, ErrorDetail, RpcError } from '../errors.js';

const HTTP_STATUS: Record<Code, number> = {
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};

export function httpStatus(code: Code): number {
  return HTTP_STATUS[code];
}

export interface Envelope {
  error: { code: number; message: string; status: Code; details?: ErrorDetail[] };
}

/** google.rpc.Status in the JSON error envelope used by Google REST APIs. */
export function envelope(err: RpcError): Envelope {
  const error: Envelope['error'] = { code: httpStatus(err.code), message: err.message, status: err.code };
  if (err.details.length > 0) error.details = err.details;
  return { error };
}
