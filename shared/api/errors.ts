/**
 * The one error type of OpenEKM. Every failure a caller can see is an ApiError: a google.rpc.Status code, a
 * message that says what was wrong and what to do, and typed details. It is turned into the HTTP envelope in
 * exactly one place (`toHttpError`). Underlying causes travel in `cause` for the log and never reach the caller.
 */

export type Code =
  | 'CANCELLED'
  | 'UNKNOWN'
  | 'INVALID_ARGUMENT'
  | 'DEADLINE_EXCEEDED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'ABORTED'
  | 'OUT_OF_RANGE'
  | 'UNIMPLEMENTED'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

const httpStatusOf: Record<Code, number> = {
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

const numericCodeOf: Record<Code, number> = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

export interface FieldViolation {
  field: string;
  description: string;
}
export interface PreconditionViolation {
  type: string;
  subject: string;
  description: string;
}

export type ErrorDetail =
  | { '@type': 'type.googleapis.com/google.rpc.BadRequest'; fieldViolations: FieldViolation[] }
  | { '@type': 'type.googleapis.com/google.rpc.PreconditionFailure'; violations: PreconditionViolation[] }
  | {
      '@type': 'type.googleapis.com/google.rpc.ErrorInfo';
      reason: string;
      domain: string;
      metadata?: Record<string, string>;
    }
  | { '@type': 'type.googleapis.com/google.rpc.RetryInfo'; retryDelay: string };

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: Code;
  readonly details: ErrorDetail[];

  constructor(code: Code, message: string, details: ErrorDetail[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return httpStatusOf[this.code];
  }

  /** google.rpc.Status in the JSON error envelope used by Google REST APIs. */
  toEnvelope(): { error: { code: number; message: string; status: Code; details?: ErrorDetail[] } } {
    const error: { code: number; message: string; status: Code; details?: ErrorDetail[] } = {
      code: this.httpStatus,
      message: this.message,
      status: this.code,
    };
    if (this.details.length > 0) error.details = this.details;
    return { error };
  }

  static invalidArgument(message: string, field?: string): ApiError {
    const details: ErrorDetail[] = field
      ? [
          {
            '@type': 'type.googleapis.com/google.rpc.BadRequest',
            fieldViolations: [{ field, description: message }],
          },
        ]
      : [];
    return new ApiError('INVALID_ARGUMENT', message, details);
  }

  static notFound(resourceName: string): ApiError {
    return new ApiError('NOT_FOUND', `${resourceName} not found.`);
  }

  static alreadyExists(resourceName: string): ApiError {
    return new ApiError('ALREADY_EXISTS', `${resourceName} already exists.`);
  }

  static failedPrecondition(message: string, violations: PreconditionViolation[] = []): ApiError {
    const details: ErrorDetail[] =
      violations.length > 0
        ? [{ '@type': 'type.googleapis.com/google.rpc.PreconditionFailure', violations }]
        : [];
    return new ApiError('FAILED_PRECONDITION', message, details);
  }

  static unauthenticated(message: string): ApiError {
    return new ApiError('UNAUTHENTICATED', message);
  }

  static permissionDenied(message: string): ApiError {
    return new ApiError('PERMISSION_DENIED', message);
  }

  static unimplemented(message: string): ApiError {
    return new ApiError('UNIMPLEMENTED', message);
  }

  static aborted(message: string, cause?: unknown): ApiError {
    return new ApiError('ABORTED', message, [], { cause });
  }

  static unavailable(message: string, cause?: unknown): ApiError {
    return new ApiError('UNAVAILABLE', message, [], { cause });
  }

  static deadlineExceeded(message: string): ApiError {
    return new ApiError('DEADLINE_EXCEEDED', message);
  }

  static internal(cause?: unknown): ApiError {
    return new ApiError(
      'INTERNAL',
      'Internal error. The request was not completed; retry it, and report the problem if it persists.',
      [],
      { cause },
    );
  }

  /** Any thrown value as an ApiError; unknown errors become INTERNAL with the cause kept for the log only. */
  static from(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    return ApiError.internal(err);
  }
}

export function numericCode(code: Code): number {
  return numericCodeOf[code];
}
