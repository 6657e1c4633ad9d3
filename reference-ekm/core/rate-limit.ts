/** A token bucket per caller: `perSecond` requests a second with bursts of the same size. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private static readonly MAX_CALLERS = 10_000;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when the caller may proceed. Always true when the limit is 0 (unlimited). */
  take(caller: string): boolean {
    if (this.perSecond <= 0) return true;
    const t = this.now();
    let bucket = this.buckets.get(caller);
    if (!bucket) {
      if (this.buckets.size >= RateLimiter.MAX_CALLERS) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      bucket = { tokens: this.perSecond, at: t };
      this.buckets.set(caller, bucket);
    }
    bucket.tokens = Math.min(this.perSecond, bucket.tokens + ((t - bucket.at) / 1000) * this.perSecond);
    bucket.at = t;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
