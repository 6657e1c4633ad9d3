import type { KeyStore } from '../keystore/key-store.js';
import type { Logger } from '../log.js';

export type HealthStatus = 'ACTIVE' | 'DEGRADED' | 'UNAVAILABLE';

/** Results older than this are refreshed before answering; always well under the spec's one minute. */
export const HEALTH_MAX_AGE_MS = 30_000;
const CHECK_TIMEOUT_MS = 2_000;

/**
 * Deep health: a real AES-GCM round trip in the key store on a key that is no customer's. The result is
 * cached and refreshed in the background every HEALTH_MAX_AGE_MS, so health requests stay fast and the
 * reported status is never older than one minute.
 */
export class HealthCache {
  private last: { status: HealthStatus; at: number } | undefined;
  private inflight: Promise<HealthStatus> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: KeyStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => void this.refresh(), HEALTH_MAX_AGE_MS);
    this.timer.unref();
  }

  async status(): Promise<{ status: HealthStatus; checkedAt: number }> {
    if (!this.last || this.now() - this.last.at >= HEALTH_MAX_AGE_MS) await this.refresh();
    return { status: this.last!.status, checkedAt: this.last!.at };
  }

  refresh(): Promise<HealthStatus> {
    this.inflight ??= this.check().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async check(): Promise<HealthStatus> {
    let status: HealthStatus = 'ACTIVE';
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.store.healthCheck(),
        new Promise((_, reject) => {
          timeout = setTimeout(() => reject(new Error('health check timed out')), CHECK_TIMEOUT_MS);
        }),
      ]);
    } catch (error) {
      status = 'UNAVAILABLE';
      this.log.error({ msg: 'key store health check failed', backend: this.store.backend }, error);
    } finally {
      clearTimeout(timeout);
    }
    this.last = { status, at: this.now() };
    return status;
  }
}
