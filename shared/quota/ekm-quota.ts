/**
 * The EKM crypto request quota: at most `limit` EKM crypto requests (encrypt or decrypt with an EXTERNAL key) per
 * project and location per second, across every instance sharing one Firestore database. Cloud EKM's figure is
 * 100 per second.
 *
 * Leased token batches: the budget of one (project, location, second) lives in K shard documents, each holding
 * its share of the limit and how much of it was handed out. An instance that runs out of tokens takes a lease of
 * up to `leaseSize` tokens from one shard in a Firestore transaction and spends them locally; one lease at a time
 * per instance and bucket (concurrent requests wait for the same lease; when half a lease is left the next one is
 * taken in the background). Tokens are only spent in the second they were leased for. Because every token comes out of a transaction on the shared budget, the instances
 * together never start more than `limit` EKM requests in one second of the clock; what a lease costs is the
 * opposite error — fewer than two leases' worth of tokens per instance per second may go unused. The only overshoot
 * comes from instance clocks that disagree (see docs/audit-and-metrics.md).
 *
 * Per document, writes are bounded by limit / leaseSize / K per second, and each document lives for one second
 * (`expireAt` lets a Firestore TTL policy delete them).
 */
import { ApiError } from '../api/errors.js';
import type { Store } from '../store/firestore.js';

export interface EkmQuotaConfig {
  /** false turns the quota off (every EKM request is admitted, no Firestore traffic). */
  enabled: boolean;
  /** Requests per second per project and location, unless the project has its own figure. */
  default: number;
  /** Per-project limits (all locations of the project). */
  projects: Record<string, number>;
  /** Shard documents per (project, location, second). */
  shards: number;
  /** Tokens per lease; 0 chooses max(1, floor(limit / 20)). */
  leaseSize: number;
}

export const DEFAULT_EKM_QUOTA: EkmQuotaConfig = {
  enabled: true,
  default: 100,
  projects: {},
  shards: 4,
  leaseSize: 0,
};

/** The Firestore collection of the per-second shard documents (a TTL policy on `expireAt` cleans it). */
export const QUOTA_COLLECTION = 'openekmQuota';

interface Bucket {
  second: number;
  tokens: number;
  /** Shards found exhausted this second. */
  exhausted: Set<number>;
  /** Requests of this instance waiting for a lease: the next lease asks for this many tokens if more than leaseSize. */
  waiting: number;
  pending?: Promise<void>;
}

export class EkmQuota {
  private readonly buckets = new Map<string, Bucket>();
  private readonly random: () => number;

  constructor(
    private readonly store: Store,
    private readonly now: () => Date,
    readonly config: EkmQuotaConfig = DEFAULT_EKM_QUOTA,
    options: { random?: () => number } = {},
  ) {
    this.random = options.random ?? Math.random;
  }

  limitOf(project: string): number {
    return this.config.projects[project] ?? this.config.default;
  }

  /** The number of shards and the lease size in effect for a limit. */
  shape(limit: number): { shards: number; leaseSize: number } {
    return {
      shards: Math.max(1, Math.min(this.config.shards, limit)),
      leaseSize: this.config.leaseSize > 0 ? this.config.leaseSize : Math.max(1, Math.floor(limit / 20)),
    };
  }

  /**
   * Takes one unit of the quota of the project and location of `resourceName` (projects/p/locations/l/…), or
   * throws RESOURCE_EXHAUSTED with a RetryInfo pointing at the next second.
   */
  async take(resourceName: string): Promise<void> {
    if (!this.config.enabled) return;
    const parts = resourceName.split('/');
    const project = parts[1] ?? '';
    const location = parts[3] ?? '';
    const key = `${project}/${location}`;
    for (;;) {
      const nowMs = this.now().getTime();
      const second = Math.floor(nowMs / 1000);
      let b = this.buckets.get(key);
      if (!b || b.second !== second) {
        b = { second, tokens: 0, exhausted: new Set(), waiting: 0 };
        this.buckets.set(key, b);
        if (this.buckets.size > 10_000) this.prune(second);
      }
      const limit = this.limitOf(project);
      const { shards, leaseSize } = this.shape(limit);
      if (b.tokens > 0) {
        b.tokens--;
        // Running low: take the next lease now, so the request that needs it does not wait for Firestore.
        if (b.tokens <= leaseSize >> 1 && !b.pending && b.exhausted.size < shards) {
          this.startLease(b, project, location, limit).catch(() => undefined);
        }
        return;
      }
      if (b.exhausted.size >= shards) {
        throw exhausted(project, location, limit, 1000 - (nowMs % 1000));
      }
      b.waiting++;
      try {
        await (b.pending ?? this.startLease(b, project, location, limit));
      } finally {
        b.waiting--;
      }
    }
  }

  private startLease(b: Bucket, project: string, location: string, limit: number): Promise<void> {
    const pending = this.lease(b, project, location, limit).finally(() => {
      if (b.pending === pending) b.pending = undefined;
    });
    b.pending = pending;
    return pending;
  }

  /**
   * One lease from the first shard (random start) that still has tokens this second: `leaseSize` tokens, or one per
   * waiting request if more are waiting. With leases of one token (limits under 40) and one lease at a time, an
   * instance could otherwise admit no more than one request per Firestore transaction, far under its quota, while
   * the rest queued without ever being refused.
   */
  private async lease(b: Bucket, project: string, location: string, limit: number): Promise<void> {
    const { shards, leaseSize } = this.shape(limit);
    const want = Math.max(leaseSize, b.waiting);
    const start = Math.floor(this.random() * shards);
    for (let i = 0; i < shards; i++) {
      const shard = (start + i) % shards;
      if (b.exhausted.has(shard)) continue;
      const capacity = Math.floor(limit / shards) + (shard < limit % shards ? 1 : 0);
      const path = `${QUOTA_COLLECTION}/ekm:${project}:${location}:${b.second}:${shard}`;
      const granted = await this.store.transaction(async (tx) => {
        const doc = await tx.get<{ used?: number }>(path);
        const used = doc?.used ?? 0;
        const grant = Math.min(want, capacity - used);
        if (grant > 0) {
          tx.set(path, {
            used: used + grant,
            capacity,
            expireAt: new Date((b.second + 3600) * 1000),
          });
        }
        return Math.max(0, grant);
      });
      if (granted < want) b.exhausted.add(shard);
      if (granted > 0) {
        // A lease that arrives after its second is over is dropped: tokens are never spent in another second.
        if (this.buckets.get(`${project}/${location}`) === b) b.tokens += granted;
        return;
      }
    }
  }

  private prune(second: number): void {
    for (const [k, v] of this.buckets) if (v.second < second && !v.pending) this.buckets.delete(k);
  }
}

function exhausted(project: string, location: string, limit: number, delayMs: number): ApiError {
  return new ApiError(
    'RESOURCE_EXHAUSTED',
    `Quota exceeded: project ${project} may make ${limit} external key manager requests per second in ${location}, and this second's are used. Retry after the delay in RetryInfo, spread the load, or ask the operator to raise the quota (OPENEKM_EKM_QUOTA).`,
    [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${(delayMs / 1000).toFixed(3)}s` }],
  );
}
