/**
 * What `GET /health/ekm` answers and the status page draws: one entry per EKM target (a declared endpoint, or
 * one replica of an EKM connection), built from the probe results recorded in Firestore.
 */

/** UP: the latest probe succeeded. DOWN: it failed. UNKNOWN: never probed, or the last probe is stale. */
export type TargetState = 'UP' | 'DOWN' | 'UNKNOWN';

export interface LatencySummary {
  /** Probes in the window (successful and failed). */
  count: number;
  /** Share of probes that succeeded, 0..1; null when count is 0. */
  availability: number | null;
  /** Latency percentiles of successful probes, in ms; null when there were none. */
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

export interface ProbePoint {
  /** RFC 3339 time of the probe. */
  time: string;
  ok: boolean;
  latencyMs: number;
  /** Cloud EKM error domain of a failed probe. */
  domain?: string;
}

export interface TargetReport {
  /** Stable id of the target (also its Firestore document id). */
  id: string;
  /** `endpoint`: a declared EKM endpoint (EXTERNAL keys); `connection`: a replica of an EkmConnection. */
  kind: 'endpoint' | 'connection';
  /** The endpoint's URI prefix, or the EkmConnection resource name. */
  name: string;
  /** The replica's host (host[:port]). */
  replica: string;
  protocol: 'google-ekm-v0' | 'aws-xks-v1';
  state: TargetState;
  lastProbeTime: string | null;
  lastSuccess: { time: string; latencyMs: number } | null;
  lastFailure: { time: string; domain: string; message: string } | null;
  hour: LatencySummary;
  day: LatencySummary;
  /** Probe results of the last 24 hours, oldest first (at most one per probe run). */
  history: ProbePoint[];
}

export interface EkmHealthReport {
  /** RFC 3339 time the report was built. */
  generatedAt: string;
  /** The configured probe interval, in seconds. */
  probeIntervalSeconds: number;
  targets: TargetReport[];
}
