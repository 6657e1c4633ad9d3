/**
 * Which replica of an EKM connection a request tries first. Two sources: the latest probe results (recorded in
 * Firestore by the scheduled probe, re-read in the background every `refreshMs`), and this instance's own
 * experience (a replica that just failed with a failover domain is avoided for `suspectMs`). Healthy replicas
 * take turns; the others are still tried, last, so a request never fails for want of a candidate.
 */
import type { ResolvedKey } from './endpoints.js';

export interface ProbeState {
  up: boolean;
  /** When the probe ran, epoch ms. */
  time: number;
}

export interface ReplicaHealthOptions {
  /** How often the probe results are re-read (ms). */
  refreshMs: number;
  /** How long a replica that failed a request is avoided by this instance (ms). */
  suspectMs: number;
  /** A DOWN probe result older than this no longer counts (ms): the probe itself may have stopped. */
  staleMs: number;
}

const DEFAULT_REPLICA_HEALTH: ReplicaHealthOptions = {
  refreshMs: 2_000,
  suspectMs: 5_000,
  staleMs: 10 * 60_000,
};

export function healthKey(key: ResolvedKey): string {
  return key.targetId ?? key.endpoint.prefix;
}

export class ReplicaHealth {
  private probed = new Map<string, ProbeState>();
  private readonly suspectUntil = new Map<string, number>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | undefined;
  private turn = 0;

  constructor(
    private readonly load: () => Promise<Map<string, ProbeState>>,
    private readonly options: ReplicaHealthOptions = DEFAULT_REPLICA_HEALTH,
    private readonly now: () => number = Date.now,
  ) {}

  /** The candidates in the order to try them: healthy ones first, taking turns, then the rest. */
  order(keys: readonly ResolvedKey[]): ResolvedKey[] {
    if (keys.length < 2) return [...keys];
    this.refresh();
    const t = this.now();
    const healthy: ResolvedKey[] = [];
    const rest: ResolvedKey[] = [];
    for (const k of keys) (this.isHealthy(healthKey(k), t) ? healthy : rest).push(k);
    if (healthy.length > 1) {
      const start = this.turn++ % healthy.length;
      healthy.push(...healthy.splice(0, start));
    }
    return [...healthy, ...rest];
  }

  isHealthy(id: string, t = this.now()): boolean {
    const until = this.suspectUntil.get(id);
    if (until !== undefined) {
      if (until > t) return false;
      this.suspectUntil.delete(id);
    }
    const p = this.probed.get(id);
    return !(p && !p.up && t - p.time < this.options.staleMs);
  }

  failed(id: string): void {
    this.suspectUntil.set(id, this.now() + this.options.suspectMs);
  }

  succeeded(id: string): void {
    this.suspectUntil.delete(id);
  }

  /** Reads the probe results now (tests, and the probe after it recorded new ones). */
  async reload(): Promise<void> {
    this.loadedAt = Number.NEGATIVE_INFINITY;
    this.refresh();
    await this.loading;
  }

  private refresh(): void {
    if (this.loading || this.now() - this.loadedAt < this.options.refreshMs) return;
    this.loading = this.load()
      .then((states) => {
        this.probed = states;
      })
      .catch(() => undefined)
      .finally(() => {
        this.loadedAt = this.now();
        this.loading = undefined;
      });
  }
}
