/**
 * The ground floor of the core: the one error type every layer throws, and the configuration error. Every failure
 * a caller can see is an RpcError: a google.rpc.Status code, a message that says what was wrong and what to do,
 * and typed details. It knows nothing of HTTP: the edge (shared/api/envelope.ts) turns it into the JSON envelope
 * and status in exactly one place. Underlying causes travel in `cause` for the log and never reach the caller.
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

export class RpcError extends Error {
  override readonly name = 'RpcError';
  readonly code: Code;
  readonly details: ErrorDetail[];

  constructor(code: Code, message: string, details: ErrorDetail[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  static invalidArgument(message: string, field?: string): RpcError {
    const details: ErrorDetail[] = field
      ? [
          {
            '@type': 'type.googleapis.com/google.rpc.BadRequest',
            fieldViolations: [{ field, description: message }],
          },
        ]
      : [];
    return new RpcError('INVALID_ARGUMENT', message, details);
  }

  static notFound(resourceName: string): RpcError {
    return new RpcError('NOT_FOUND', `${resourceName} not found.`);
  }

  static alreadyExists(resourceName: string): RpcError {
    return new RpcError('ALREADY_EXISTS', `${resourceName} already exists.`);
  }

  static failedPrecondition(message: string, violations: PreconditionViolation[] = []): RpcError {
    const details: ErrorDetail[] =
      violations.length > 0
        ? [{ '@type': 'type.googleapis.com/google.rpc.PreconditionFailure', violations }]
        : [];
    return new RpcError('FAILED_PRECONDITION', message, details);
  }

  static unauthenticated(message: string): RpcError {
    return new RpcError('UNAUTHENTICATED', message);
  }

  static permissionDenied(message: string): RpcError {
    return new RpcError('PERMISSION_DENIED', message);
  }

  static unimplemented(message: string): RpcError {
    return new RpcError('UNIMPLEMENTED', message);
  }

  static aborted(message: string, cause?: unknown): RpcError {
    return new RpcError('ABORTED', message, [], { cause });
  }

  static unavailable(message: string, cause?: unknown): RpcError {
    return new RpcError('UNAVAILABLE', message, [], { cause });
  }

  static deadlineExceeded(message: string): RpcError {
    return new RpcError('DEADLINE_EXCEEDED', message);
  }

  static internal(cause?: unknown): RpcError {
    return new RpcError(
      'INTERNAL',
      'Internal error. The request was not completed; retry it, and report the problem if it persists.',
      [],
      { cause },
    );
  }

  /** Any thrown value as an RpcError; unknown errors become INTERNAL with the cause kept for the log only. */
  static from(err: unknown): RpcError {
    if (err instanceof RpcError) return err;
    return RpcError.internal(err);
  }
}

/** The google.rpc.Code number of a code name (audit entries carry numbers). */
export function numericCode(code: Code): number {
  return numericCodeOf[code];
}

/** Invalid configuration: the instance cannot serve; the message names the variable and a valid value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
