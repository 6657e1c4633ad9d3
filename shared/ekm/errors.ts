/**
 * The sixteen Cloud EKM error domains. When the EKM hop fails the caller gets FAILED_PRECONDITION with a
 * PreconditionFailure of two violations — the version's state, then the domain — and a message that names the
 * key URI and says what to do; DECRYPTION_FAILED is INVALID_ARGUMENT instead.
 */

import { decryptionFailed } from '../crypto/ciphertext.js';
import { RpcError } from '../errors.js';

export const EKM_DOMAINS = [
  'EXTERNAL_PERMISSION_DENIED',
  'EXTERNAL_NOT_FOUND',
  'EXTERNAL_KEY_URI_INVALID',
  'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
  'DNS',
  'EXTERNAL_RESOURCE_EXHAUSTED',
  'UNREACHABLE_NETWORK',
  'OVERLOADED_EKM',
  'TIMEOUT',
  'REQUEST_CANCELLED',
  'TLS_CERT',
  'UNEXPECTED_RESPONSE',
  'EXTERNAL_SERVER_ERROR',
  'EXTERNAL_NOT_IMPLEMENTED',
  'UNEXPECTED_ERROR',
  'DECRYPTION_FAILED',
] as const;
export type EkmDomain = (typeof EKM_DOMAINS)[number];

/** Domains worth another attempt inside the request's deadline. */
export const RETRIABLE: ReadonlySet<EkmDomain> = new Set([
  'EXTERNAL_RESOURCE_EXHAUSTED',
  'UNREACHABLE_NETWORK',
  'OVERLOADED_EKM',
  'TIMEOUT',
]);

/**
 * Failures that belong to one replica rather than to the key or the request: with several replicas, the next
 * attempt goes to another one. (DNS and TLS are not retried on the same replica: they would fail again.)
 */
export const FAILOVER: ReadonlySet<EkmDomain> = new Set([
  ...RETRIABLE,
  'DNS',
  'TLS_CERT',
  'EXTERNAL_SERVER_ERROR',
]);

const HINTS: Record<EkmDomain, string> = {
  EXTERNAL_PERMISSION_DENIED:
    "The external key manager refused OpenEKM. Grant this project's OpenEKM identity at the EKM (service-{project}@{domain}, see docs/external-keys.md) access to this key and the access reason.",
  EXTERNAL_NOT_FOUND:
    'The external key manager does not know this key. Check the key URI and that the key exists at the EKM.',
  EXTERNAL_KEY_URI_INVALID: 'The external key URI is malformed. Use the URI your EKM gives for the key.',
  EXTERNAL_KEY_HOST_NOT_WHITELISTED:
    'The EKM host is not one this OpenEKM deployment may call: the key URI is outside every declared EKM endpoint (OPENEKM_EKM_ENDPOINTS), or the host or its address is not allowed (OPENEKM_EKM_ALLOWED_HOSTS). Ask its operator.',
  DNS: 'The EKM host name did not resolve. Check the key URI and DNS.',
  EXTERNAL_RESOURCE_EXHAUSTED:
    'The external key manager throttled the request. Retry later or raise its limits.',
  UNREACHABLE_NETWORK:
    'No connection to the external key manager could be made. Check that it is up and reachable.',
  OVERLOADED_EKM: 'The external key manager reports that it is overloaded. Retry later.',
  TIMEOUT: 'The external key manager did not answer in time. Check its health and latency.',
  REQUEST_CANCELLED: 'The request was cancelled before the external key manager answered.',
  TLS_CERT: "The external key manager's TLS certificate did not validate against the configured trust.",
  UNEXPECTED_RESPONSE: 'The external key manager sent an answer OpenEKM could not use.',
  EXTERNAL_SERVER_ERROR: 'The external key manager failed with a server error. Check its logs.',
  EXTERNAL_NOT_IMPLEMENTED: 'The external key manager does not implement this operation.',
  UNEXPECTED_ERROR: 'An unexpected error occurred calling the external key manager.',
  DECRYPTION_FAILED:
    'The external key manager could not unwrap the ciphertext: it is invalid, or was made with another key or additional authenticated data.',
};

/** A failure of the EKM hop, before it is attached to a version. */
export class EkmFailure extends Error {
  override readonly name = 'EkmFailure';
  /** The EKM refused OpenEKM's identity or its grant (401/403), as opposed to refusing the key's state. */
  readonly identityRefused: boolean;
  /**
   * Set when OpenEKM itself refused to call the EKM (its concurrency bound for the endpoint was reached): the
   * caller gets UNAVAILABLE with a RetryInfo instead of a precondition failure of the version.
   */
  readonly localRefusal: { retryAfterMs: number } | undefined;
  /**
   * Set when the attempt was given up (its timeout, or the request ended) while its HTTP/1.1 exchange goes on in
   * the background so that its connection is kept: settles when that exchange ends (answered, or aborted at the
   * linger limit). The attempt's concurrency slot is held until then.
   */
  readonly abandoned: Promise<void> | undefined;
  constructor(
    readonly domain: EkmDomain,
    readonly detail: string,
    options?: {
      cause?: unknown;
      identityRefused?: boolean;
      localRefusal?: { retryAfterMs: number };
      abandoned?: Promise<void>;
    },
  ) {
    super(`${domain}: ${detail}`, options);
    this.identityRefused = options?.identityRefused ?? false;
    this.localRefusal = options?.localRefusal;
    this.abandoned = options?.abandoned;
  }

  /** `err` as an EkmFailure: itself, or UNEXPECTED_ERROR wrapping whatever else was thrown. */
  static from(err: unknown): EkmFailure {
    return err instanceof EkmFailure ? err : new EkmFailure('UNEXPECTED_ERROR', String(err), { cause: err });
  }
}

/**
 * The caller-facing error for an EKM failure on a version in state `state`. DECRYPTION_FAILED is the same bland
 * INVALID_ARGUMENT as any other undecryptable ciphertext, so a caller cannot tell which layer refused it (the
 * domain is in the log).
 */
export function ekmError(failure: EkmFailure, keyUri: string, versionName: string, state: string): RpcError {
  if (failure.domain === 'DECRYPTION_FAILED') return decryptionFailed(failure);
  if (failure.localRefusal) {
    return new RpcError(
      'UNAVAILABLE',
      `OpenEKM is at its limit of concurrent calls to the external key manager for ${keyUri}; the request was not sent. Retry after the delay in RetryInfo with backoff, or ask the operator to raise OPENEKM_EKM_MAX_CONCURRENT if the EKM has capacity.`,
      [
        {
          '@type': 'type.googleapis.com/google.rpc.RetryInfo',
          retryDelay: `${(failure.localRefusal.retryAfterMs / 1000).toFixed(3)}s`,
        },
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'EKM_CONCURRENCY_LIMIT',
          domain: 'openekm',
          metadata: { errorDomain: failure.domain },
        },
      ],
      { cause: failure },
    );
  }
  const message = `Error calling the external key manager for ${keyUri}: ${failure.domain}. ${HINTS[failure.domain]}`;
  return new RpcError(
    'FAILED_PRECONDITION',
    message,
    [
      {
        '@type': 'type.googleapis.com/google.rpc.PreconditionFailure',
        violations: [
          {
            type: 'STATE',
            subject: versionName,
            description: state.startsWith('DISABLED (')
              ? `The key version's state is ${state}. Once access is restored at the EKM, enable it again: cryptoKeyVersions.patch with state ENABLED (gcloud kms keys versions enable).`
              : `The key version's state is ${state}.`,
          },
          { type: failure.domain, subject: keyUri, description: HINTS[failure.domain] },
        ],
      },
    ],
    { cause: failure },
  );
}

/** What an operator should do about a domain (the hint in the caller's error). */
export function ekmHint(domain: EkmDomain): string {
  return HINTS[domain];
}
