/**
 * EKM request metrics as log-based metrics: one structured log line per EKM attempt, from which Cloud Logging
 * derives the counterparts of Cloud EKM's `ekm/external/request_count` {method, final, response_code, status} and
 * `ekm/external/request_latencies` {method, final} (descriptors in docs/audit-and-metrics.md). Log lines rather
 * than an in-process endpoint because the EKM calls happen in the encrypt and decrypt functions, on however many
 * instances the platform runs: only the log sees them all.
 */
import type { EkmDomain } from '../ekm/errors.js';

/** The name log-based metric filters select on: `jsonPayload.metric="openekm.ekm.request"`. */
export const EKM_METRIC = 'openekm.ekm.request';

export type EkmMethod = 'wrap' | 'unwrap' | 'checkKey' | 'createKey' | 'destroyKey';

/** One attempt of an EKM call, as the EKM client reports it. */
export interface EkmAttempt {
  method: EkmMethod;
  protocol: string;
  /** 1 for the call's first attempt, 2 for its first retry… */
  attempt?: number;
  /** False when OpenEKM refused the attempt itself (its concurrency bound) and nothing was sent to the EKM. */
  sent?: boolean;
  /** Whether this was the request's last attempt (its outcome is the caller's). */
  final: boolean;
  /** undefined when the attempt succeeded. */
  domain: EkmDomain | undefined;
  latencyMs: number;
  requestId: string;
  /** The EKM host (host[:port]) the attempt went to: with connection replicas, which replica. */
  replica?: string;
}

/** The canonical code of an attempt's outcome, as Cloud EKM's `response_code` label. */
const CODE_OF_DOMAIN: Record<EkmDomain, string> = {
  EXTERNAL_PERMISSION_DENIED: 'PERMISSION_DENIED',
  EXTERNAL_NOT_FOUND: 'NOT_FOUND',
  EXTERNAL_KEY_URI_INVALID: 'INVALID_ARGUMENT',
  EXTERNAL_KEY_HOST_NOT_WHITELISTED: 'INVALID_ARGUMENT',
  DNS: 'UNAVAILABLE',
  EXTERNAL_RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  UNREACHABLE_NETWORK: 'UNAVAILABLE',
  OVERLOADED_EKM: 'UNAVAILABLE',
  TIMEOUT: 'DEADLINE_EXCEEDED',
  REQUEST_CANCELLED: 'CANCELLED',
  TLS_CERT: 'UNAVAILABLE',
  UNEXPECTED_RESPONSE: 'INTERNAL',
  EXTERNAL_SERVER_ERROR: 'INTERNAL',
  EXTERNAL_NOT_IMPLEMENTED: 'UNIMPLEMENTED',
  UNEXPECTED_ERROR: 'UNKNOWN',
  DECRYPTION_FAILED: 'INVALID_ARGUMENT',
};

/** The structured log line of one attempt (labels as strings, as log-based metric label extractors read them). */
export function ekmMetricEntry(a: EkmAttempt): Record<string, unknown> {
  const status = a.domain ?? 'OK';
  return {
    severity: a.domain ? 'WARNING' : 'INFO',
    message: `EKM ${a.method} ${status}${a.final ? '' : ' (retried)'}`,
    metric: EKM_METRIC,
    ekm: {
      method: a.method,
      final: a.final ? 'true' : 'false',
      ...(a.attempt ? { attempt: a.attempt } : {}),
      ...(a.sent === false ? { sent: 'false' } : {}),
      response_code: a.domain ? CODE_OF_DOMAIN[a.domain] : 'OK',
      status,
      protocol: a.protocol,
      ...(a.replica ? { replica: a.replica } : {}),
      latencyMs: Math.round(a.latencyMs * 1000) / 1000,
    },
    'logging.googleapis.com/labels': { requestId: a.requestId, kind: 'metric' },
  };
}
