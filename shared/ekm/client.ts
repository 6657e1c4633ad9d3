/**
 * Calls to external key managers on behalf of a request: resolve the key URI against the declared endpoints,
 * pick the protocol, and run attempts — each bounded by the endpoint's per-attempt timeout — retrying only the
 * retriable domains, with jittered exponential backoff, while the request's deadline and the endpoint's retry
 * budget allow another attempt. Each attempt holds one of the endpoint's concurrency slots; when none frees in
 * time the call is refused at once (UNAVAILABLE with RetryInfo) rather than queued past its deadline.
 * Nothing here caches key material or unwrap results.
 */
import type { GatewayIdentity } from '../access/outgoing.js';
import type { EkmAttempt, EkmMethod } from '../audit/ekm-metrics.js';
import type { ProbeTarget } from './connections.js';
import { type EkmEndpoint, type ResolvedKey, resolveKeyUri } from './endpoints.js';
import { type EkmDomain, EkmFailure, FAILOVER, RETRIABLE } from './errors.js';
import { GoogleEkmProtocol } from './google-ekm.js';
import { servingProject } from './identity.js';
import {
  ConcurrencyLimiter,
  DEFAULT_EKM_CLIENT_SETTINGS,
  type EkmClientSettings,
  type Release,
  RetryBudget,
} from './overload.js';
import type { EkmCallContext } from './protocols.js';
import { healthKey, type ProbeState, ReplicaHealth, type ReplicaHealthOptions } from './replicas.js';
import { EkmTransport, type TransportOptions } from './transport.js';
import { XksProtocol } from './xks.js';

/** Time kept before the request's deadline to turn the last attempt's failure into the caller's answer. */
const ANSWER_MARGIN_MS = 50;

export interface EkmCallOptions {
  /** Aborts when the request is cancelled or its deadline passes. */
  signal: AbortSignal;
  /** The request's deadline (epoch ms). */
  deadline: number;
}

/** An external key URI (EXTERNAL), or the same key on each replica of a connection (EXTERNAL_VPC). */
export type KeyTarget = string | readonly ResolvedKey[];

export class EkmClient {
  private readonly transport: EkmTransport;
  private readonly google: GoogleEkmProtocol;
  private readonly xks: XksProtocol;
  /** Replica choice for EKM connections: probe results plus this instance's own failures. */
  readonly replicas: ReplicaHealth;

  constructor(
    readonly endpoints: readonly EkmEndpoint[],
    identity: GatewayIdentity | undefined,
    options: TransportOptions &
      Partial<EkmClientSettings> & {
        random?: () => number;
        now?: () => number;
        /** Called once per attempt (metrics). */
        onAttempt?: (attempt: EkmAttempt) => void;
        /** Reads the latest probe results (Firestore), for replica choice. */
        probeStates?: () => Promise<Map<string, ProbeState>>;
        replicaHealth?: ReplicaHealthOptions;
      } = {},
  ) {
    const settings = { ...DEFAULT_EKM_CLIENT_SETTINGS, ...definedOnly(options) };
    this.settings = settings;
    this.transport = new EkmTransport({
      lookup: options.lookup,
      ...(options.hostPolicy ? { hostPolicy: options.hostPolicy } : {}),
      http2: settings.http2,
      keepAliveMs: settings.keepAliveMs,
      lingerMs: settings.lingerMs,
      connections: settings.maxConcurrent,
    });
    this.google = new GoogleEkmProtocol(this.transport, identity);
    this.xks = new XksProtocol(this.transport);
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    // Budget windows and queue waits run on real time: the injected clock may be moved by tests.
    this.budget = new RetryBudget(settings);
    this.limiter = new ConcurrencyLimiter(settings.maxConcurrent);
    this.onAttempt = options.onAttempt;
    this.replicas = new ReplicaHealth(options.probeStates ?? (async () => new Map()), options.replicaHealth);
  }

  private readonly onAttempt: ((attempt: EkmAttempt) => void) | undefined;
  readonly settings: EkmClientSettings;
  /** Retries per endpoint, at most a share of first attempts (docs/configuration.md, "EKM client"). */
  readonly budget: RetryBudget;
  /** Concurrent attempts per endpoint. */
  readonly limiter: ConcurrencyLimiter;

  private readonly random: () => number;
  private readonly now: () => number;

  /** Throws EkmFailure (EXTERNAL_KEY_URI_INVALID / EXTERNAL_KEY_HOST_NOT_WHITELISTED) for unusable URIs. */
  resolve(keyUri: string): ResolvedKey {
    return resolveKeyUri(this.endpoints, keyUri);
  }

  private candidates(target: KeyTarget, resource?: string): ResolvedKey[] {
    // Per-project endpoints hook (shared/ekm/identity.ts): an endpoint may serve only the projects it names.
    if (typeof target === 'string') return [servingProject(this.resolve(target), resource)];
    if (target.length === 0) throw new EkmFailure('UNEXPECTED_ERROR', 'the EKM connection has no replica');
    return this.replicas.order(target);
  }

  private protocol(key: ResolvedKey) {
    return key.endpoint.protocol === 'aws-xks-v1' ? this.xks : this.google;
  }

  wrap(target: KeyTarget, plaintext: Buffer, ctx: EkmCallContext, opts: EkmCallOptions): Promise<Buffer> {
    return this.withRetries(
      'wrap',
      this.candidates(target, ctx.versionName),
      ctx.requestId,
      opts,
      (key, signal) => this.protocol(key).wrap(key, plaintext, ctx, signal),
    );
  }

  unwrap(target: KeyTarget, blob: Buffer, ctx: EkmCallContext, opts: EkmCallOptions): Promise<Buffer> {
    return this.withRetries(
      'unwrap',
      this.candidates(target, ctx.versionName),
      ctx.requestId,
      opts,
      (key, signal) => this.protocol(key).unwrap(key, blob, ctx, signal),
    );
  }

  checkKey(target: KeyTarget, ctx: EkmCallContext, opts: EkmCallOptions): Promise<void> {
    return this.withRetries(
      'checkKey',
      this.candidates(target, ctx.versionName),
      ctx.requestId,
      opts,
      (key, signal) => this.protocol(key).checkKey(key, ctx, signal),
    );
  }

  /** Coordinated keys: creates a key in the crypto space through one of the replicas; answers its key path. */
  createKey(
    replicas: readonly ResolvedKey[],
    cryptoSpacePath: string,
    ctx: EkmCallContext,
    opts: EkmCallOptions,
  ): Promise<string> {
    return this.withRetries('createKey', this.candidates(replicas), ctx.requestId, opts, (key, signal) =>
      this.google.createKey(key.endpoint, cryptoSpacePath, ctx, signal),
    );
  }

  /** Coordinated keys: destroys the key at the EKM (a key it no longer has counts as destroyed). */
  destroyKey(replicas: readonly ResolvedKey[], ctx: EkmCallContext, opts: EkmCallOptions): Promise<void> {
    return this.withRetries('destroyKey', this.candidates(replicas), ctx.requestId, opts, (key, signal) =>
      this.google.destroyKey(key, ctx, signal),
    );
  }

  /**
   * One health check of one target, no retries: XKS's health call; for Google EKM a wrap marked
   * isKeyHealthCheck on the dedicated probe key when one is configured, else GetInfo (and, for coordinated
   * connections, checkCryptoSpacePermissions). Throws EkmFailure.
   */
  async probe(
    target: ProbeTarget,
    how: { probeKeyPath?: string; cryptoSpacePath?: string; ctx: EkmCallContext },
    signal: AbortSignal,
  ): Promise<void> {
    const e = target.endpoint;
    const attempt = AbortSignal.any([signal, AbortSignal.timeout(e.timeoutMs)]);
    try {
      if (e.protocol === 'aws-xks-v1') return await this.xks.health(e, how.ctx.requestId, attempt);
      if (how.probeKeyPath) {
        const key: ResolvedKey = {
          endpoint: e,
          keyUri: `${e.prefix}${how.probeKeyPath}`,
          keyPath: how.probeKeyPath,
        };
        await this.google.wrap(key, Buffer.alloc(32), { ...how.ctx, healthCheck: true }, attempt);
        return;
      }
      await this.google.info(e, attempt, how.ctx.versionName);
      if (how.cryptoSpacePath) await this.google.checkCryptoSpace(e, how.cryptoSpacePath, how.ctx, attempt);
    } catch (err) {
      throw EkmFailure.from(err);
    }
  }

  /**
   * Runs attempts until one succeeds, the failure is final, or no whole attempt fits before the deadline. With
   * several replicas, a failure that belongs to the replica (FAILOVER) sends the next attempt to the next one
   * at once; coming back round to a replica already tried waits a jittered exponential backoff first.
   */
  private async withRetries<T>(
    method: EkmMethod,
    keys: readonly ResolvedKey[],
    requestId: string,
    opts: EkmCallOptions,
    attempt: (key: ResolvedKey, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    let round = 0;
    for (let n = 0; ; n++) {
      const key = keys[n % keys.length]!;
      const endpoint = key.endpoint;
      const attemptMs = endpoint.timeoutMs;
      const release = await this.slot(endpoint.prefix, attemptMs, opts);
      if (!release) {
        const failure = this.refusal(key);
        this.report(method, key, requestId, n + 1, true, failure.domain, performance.now(), false);
        throw failure;
      }
      // Only first attempts that are sent fund the retry budget: refusals under overload must not buy retries.
      if (n === 0) this.budget.recordFirst(endpoint.prefix);
      // An attempt that could outlast the request would leave the caller a bare DEADLINE_EXCEEDED: cut it
      // short so the EKM's domain (TIMEOUT) is still answered before the deadline.
      const room = opts.deadline - this.now() - ANSWER_MARGIN_MS;
      const signal =
        room < attemptMs
          ? AbortSignal.any([opts.signal, AbortSignal.timeout(Math.max(1, room))])
          : opts.signal;
      const started = performance.now();
      try {
        const result = await attempt(key, signal);
        release();
        if (keys.length > 1) this.replicas.succeeded(healthKey(key));
        this.report(method, key, requestId, n + 1, true, undefined, started);
        return result;
      } catch (err) {
        const failure = EkmFailure.from(err);
        // A given-up HTTP/1.1 exchange keeps its slot until it ends: the bound counts connections in use, so a
        // retry never queues inside the pool behind it.
        if (failure.abandoned) failure.abandoned.then(release, release);
        else release();
        const failover = keys.length > 1 && FAILOVER.has(failure.domain);
        if (failover) this.replicas.failed(healthKey(key));
        const nextKey = keys[(n + 1) % keys.length]!;
        const wraps = (n + 1) % keys.length === 0;
        const backoff = failover && !wraps ? 0 : Math.min(200, 10 * 2 ** round) * (0.5 + this.random());
        const roomAfter = opts.deadline - this.now() - backoff - ANSWER_MARGIN_MS;
        // Retry only when a whole attempt still fits before the deadline, and the next endpoint's retry
        // budget has room (taken last: a retry that is not made costs no budget).
        const final =
          !(RETRIABLE.has(failure.domain) || failover) ||
          opts.signal.aborted ||
          roomAfter < nextKey.endpoint.timeoutMs ||
          !this.budget.tryRetry(nextKey.endpoint.prefix);
        this.report(method, key, requestId, n + 1, final, failure.domain, started);
        if (final) throw failure;
        if (backoff > 0) {
          round++;
          await sleep(backoff, opts.signal);
        }
      }
    }
  }

  /**
   * A concurrency slot for one attempt at the endpoint: at once when free, else after a short wait that still
   * leaves a whole attempt before the deadline; undefined when none came (the call is refused).
   */
  private slot(
    key: string,
    attemptMs: number,
    opts: EkmCallOptions,
  ): Release | undefined | Promise<Release | undefined> {
    const room = opts.deadline - this.now() - ANSWER_MARGIN_MS - attemptMs;
    return this.limiter.acquire(key, Math.min(this.settings.maxQueueWaitMs, room));
  }

  private refusal(key: ResolvedKey): EkmFailure {
    const retryAfterMs = Math.max(key.endpoint.timeoutMs, this.settings.maxQueueWaitMs);
    return new EkmFailure(
      'OVERLOADED_EKM',
      `OpenEKM already runs ${this.settings.maxConcurrent} calls to ${key.endpoint.origin} at once (OPENEKM_EKM_MAX_CONCURRENT) and none finished in time for this request`,
      { localRefusal: { retryAfterMs } },
    );
  }

  private report(
    method: EkmMethod,
    key: ResolvedKey,
    requestId: string,
    attempt: number,
    final: boolean,
    domain: EkmDomain | undefined,
    started: number,
    sent = true,
  ): void {
    if (!this.onAttempt) return;
    this.onAttempt({
      method,
      protocol: key.endpoint.protocol,
      replica: key.endpoint.origin.slice(key.endpoint.origin.indexOf('//') + 2),
      attempt,
      ...(sent ? {} : { sent }),
      final,
      domain,
      latencyMs: performance.now() - started,
      requestId,
    });
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

/** `o` without its undefined properties (so they do not override defaults). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
