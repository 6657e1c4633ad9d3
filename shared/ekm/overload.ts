/**
 * Overload behaviour of the EKM client, as production RPC clients have it:
 * - a retry budget per endpoint (Finagle's RetryBudget, gRPC's retry throttling): over a sliding window, retries
 *   may be at most a fixed share of first attempts (plus a small reserve so a quiet instance can still retry),
 *   so a struggling EKM sees at most ~1.1× its offered load instead of a retry storm;
 * - a bound on concurrent attempts per endpoint: an attempt either gets a slot and is sent at once (so its
 *   timeout measures the EKM, not a local queue), waits briefly for one, or is refused at once with a clear
 *   UNAVAILABLE and a RetryInfo — never queued past the caller's deadline.
 */

/** Knobs of the EKM client (docs/configuration.md, "EKM client"). */
export interface EkmClientSettings {
  /** Retries allowed per 100 first attempts over the window. */
  retryBudgetPercent: number;
  /** Retries always allowed per second of window (the reserve of a quiet instance). */
  retryBudgetMinPerSecond: number;
  /** The sliding window of the retry budget, ms. */
  retryBudgetWindowMs: number;
  /** Concurrent attempts per EKM endpoint. */
  maxConcurrent: number;
  /** Longest wait for a free attempt slot before refusing, ms (never past the caller's deadline). */
  maxQueueWaitMs: number;
  /**
   * Offer HTTP/2 by ALPN to HTTPS endpoints (one TLS connection, many streams). Off by default: undici's HTTP/2
   * client measured several times the CPU of HTTP/1.1 per call, and failed calls under load (docs/benchmarks.md).
   */
  http2: boolean;
  /** How long an idle EKM connection is kept open, ms. */
  keepAliveMs: number;
  /**
   * How long an HTTP/1.1 exchange whose attempt was given up (timeout, or the request ended) may go on in the
   * background so that its connection is kept instead of closed, ms; 0 closes it at once.
   */
  lingerMs: number;
}

export const DEFAULT_EKM_CLIENT_SETTINGS: EkmClientSettings = {
  retryBudgetPercent: 10,
  retryBudgetMinPerSecond: 1,
  retryBudgetWindowMs: 10_000,
  maxConcurrent: 64,
  maxQueueWaitMs: 50,
  http2: false,
  keepAliveMs: 30_000,
  lingerMs: 2000,
};

const BUCKETS = 10;

/** Counts in BUCKETS slices of the window; old slices are zeroed as time moves on. */
class Window {
  private readonly firsts = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private current = 0;
  private currentSlice = -1;

  constructor(private readonly sliceMs: number) {}

  private advance(now: number): void {
    const slice = Math.floor(now / this.sliceMs);
    if (this.currentSlice === -1) this.currentSlice = slice;
    const steps = Math.min(BUCKETS, slice - this.currentSlice);
    for (let i = 0; i < steps; i++) {
      this.current = (this.current + 1) % BUCKETS;
      this.firsts[this.current] = 0;
      this.retries[this.current] = 0;
    }
    if (slice > this.currentSlice) this.currentSlice = slice;
  }

  first(now: number): void {
    this.advance(now);
    this.firsts[this.current]! += 1;
  }

  retry(now: number): void {
    this.advance(now);
    this.retries[this.current]! += 1;
  }

  totals(now: number): { firsts: number; retries: number } {
    this.advance(now);
    let firsts = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      firsts += this.firsts[i]!;
      retries += this.retries[i]!;
    }
    return { firsts, retries };
  }
}

/** The retry budget of each endpoint (keyed by the caller, e.g. the endpoint prefix). */
export class RetryBudget {
  private readonly windows = new Map<string, Window>();
  private readonly reserve: number;

  constructor(
    private readonly settings: Pick<
      EkmClientSettings,
      'retryBudgetPercent' | 'retryBudgetMinPerSecond' | 'retryBudgetWindowMs'
    >,
    private readonly now: () => number = Date.now,
  ) {
    this.reserve = (settings.retryBudgetMinPerSecond * settings.retryBudgetWindowMs) / 1000;
  }

  private window(key: string): Window {
    let w = this.windows.get(key);
    if (!w) {
      w = new Window(Math.max(1, this.settings.retryBudgetWindowMs / BUCKETS));
      this.windows.set(key, w);
    }
    return w;
  }

  /** Records a first attempt (a deposit into the budget). */
  recordFirst(key: string): void {
    this.window(key).first(this.now());
  }

  /** Takes one retry from the budget; false when the window's retries are used up (then do not retry). */
  tryRetry(key: string): boolean {
    const w = this.window(key);
    const now = this.now();
    const { firsts, retries } = w.totals(now);
    if (retries + 1 > this.reserve + (firsts * this.settings.retryBudgetPercent) / 100) return false;
    w.retry(now);
    return true;
  }
}

/** A slot of the concurrency limiter; release it exactly once when the attempt ends. */
export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Concurrent attempts per endpoint: a counter and a short FIFO of callers waiting at most their wait limit. */
export class ConcurrencyLimiter {
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(readonly max: number) {}

  inFlight(key: string): number {
    return this.running.get(key) ?? 0;
  }

  /**
   * A slot for `key`, at once when one is free, else after at most `waitMs` (0 = no wait); undefined when none
   * came in time (the caller refuses).
   */
  acquire(key: string, waitMs: number): Release | undefined | Promise<Release | undefined> {
    const n = this.running.get(key) ?? 0;
    if (n < this.max) {
      this.running.set(key, n + 1);
      return this.releaser(key);
    }
    if (waitMs <= 0) return undefined;
    return new Promise((resolve) => {
      let queue = this.waiting.get(key);
      if (!queue) {
        queue = [];
        this.waiting.set(key, queue);
      }
      const waiter: Waiter = {
        grant: resolve,
        timer: setTimeout(() => {
          const q = this.waiting.get(key);
          const i = q?.indexOf(waiter) ?? -1;
          if (i >= 0) q!.splice(i, 1);
          resolve(undefined);
        }, waitMs),
      };
      queue.push(waiter);
    });
  }

  private releaser(key: string): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.get(key)?.shift();
      if (next) {
        // The slot passes straight to the next waiter: the running count stays.
        clearTimeout(next.timer);
        next.grant(this.releaser(key));
        return;
      }
      const n = (this.running.get(key) ?? 1) - 1;
      if (n <= 0) this.running.delete(key);
      else this.running.set(key, n);
    };
  }
}
