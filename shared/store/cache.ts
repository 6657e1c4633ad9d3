/**
 * A per-instance read cache for resource metadata on the crypto hot path. Bounded in entries and in age
 * (OPENEKM_METADATA_CACHE_MS, 1 s by default): a change made through another instance is seen within that bound;
 * a change made through this instance is seen at once, because every write invalidates the entries it touched.
 * It never holds key material in clear — sealed material only, opened per request.
 *
 * Concurrent misses on one path share a single store read (otherwise, under load, every request in flight when
 * an entry expires reads the same document again). A read that an invalidation overtakes is still returned to
 * the callers that were waiting for it, but is neither kept nor shared with later callers.
 */
import { LRUCache } from 'lru-cache';
import type { Doc, Store } from './firestore.js';

export class MetadataCache {
  private readonly lru: LRUCache<string, { value: Doc | null }> | undefined;
  private readonly loading = new Map<string, Promise<Doc | undefined>>();

  constructor(
    private readonly store: Store,
    options: { ttlMs: number; maxEntries: number },
  ) {
    this.lru = options.ttlMs > 0 ? new LRUCache({ max: options.maxEntries, ttl: options.ttlMs }) : undefined;
  }

  async get<T extends Doc>(path: string): Promise<T | undefined> {
    const lru = this.lru;
    if (!lru) return this.store.get<T>(path);
    const hit = lru.get(path);
    if (hit) return (hit.value ?? undefined) as T | undefined;
    let pending = this.loading.get(path);
    if (!pending) {
      const read: Promise<Doc | undefined> = this.store.get(path).then(
        (value) => {
          if (this.loading.get(path) === read) {
            this.loading.delete(path);
            lru.set(path, { value: value ?? null });
          }
          return value;
        },
        (err: unknown) => {
          if (this.loading.get(path) === read) this.loading.delete(path);
          throw err;
        },
      );
      this.loading.set(path, read);
      pending = read;
    }
    return (await pending) as T | undefined;
  }

  invalidate(...paths: string[]): void {
    for (const p of paths) {
      this.lru?.delete(p);
      this.loading.delete(p);
    }
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }
}
