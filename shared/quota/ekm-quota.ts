/**
 * The EKM crypto request quota: at most `limit` EKM crypto requests (encrypt or decrypt with an EXTERNAL key) per
 * project and location per second, across every instance sharing one Firestore database. Cloud EKM's figure is
 * 100 per second.
 *
 * Leased token batches, without transactions. The budget of one (project, location, second) lives in K shard
 * documents, each holding its share of the limit (`capacity`) and how many tokens were asked of it (`used`). An
 * instance takes a lease in one Firestore commit that adds n_i to `used` of one or more shards
 * (`FieldValue.increment`, which never conflicts, so there is no ABORTED and no client retry backoff — the lease
 * transactions this replaces stalled 2–4 s under contention), then reads every shard of the second *as of that
 * commit's write time* (a read-only read at `readTime` = the commit's `writeTime`). Commits to one document have
 * distinct, increasing write times, so that read shows exactly the increments committed up to and including ours:
 * our grant on a shard is min(n_i, capacity − (used_after − n_i)), clamped at 0. Increments past the capacity are
 * harmless (nobody is granted them), so every granted token comes out of the shared budget and the instances
 * together never start more than `limit` EKM requests in one second of the clock.
 *
 * Per instance and bucket one lease is in flight at a time: a request that finds no token starts one only if none
 * is in flight, and otherwise waits for it (never N parallel leases from one instance). Leases are sized from the
 * instance's observed demand (half a second of it, at most half the limit, at least `leaseSize`; or one token per
 * waiting request) and a large one is spread over several shards; the next lease is taken in the background when
 * half of one is left, and in the last half of a second the first lease of the next second is taken ahead — at
 * least as large as what the instance was granted in this second, and also by requests refused because this
 * second is spent — so requests rarely wait for Firestore at all, even at saturation. A request waits at most `maxWaitMs` (default
 * QUOTA_MAX_WAIT_MS = 500 ms, or `maxWaitMs` in OPENEKM_EKM_QUOTA) for a lease; after that it is refused with RESOURCE_EXHAUSTED and a short
 * RetryInfo. When the shards read show the second's budget spent, requests are refused at once, without
 * Firestore, until the second is over.
 *
 * Writes per shard document: at most ceil(capacity / leaseSize) granting commits plus one commit per instance
 * that finds it spent; each document lives for one second (`expireAt` lets a Firestore TTL policy delete them).
 */
import { FieldValue, Firestore, type Timestamp } from '@google-cloud/firestore';
import { RpcError } from '../errors.js';
import { FirestoreStore, type Store } from '../store/firestore.js';

export interface EkmQuotaConfig {
  /** false turns the quota off (every EKM request is admitted, no Firestore traffic). */
  enabled: boolean;
  /** Requests per second per project and location, unless the project has its own figure. */
  default: number;
  /** Per-project limits (all locations of the project). */
  projects: Record<string, number>;
  /** Shard documents per (project, location, second). */
  shards: number;
  /** The smallest lease, in tokens; 0 chooses max(1, floor(limit / 20)). */
  leaseSize: number;
  /** The longest a request waits for a lease (ms); default QUOTA_MAX_WAIT_MS. */
  maxWaitMs?: number;
}

export const DEFAULT_EKM_QUOTA: EkmQuotaConfig = {
  enabled: true,
  default: 100,
  projects: {},
  shards: 4,
  leaseSize: 0,
};

/** The Firestore collection of the per-second shard documents (a TTL policy on `expireAt` cleans it). */
const QUOTA_COLLECTION = 'openekmQuota';

/** The longest a request waits for a lease (ms) before it is refused; see docs/audit-and-metrics.md. */
export const QUOTA_MAX_WAIT_MS = 500;

/** In the last this-many ms of a second, the first lease of the next second is taken ahead. */
const LEASE_AHEAD_MS = 500;

/** What one instance's quota did since it was made (for benches and tests; never used for decisions). */
export interface EkmQuotaStats {
  /** take() calls that got a unit. */
  admitted: number;
  /** Refused because the second's budget was found spent. */
  refusedSpent: number;
  /** Refused because no lease arrived within maxWaitMs. */
  refusedWait: number;
  /** take() calls that had to wait for a lease (found no token held). */
  waited: number;
  /** The longest time one take() call waited, ms (real time). */
  maxWaitMs: number;
  /** Lease commits, and shard-document writes in them. */
  leases: number;
  writes: number;
  /** Lease commits or reads that failed. */
  failures: number;
  /** Writes per shard document (path → count), for documents of the last few seconds. */
  writesPerDoc: Map<string, number>;
}

interface Bucket {
  /** project/location */
  key: string;
  second: number;
  tokens: number;
  /** `used` of each shard as last read (exact at that read's time, a lower bound now). */
  used: number[];
  /** Requests of this instance waiting for a lease. */
  waiting: number;
  /** take() calls of this instance for this bucket: the demand the leases are sized from. */
  demand: number;
  /** performance.now() of the first of them. */
  firstAt: number;
  pending?: Promise<void>;
  /** Tokens this instance was granted for this second: its share of the budget when the quota is saturated. */
  granted: number;
}

export class EkmQuota {
  private readonly buckets = new Map<string, Bucket>();
  private readonly random: () => number;
  private readonly maxWaitMs: number;
  private rotation = -1;
  private firestore?: Firestore;
  readonly stats: EkmQuotaStats = {
    admitted: 0,
    refusedSpent: 0,
    refusedWait: 0,
    waited: 0,
    maxWaitMs: 0,
    leases: 0,
    writes: 0,
    failures: 0,
    writesPerDoc: new Map(),
  };

  constructor(
    private readonly store: Store,
    private readonly now: () => Date,
    readonly config: EkmQuotaConfig = DEFAULT_EKM_QUOTA,
    options: { random?: () => number; maxWaitMs?: number } = {},
  ) {
    this.random = options.random ?? Math.random;
    this.maxWaitMs = options.maxWaitMs ?? config.maxWaitMs ?? QUOTA_MAX_WAIT_MS;
  }

  limitOf(project: string): number {
    return this.config.projects[project] ?? this.config.default;
  }

  /** The number of shards and the smallest lease in effect for a limit. */
  shape(limit: number): { shards: number; leaseSize: number } {
    return {
      shards: Math.max(1, Math.min(this.config.shards, limit)),
      leaseSize: this.config.leaseSize > 0 ? this.config.leaseSize : Math.max(1, Math.floor(limit / 20)),
    };
  }

  /**
   * Takes one unit of the quota of the project and location of `resourceName` (projects/p/locations/l/…), or
   * throws RESOURCE_EXHAUSTED with a RetryInfo: pointing at the next second when this second's budget is spent,
   * or short when no lease arrived within maxWaitMs.
   */
  async take(resourceName: string): Promise<void> {
    if (!this.config.enabled) return;
    const parts = resourceName.split('/');
    const project = parts[1] ?? '';
    const location = parts[3] ?? '';
    const limit = this.limitOf(project);
    const { shards } = this.shape(limit);
    const started = performance.now();
    let counted = false;
    let waited = false;
    try {
      for (;;) {
        const nowMs = this.now().getTime();
        const second = Math.floor(nowMs / 1000);
        const b = this.bucket(project, location, second, shards);
        if (!counted) {
          if (b.demand === 0) b.firstAt = performance.now();
          b.demand++;
          counted = true;
        }
        if (b.tokens > 0) {
          b.tokens--;
          this.stats.admitted++;
          this.ahead(b, project, location, limit, nowMs);
          return;
        }
        if (this.spent(b, limit)) {
          // At saturation the budget is spent early in the second and every later request ends here: this is
          // then the only place left to take the next second's first lease ahead of it.
          this.nextAhead(b, project, location, limit, nowMs);
          this.stats.refusedSpent++;
          throw exhausted(project, location, limit, 1000 - (nowMs % 1000));
        }
        const left = this.maxWaitMs - (performance.now() - started);
        if (left <= 0) {
          this.stats.refusedWait++;
          throw notInTime(project, location, limit, this.maxWaitMs);
        }
        if (!waited) {
          waited = true;
          this.stats.waited++;
        }
        b.waiting++;
        try {
          await within(b.pending ?? this.startLease(b, project, location, limit), left);
        } finally {
          b.waiting--;
        }
      }
    } finally {
      const ms = performance.now() - started;
      if (ms > this.stats.maxWaitMs) this.stats.maxWaitMs = ms;
    }
  }

  /** Resolves when no lease of this instance is in flight (e.g. before the store is closed). */
  async settled(): Promise<void> {
    for (;;) {
      const pending = [...this.buckets.values()].flatMap((b) => (b.pending ? [b.pending] : []));
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
    }
  }

  private bucket(project: string, location: string, second: number, shards: number): Bucket {
    const key = `${project}/${location}`;
    let b = this.buckets.get(`${key}/${second}`);
    if (!b) {
      b = {
        key,
        second,
        tokens: 0,
        used: new Array<number>(shards).fill(0),
        waiting: 0,
        demand: 0,
        firstAt: performance.now(),
        granted: 0,
      };
      this.buckets.set(`${key}/${second}`, b);
      if (this.buckets.size > 10_000) this.prune(second);
    }
    return b;
  }

  /** Whether the shards as last read hold no token for this second. */
  private spent(b: Bucket, limit: number): boolean {
    return b.used.every((used, shard) => used >= capacityOf(limit, b.used.length, shard));
  }

  /**
   * Background leases after a request took a token: the next lease of this second when half a lease is left, and
   * in the last LEASE_AHEAD_MS of the second the first lease of the next one.
   */
  private ahead(b: Bucket, project: string, location: string, limit: number, nowMs: number): void {
    if (!b.pending && b.tokens <= this.leaseWant(b, limit, 0) >> 1 && !this.spent(b, limit)) {
      this.startLease(b, project, location, limit).catch(() => undefined);
    }
    this.nextAhead(b, project, location, limit, nowMs);
  }

  /** In the last LEASE_AHEAD_MS of b's second, the first lease of the next second, unless one is held or in flight. */
  private nextAhead(b: Bucket, project: string, location: string, limit: number, nowMs: number): void {
    if (nowMs % 1000 < 1000 - LEASE_AHEAD_MS) return;
    const next = this.bucket(project, location, b.second + 1, b.used.length);
    if (!next.pending && next.tokens === 0 && !this.spent(next, limit)) {
      // At least what this instance was granted in this second: at saturation its share of the whole budget, so
      // the next second's tokens are leased before it begins, however slow the leases are.
      this.startLease(next, project, location, limit, b.granted).catch(() => undefined);
    }
  }

  /**
   * Tokens to ask for: one per waiting request if more are waiting, else half a second of the instance's
   * demand (the previous second's, or this second's so far extrapolated to a whole second — over at least its
   * first 100 ms — whichever is more), at most half the limit and at least the configured smallest lease.
   *
   * Half the limit, not one shard's capacity: a lease costs two Firestore round trips, and one lease is in flight
   * per instance at a time, so an instance at saturation admits at most (largest lease) / (lease latency) per
   * second. On a busy instance a lease takes a few hundred ms; with leases of one shard (a quarter of the limit
   * with the default 4 shards) that capped a saturated instance at about half its quota. Two leases of half the
   * limit — the first taken ahead, in the last half of the previous second — cover a whole second, and two
   * saturated instances still split the budget rather than one taking all of it in one commit.
   */
  private leaseWant(b: Bucket, limit: number, waiting: number): number {
    const { leaseSize } = this.shape(limit);
    const before = this.buckets.get(`${b.key}/${b.second - 1}`);
    const rate = Math.max(demandRate(b), before ? demandRate(before) : 0);
    const fromRate = Math.min(Math.ceil(limit / 2), Math.ceil(rate / 2));
    return Math.min(limit, Math.max(leaseSize, fromRate, waiting));
  }

  private startLease(
    b: Bucket,
    project: string,
    location: string,
    limit: number,
    atLeast = 0,
  ): Promise<void> {
    const pending = this.lease(b, project, location, limit, atLeast).finally(() => {
      if (b.pending === pending) b.pending = undefined;
    });
    b.pending = pending;
    return pending;
  }

  /**
   * One lease: the wanted tokens spread over the shards not known to be spent, one commit of
   * increments, one read of every shard at that commit's write time.
   */
  private async lease(
    b: Bucket,
    project: string,
    location: string,
    limit: number,
    atLeast: number,
  ): Promise<void> {
    const db = this.db();
    const shards = b.used.length;
    let want = Math.min(limit, Math.max(atLeast, this.leaseWant(b, limit, b.waiting)));
    const asks: Array<{ shard: number; n: number }> = [];
    // A random shard to start from, then the next one for each lease: one instance spreads its writes evenly.
    this.rotation = this.rotation < 0 ? Math.floor(this.random() * 1024) : this.rotation + 1;
    const start = this.rotation % shards;
    const open: Array<{ shard: number; room: number }> = [];
    for (let i = 0; i < shards; i++) {
      const shard = (start + i) % shards;
      const room = capacityOf(limit, shards, shard) - (b.used[shard] ?? 0);
      if (room > 0) open.push({ shard, room });
    }
    // A large lease is spread over several shards, at most half a shard's capacity on each: instances that lease
    // at the same moment (at saturation, at the start of every second) then share the shards instead of asking
    // for the same tokens, one of them getting nothing for a whole round trip. A small lease stays on one shard.
    const perShard = Math.max(1, Math.ceil(capacityOf(limit, shards, 0) / 2));
    const spread = Math.min(open.length, Math.max(1, Math.ceil(want / perShard)));
    for (let i = 0; i < open.length && want > 0; i++) {
      const { shard, room } = open[i]!;
      const n = Math.min(room, Math.ceil(want / Math.max(1, spread - i)));
      asks.push({ shard, n });
      want -= n;
    }
    if (asks.length === 0) return;
    const paths = Array.from({ length: shards }, (_, shard) => shardPath(project, location, b.second, shard));
    const expireAt = new Date((b.second + 3600) * 1000);
    let writeTime: Timestamp;
    let after: number[];
    try {
      const batch = db.batch();
      for (const { shard, n } of asks) {
        batch.set(
          db.doc(paths[shard]!),
          { used: FieldValue.increment(n), capacity: capacityOf(limit, shards, shard), expireAt },
          { merge: true },
        );
      }
      this.stats.leases++;
      this.stats.writes += asks.length;
      for (const { shard } of asks) this.countWrite(paths[shard]!, b.second);
      const results = await batch.commit();
      writeTime = results[0]!.writeTime;
      if (terminated(db)) throw new Error('the Firestore client was terminated during the lease');
      const snaps = await db.runTransaction((t) => t.getAll(...paths.map((p) => db.doc(p))), {
        readOnly: true,
        readTime: writeTime,
      });
      after = snaps.map((s) => (s.exists ? Number(s.get('used') ?? 0) : 0));
    } catch (err) {
      this.stats.failures++;
      throw RpcError.unavailable('The EKM quota could not be read from Firestore; retry the request.', err);
    }
    let granted = 0;
    for (const { shard, n } of asks) {
      granted += Math.max(0, Math.min(n, capacityOf(limit, shards, shard) - ((after[shard] ?? 0) - n)));
    }
    for (let shard = 0; shard < shards; shard++) {
      b.used[shard] = Math.max(b.used[shard] ?? 0, after[shard] ?? 0);
    }
    // Tokens are only spent in their own second: a bucket whose second is over is never taken from again.
    b.tokens += granted;
    b.granted += granted;
  }

  private db(): Firestore {
    if (!this.firestore) {
      const db = this.store instanceof FirestoreStore ? this.store.db : undefined;
      if (!(db instanceof Firestore))
        throw RpcError.internal(new Error('the EKM quota needs a FirestoreStore'));
      this.firestore = db;
    }
    return this.firestore;
  }

  private countWrite(path: string, second: number): void {
    const w = this.stats.writesPerDoc;
    w.set(path, (w.get(path) ?? 0) + 1);
    if (w.size > 4096) {
      for (const k of w.keys()) if (Number(k.split(':')[3]) < second - 2) w.delete(k);
    }
  }

  private prune(second: number): void {
    for (const [k, v] of this.buckets) if (v.second < second - 1 && !v.pending) this.buckets.delete(k);
  }
}

/**
 * Whether the Firestore client has been terminated (the store closed). The client (8.x) drops the rejection of a
 * streaming read started after terminate() — an unhandled rejection, and a promise that never settles — so a
 * background lease whose commit was in flight when the store closed must not start its read. Reads the client's
 * internal flag; if a client version lacks it, this answers false and nothing changes. The clean fix is for
 * whoever closes the store to await EkmQuota.settled() first.
 */
function terminated(db: Firestore): boolean {
  return (db as unknown as { _clientPool?: { terminated?: unknown } })._clientPool?.terminated === true;
}

/**
 * A bucket's demand per second: its take() calls, extrapolated to a whole second over at least its first 100 ms
 * (for the second in progress; a second that is over counts as it was).
 */
function demandRate(b: Bucket): number {
  return b.demand / Math.min(1, Math.max(0.1, (performance.now() - b.firstAt) / 1000));
}

function shardPath(project: string, location: string, second: number, shard: number): string {
  return `${QUOTA_COLLECTION}/ekm:${project}:${location}:${second}:${shard}`;
}

function capacityOf(limit: number, shards: number, shard: number): number {
  return Math.floor(limit / shards) + (shard < limit % shards ? 1 : 0);
}

/** Resolves when `work` settles or after `ms`, whichever is first; rethrows work's error. */
async function within(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(() => setImmediate(resolve), ms);
  });
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

function exhausted(project: string, location: string, limit: number, delayMs: number): RpcError {
  return new RpcError(
    'RESOURCE_EXHAUSTED',
    `Quota exceeded: project ${project} may make ${limit} external key manager requests per second in ${location}, and this second's are used. Retry after the delay in RetryInfo, spread the load, or ask the operator to raise the quota (OPENEKM_EKM_QUOTA).`,
    [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${(delayMs / 1000).toFixed(3)}s` }],
  );
}

function notInTime(project: string, location: string, limit: number, waitMs: number): RpcError {
  return new RpcError(
    'RESOURCE_EXHAUSTED',
    `Quota not granted in time: a unit of project ${project}'s ${limit} external key manager requests per second in ${location} could not be leased within ${waitMs} ms. Retry after the delay in RetryInfo; if this persists, ask the operator to check Firestore or the quota (OPENEKM_EKM_QUOTA).`,
    [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${(waitMs / 1000).toFixed(3)}s` }],
  );
}
