/**
 * The Firestore repository. A resource name IS its document path
 * (projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1), so there is no mapping table to drift.
 * Every read-modify-write goes through `transaction`; single reads may be served from a short, bounded cache
 * (see MetadataCache) by the layer above.
 */
import { Firestore, type Transaction } from '@google-cloud/firestore';
import { RpcError } from '../errors.js';

export type Doc = Record<string, unknown>;

export interface TxReader {
  get<T extends Doc>(path: string): Promise<T | undefined>;
}
export interface Tx extends TxReader {
  create(path: string, data: Doc): void;
  set(path: string, data: Doc): void;
}

export interface TxOptions {
  /**
   * A document every run of this transaction writes (e.g. the key whose version counter advances). Such
   * transactions are queued one at a time per instance: they would conflict anyway, and a pile of conflicting
   * attempts retried with Firestore's exponential backoff is far slower than a queue (50 concurrent version
   * creates on one key took over 30 s on the emulator). Across instances the transaction alone keeps them right.
   */
  queueOn?: string;
}

export interface Store {
  get<T extends Doc>(path: string): Promise<T | undefined>;
  /** All documents of one collection under a parent document path, in name order. */
  list<T extends Doc>(parentPath: string, collection: string): Promise<T[]>;
  transaction<R>(fn: (tx: Tx) => Promise<R>, options?: TxOptions): Promise<R>;
  /** Documents of every collection named `collectionId` (a collection-group query) with `field <= value`. */
  findAtMost<T extends Doc>(collectionId: string, field: string, value: string, limit: number): Promise<T[]>;
  /** Up to `limit` documents of every collection named `collectionId` (a collection-group query). */
  listGroup<T extends Doc>(collectionId: string, limit: number): Promise<T[]>;
  close(): Promise<void>;
}

/**
 * How the Firestore client talks to Firestore (OPENEKM_FIRESTORE_TRANSPORT, docs/configuration.md):
 * - 'grpc' (default): one HTTP/2 channel; the first call sets up the channel and loads the gRPC protos, later calls
 *   are the fastest (on the emulator: single reads ~8 ms, a transaction ~3× faster than over REST).
 * - 'rest': the client's HTTP/1.1 transport (`preferRest`); the first call is ready ~100 ms sooner, every later one
 *   is slower. Streaming features the client needs gRPC for still switch to it on their own.
 * docs/benchmarks.md has the figures.
 */
export type FirestoreTransport = 'grpc' | 'rest';

/**
 * The emulator takes any bearer token as its owner (the client sends "Bearer owner" itself), so over REST it needs
 * no Google credentials: this stands in for the client's credential lookup, which would otherwise fail (or reach
 * for a metadata server) on a machine without them. It adds no header and sends each request with Node's fetch.
 */
const EMULATOR_REST_AUTH = {
  universeDomain: 'googleapis.com',
  getRequestHeaders: async () => new Headers(),
  fetch: (url: string, init: NonNullable<Parameters<typeof fetch>[1]>) =>
    fetch(url, { method: init.method, headers: init.headers, body: init.body, signal: init.signal }),
};

/** gRPC status codes the Firestore client reports, mapped to what a caller of OpenEKM should do. */
function storeError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  const code = (err as { code?: unknown }).code;
  if (code === 10) return RpcError.aborted('The request conflicted with a concurrent change; retry it.', err);
  if (code === 4 || code === 14 || code === 8) {
    return RpcError.unavailable('The metadata store is unavailable right now; retry the request.', err);
  }
  return RpcError.internal(err);
}

/** Runs async work one at a time per key, in arrival order. */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  async run<R>(key: string, work: () => Promise<R>): Promise<R> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => done);
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

export class FirestoreStore implements Store {
  readonly db: Firestore;
  private readonly queue = new KeyedQueue();

  constructor(options: {
    projectId: string;
    databaseId?: string;
    firestore?: Firestore;
    /** 'grpc' (the default) or 'rest': see FirestoreTransport. */
    transport?: FirestoreTransport;
  }) {
    const rest = options.transport === 'rest';
    this.db =
      options.firestore ??
      new Firestore({
        projectId: options.projectId,
        databaseId: options.databaseId ?? '(default)',
        ignoreUndefinedProperties: true,
        preferRest: rest,
        ...(rest && process.env.FIRESTORE_EMULATOR_HOST ? { authClient: EMULATOR_REST_AUTH } : {}),
      });
  }

  async get<T extends Doc>(path: string): Promise<T | undefined> {
    try {
      const snap = await this.db.doc(path).get();
      return snap.exists ? (snap.data() as T) : undefined;
    } catch (err) {
      throw storeError(err);
    }
  }

  async list<T extends Doc>(parentPath: string, collection: string): Promise<T[]> {
    try {
      const ref = parentPath
        ? this.db.doc(parentPath).collection(collection)
        : this.db.collection(collection);
      const snap = await ref.get();
      return snap.docs.map((d) => d.data() as T);
    } catch (err) {
      throw storeError(err);
    }
  }

  async transaction<R>(fn: (tx: Tx) => Promise<R>, options: TxOptions = {}): Promise<R> {
    if (options.queueOn !== undefined) return this.queue.run(options.queueOn, () => this.transaction(fn));
    try {
      // Contention on one document (e.g. 50 concurrent version creates on one key) needs more than the client's
      // default of 5 attempts; the client backs off exponentially between attempts.
      return await this.db.runTransaction((t) => fn(this.wrap(t)), { maxAttempts: 60 });
    } catch (err) {
      throw storeError(err);
    }
  }

  async findAtMost<T extends Doc>(
    collectionId: string,
    field: string,
    value: string,
    limit: number,
  ): Promise<T[]> {
    try {
      const snap = await this.db.collectionGroup(collectionId).where(field, '<=', value).limit(limit).get();
      return snap.docs.map((d) => d.data() as T);
    } catch (err) {
      throw storeError(err);
    }
  }

  async listGroup<T extends Doc>(collectionId: string, limit: number): Promise<T[]> {
    try {
      const snap = await this.db.collectionGroup(collectionId).limit(limit).get();
      return snap.docs.map((d) => d.data() as T);
    } catch (err) {
      throw storeError(err);
    }
  }

  private wrap(t: Transaction): Tx {
    const db = this.db;
    return {
      async get<T extends Doc>(path: string) {
        const snap = await t.get(db.doc(path));
        return snap.exists ? (snap.data() as T) : undefined;
      },
      create(path, data) {
        t.create(db.doc(path), data);
      },
      set(path, data) {
        t.set(db.doc(path), data);
      },
    };
  }

  async close(): Promise<void> {
    await this.db.terminate();
  }
}
