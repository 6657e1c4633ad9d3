/**
 * A per-instance read cache for resource metadata on the crypto hot path. Bounded in entries and in age
 * (OPENEKM_METADATA_CACHE_MS, 1 s by default): a change made through another instance is seen within that bound;
 * a change made through this instance is seen at once, because every write invalidates the entries it touched.
 * It never holds key material in clear — sealed material only, opened per request.
 */
import { LRUCache } from 'lru-cache';
import type { Doc, Store } from './firestore.js';

export class MetadataCache {
  private readonly lru: LRUCache<string, { value: Doc | null }> | undefined;

  constructor(
    private readonly store: Store,
    options: { ttlMs: number; maxEntries: number },
  ) {
    this.lru = options.ttlMs > 0 ? new LRUCache({ max: options.maxEntries, ttl: options.ttlMs }) : undefined;
  }

  async get<T extends Doc>(path: string): Promise<T | undefined> {
    const hit = this.lru?.get(path);
    if (hit) return (hit.value ?? undefined) as T | undefined;
    const value = await this.store.get<T>(path);
    this.lru?.set(path, { value: value ?? null });
    return value;
  }

  invalidate(...paths: string[]): void {
    for (const p of paths) this.lru?.delete(p);
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }
}
