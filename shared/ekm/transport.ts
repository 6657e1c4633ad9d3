/**
 * HTTP to external key managers: ky over fetch with one undici connection pool (dispatcher) per endpoint:
 * HTTP/2 by ALPN to HTTPS EKMs that offer it (one TLS connection, many streams; a cancelled stream costs no
 * handshake), HTTP/1.1 keep-alive otherwise; the endpoint's TLS trust (system CAs, a CA bundle or pinned leaf
 * certificates) and an injectable resolver for tests. Every attempt is bounded by the endpoint's per-attempt
 * timeout, which starts when the request is sent (EkmClient admits no more attempts than the pool can send at
 * once), and by the request's own deadline; every failure becomes an EkmFailure with its Cloud EKM error domain.
 */
import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Agent, buildConnector } from 'undici';
import { guardedConnector, guardedLookup, type HostPolicy } from './allow-list.js';
import { readBoundedText } from './bounded.js';
import type { EkmEndpoint } from './endpoints.js';
import { type EkmDomain, EkmFailure } from './errors.js';

export interface EkmHttpResponse {
  status: number;
  body: unknown;
  /** The raw text, for error bodies that are not JSON. */
  text: string;
}

export interface TransportOptions {
  /** Replaces DNS resolution (tests use it to simulate resolver failures without leaving loopback). */
  lookup?: LookupFunction;
  /** The hosts EKM calls may connect to (OPENEKM_EKM_ALLOWED_HOSTS, shared/ekm/allow-list.ts). */
  hostPolicy?: HostPolicy;
  /** Offer HTTP/2 by ALPN to HTTPS endpoints (default false). */
  http2?: boolean;
  /** Connections per endpoint for HTTP/1.1 (default 64; EkmClient keeps attempts within it). */
  connections?: number;
  /** How long an idle connection is kept, ms (default 30 s). */
  keepAliveMs?: number;
  /**
   * HTTP/1.1: how long an exchange whose attempt was given up may go on in the background, ms (default 2000;
   * 0 = abort it at once, which closes its connection). See `send`.
   */
  lingerMs?: number;
  /**
   * ky's fetch: undici's own (default), or Node's global fetch given the pool as dispatcher (kept for
   * bench/ekm-client.ts, which compares them).
   */
  fetch?: 'undici' | 'node';
}

/**
 * undici and ky, loaded on the first EKM call rather than at start: a cold instance that serves SOFTWARE keys
 * (or answers its first request before any EKM call) does not pay for them (docs/benchmarks.md, cold start).
 */
type HttpModules = { ky: typeof import('ky').default; undici: typeof import('undici') };
let http: HttpModules | undefined;
let loadingHttp: Promise<HttpModules> | undefined;

function loadHttp(): Promise<HttpModules> {
  loadingHttp ??= Promise.all([import('ky'), import('undici')]).then(([k, u]) => {
    http = { ky: k.default, undici: u };
    return http;
  });
  return loadingHttp;
}

/** The loaded modules; only called after `loadHttp()` resolved (every path goes through `send`). */
function httpModules(): HttpModules {
  if (!http) throw new Error('the EKM HTTP client is not loaded yet');
  return http;
}

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'ERR_OPENEKM_PINNED_CERT',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

function codesOf(err: unknown): string[] {
  const codes: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 5 && e; i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') codes.push(c);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/** The domain of a failure that happened before any HTTP answer arrived. */
export function classifyNetworkError(err: unknown, callerSignal: AbortSignal): EkmDomain {
  if (callerSignal.aborted) {
    const reason = callerSignal.reason as { name?: string } | undefined;
    return reason?.name === 'TimeoutError' ? 'TIMEOUT' : 'REQUEST_CANCELLED';
  }
  if ((err as { name?: unknown } | null)?.name === 'TimeoutError') return 'TIMEOUT';
  const codes = codesOf(err);
  if (codes.includes('ERR_OPENEKM_HOST_DENIED')) return 'EXTERNAL_KEY_HOST_NOT_WHITELISTED';
  if (codes.some((c) => c === 'ENOTFOUND' || c === 'EAI_AGAIN' || c === 'EAI_FAIL' || c === 'EAI_NONAME'))
    return 'DNS';
  if (codes.some((c) => TLS_CODES.has(c) || c.startsWith('ERR_TLS') || c.startsWith('CERT_')))
    return 'TLS_CERT';
  if (
    codes.some((c) =>
      [
        'ECONNREFUSED',
        'ECONNRESET',
        'EHOSTUNREACH',
        'ENETUNREACH',
        'EPIPE',
        'UND_ERR_SOCKET',
        'UND_ERR_CLOSED',
        // HTTP/2: the EKM reset our stream or ended the session.
        'ERR_HTTP2_STREAM_ERROR',
        'ERR_HTTP2_SESSION_ERROR',
        'ERR_HTTP2_GOAWAY_SESSION',
        'ERR_HTTP2_STREAM_CANCEL',
        'ERR_HTTP2_INVALID_SESSION',
      ].includes(c),
    )
  ) {
    return 'UNREACHABLE_NETWORK';
  }
  if (codes.includes('UND_ERR_CONNECT_TIMEOUT') || codes.includes('UND_ERR_HEADERS_TIMEOUT'))
    return 'TIMEOUT';
  return 'UNEXPECTED_ERROR';
}

/**
 * An endpoint's connections. HTTPS endpoints start with an HTTP/2-capable agent of one connection (many streams);
 * when the EKM's ALPN answer is HTTP/1.1, calls move to an HTTP/1.1 pool of many keep-alive connections.
 */
interface Pool {
  /** The agent calls use now. */
  agent: Agent;
  /** What ALPN chose on the last connection of the HTTP/2-capable agent ('unknown' before the first). */
  alpn: 'unknown' | 'h2' | 'http/1.1';
  /** While the first connection is being made: resolves when it is up (or failed). */
  connecting: Promise<void> | undefined;
  connected: (() => void) | undefined;
}

export class EkmTransport {
  /** Every undici Agent, by pool key (the HTTP/1.1 fallback of an HTTPS endpoint under `${key} h1`). */
  private readonly agents = new Map<string, Agent>();
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly options: TransportOptions = {}) {}

  /** One pool per endpoint and trust: a connection whose pinned certificates change gets a new pool. */
  private poolKey(endpoint: EkmEndpoint): string {
    return endpoint.pinnedCertSha256
      ? `${endpoint.prefix}#${endpoint.pinnedCertSha256.join(',')}`
      : endpoint.prefix;
  }

  private connector(endpoint: EkmEndpoint, h2: boolean): buildConnector.connector {
    const pins = endpoint.pinnedCertSha256;
    // Allow-list hook (shared/ekm/allow-list.ts): every address DNS answers, and the one connected to, is checked.
    const policy = this.options.hostPolicy;
    const lookup = policy
      ? (guardedLookup(policy, (this.options.lookup ?? dnsLookup) as never) as unknown as LookupFunction)
      : this.options.lookup;
    const unguarded = httpModules().undici.buildConnector({
      ca: endpoint.ca,
      lookup,
      // Pinned endpoints trust exactly their listed leaf certificates instead of a CA chain.
      rejectUnauthorized: !pins,
      // A resumed TLS session carries no peer certificate to compare with the pins: always do a full handshake.
      ...(pins ? { maxCachedSessions: 0 } : {}),
      ...(h2 ? { allowH2: true } : {}),
      timeout: Math.max(endpoint.timeoutMs, 100),
    } as buildConnector.BuildOptions);
    const base = policy ? guardedConnector(policy, unguarded) : unguarded;
    if (!pins) return base;
    return (opts, cb) =>
      base(opts, (err, socket) => {
        if (err || !socket) return cb(err ?? new Error('no socket'), null);
        const cert = (socket as TLSSocket).getPeerCertificate?.();
        if (cert && pins.includes(cert.fingerprint256)) return cb(null, socket);
        socket.destroy();
        const e = Object.assign(new Error('the EKM certificate matches no pinned certificate'), {
          code: 'ERR_OPENEKM_PINNED_CERT',
        });
        return cb(e, null);
      });
  }

  private h1Agent(endpoint: EkmEndpoint): Agent {
    return new (httpModules().undici.Agent)({
      connect: this.connector(endpoint, false),
      keepAliveTimeout: this.options.keepAliveMs ?? 30_000,
      connections: this.options.connections ?? 64,
      pipelining: 1,
    });
  }

  private poolFor(endpoint: EkmEndpoint): Pool {
    const key = this.poolKey(endpoint);
    let pool = this.pools.get(key);
    if (pool) return pool;
    if (!(this.options.http2 === true && endpoint.origin.startsWith('https:'))) {
      pool = { agent: this.h1Agent(endpoint), alpn: 'http/1.1', connecting: undefined, connected: undefined };
      this.agents.set(key, pool.agent);
      this.pools.set(key, pool);
      return pool;
    }
    const base = this.connector(endpoint, true);
    // Learns the ALPN choice of each connection, and ends the wait of calls held back during the first one.
    const connect: buildConnector.connector = (opts, cb) =>
      base(opts, (err, socket) => {
        const p = pool!;
        if (!err && socket) {
          p.alpn = (socket as TLSSocket).alpnProtocol === 'h2' ? 'h2' : 'http/1.1';
          if (p.alpn === 'http/1.1' && !this.agents.has(`${key} h1`)) {
            // The EKM does not speak HTTP/2: further calls use a pool of HTTP/1.1 connections.
            const h1 = this.h1Agent(endpoint);
            this.agents.set(`${key} h1`, h1);
            p.agent = h1;
          }
        }
        const done = p.connected;
        p.connecting = undefined;
        p.connected = undefined;
        done?.();
        cb(err as Error, socket as never);
      });
    const streams = Math.max(100, this.options.connections ?? 64);
    const agent = new (httpModules().undici.Agent)({
      connect,
      keepAliveTimeout: this.options.keepAliveMs ?? 30_000,
      // One connection; its streams carry the endpoint's concurrent attempts.
      connections: 1,
      pipelining: streams,
      allowH2: true,
      maxConcurrentStreams: streams,
    });
    pool = { agent, alpn: 'unknown', connecting: undefined, connected: undefined };
    this.pools.set(key, pool);
    this.agents.set(key, agent);
    return pool;
  }

  /**
   * The agent for this call. Before the first connection to an HTTPS endpoint, the first call makes it and
   * concurrent ones wait for its ALPN answer (one handshake), so a burst neither opens a connection per call
   * nor queues behind a single HTTP/1.1 connection.
   */
  private async ready(endpoint: EkmEndpoint): Promise<{ agent: Agent; opens?: Pool }> {
    const pool = this.poolFor(endpoint);
    if (pool.alpn !== 'unknown') return pool;
    if (pool.connecting) {
      await pool.connecting;
      return pool;
    }
    pool.connecting = new Promise<void>((resolve) => {
      pool.connected = resolve;
    });
    return { agent: pool.agent, opens: pool };
  }

  /** Releases the calls waiting on a first connection this call was to make, if it never got that far. */
  private static opened(pool: Pool | undefined): void {
    if (!pool?.connected) return;
    const done = pool.connected;
    pool.connecting = undefined;
    pool.connected = undefined;
    done();
  }

  /**
   * One attempt: POST (or GET when body is undefined), given up after the endpoint's per-attempt timeout or when
   * `signal` aborts; throws EkmFailure. ky's fetch is undici's own on the endpoint's pool (or Node's fetch given
   * the pool as dispatcher); redirects are never followed, so a 3xx cannot lead outside the declared EKM prefixes.
   *
   * HTTP/1.1 cannot cancel a request without closing its connection, and a closed connection costs the next
   * attempt a TCP and TLS handshake — under load, the churn that turns timeouts into more timeouts. So a given-up
   * HTTP/1.1 exchange is not aborted: the attempt fails at once (TIMEOUT, or the request's own cancellation) and
   * the exchange goes on in the background for up to `lingerMs`, its answer read and dropped, its connection
   * returned to the pool; only past that limit is it aborted. The failure's `abandoned` promise settles when it
   * ends, so EkmClient holds the attempt's concurrency slot until then. HTTP/2 streams are cancelled at once.
   */
  async send(
    endpoint: EkmEndpoint,
    url: string,
    init: { method: 'POST' | 'GET'; headers: Record<string, string>; body?: string },
    signal: AbortSignal,
  ): Promise<EkmHttpResponse> {
    let opens: Pool | undefined;
    try {
      if (!http) await loadHttp();
      const pool = await this.ready(endpoint);
      opens = pool.opens;
      // HTTP/2 (or a first connection whose ALPN answer is not known yet): a cancelled stream costs nothing.
      const h1 = 'alpn' in pool && pool.alpn === 'http/1.1';
      const lingerMs = h1 ? (this.options.lingerMs ?? 2000) : 0;
      if (lingerMs === 0) {
        // Cancel on give-up: the exchange is aborted with the attempt.
        return await this.exchange(
          pool.agent,
          url,
          init,
          AbortSignal.any([signal, AbortSignal.timeout(endpoint.timeoutMs)]),
        );
      }
      signal.throwIfAborted();
      const exchange = this.exchange(
        pool.agent,
        url,
        init,
        AbortSignal.timeout(endpoint.timeoutMs + lingerMs),
      );
      return await giveUpAfter(exchange, endpoint.timeoutMs, signal);
    } catch (err) {
      if (err instanceof EkmFailure) throw err;
      throw new EkmFailure(classifyNetworkError(err, signal), (err as Error).message ?? String(err), {
        cause: err,
      });
    } finally {
      if (opens) EkmTransport.opened(opens);
    }
  }

  /** The HTTP exchange itself, aborted only by `signal`: request, answer status and a bounded JSON body. */
  private async exchange(
    dispatcher: Agent,
    url: string,
    init: { method: 'POST' | 'GET'; headers: Record<string, string>; body?: string },
    signal: AbortSignal,
  ): Promise<EkmHttpResponse> {
    const { ky, undici } = httpModules();
    const res = await ky(
      url,
      this.options.fetch === 'node'
        ? ({
            method: init.method,
            headers: init.headers,
            body: init.body,
            timeout: false,
            retry: 0,
            throwHttpErrors: false,
            redirect: 'manual',
            signal,
            // Passed through to Node's fetch as an unknown option: the endpoint's connection pool.
            dispatcher,
          } as unknown as Parameters<typeof ky>[1])
        : {
            // ky handles the call and its answer; undici's own fetch sends it on the endpoint's pool with the
            // call's own headers, body and signal. ky's Request is only a carrier here, so it is built without
            // them: no body stream, no header merging, no combined signal that nothing would read.
            method: init.method,
            timeout: false,
            retry: 0,
            throwHttpErrors: false,
            redirect: 'manual',
            fetch: (() =>
              undici.fetch(url, {
                method: init.method,
                headers: init.headers,
                body: init.body,
                redirect: 'manual',
                signal,
                dispatcher,
              })) as unknown as typeof fetch,
          },
    );
    // Bounded read (shared/ekm/bounded.ts): an oversized answer fails UNEXPECTED_RESPONSE.
    const text = res.body
      ? await readBoundedText(
          res.body as unknown as AsyncIterable<Uint8Array>,
          res.headers.get('content-length') ?? undefined,
        )
      : '';
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, body, text };
  }

  /**
   * Closes every pool: calls still running may finish for up to `graceMs`; then whatever is left (exchanges
   * lingering after a given-up attempt) is destroyed, so a shutdown never waits out OPENEKM_EKM_LINGER_MS.
   */
  async close(graceMs = 1000): Promise<void> {
    await Promise.all(
      [...this.agents.values()].map(async (a) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const closed = await Promise.race([
          a.close().then(() => true),
          new Promise<false>((resolve) => {
            timer = setTimeout(() => resolve(false), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (!closed) await a.destroy();
      }),
    );
    this.agents.clear();
    this.pools.clear();
  }
}

/**
 * `exchange`'s answer, unless `timeoutMs` passes or `signal` aborts first: then an EkmFailure (TIMEOUT, or the
 * domain of the signal's reason) whose `abandoned` settles when the exchange itself ends.
 */
function giveUpAfter(
  exchange: Promise<EkmHttpResponse>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<EkmHttpResponse> {
  return new Promise((resolve, reject) => {
    let settled = false;
    /** True for the first of the three outcomes only; it stops the other two. */
    const settle = () => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      return true;
    };
    const abandon = (domain: EkmDomain, detail: string) => {
      if (!settle()) return;
      const abandoned = exchange.then(
        () => undefined,
        () => undefined,
      );
      reject(new EkmFailure(domain, detail, { abandoned }));
    };
    const onAbort = () => abandon(classifyNetworkError(signal.reason, signal), 'the request ended first');
    const timer = setTimeout(
      () => abandon('TIMEOUT', `no answer within the attempt timeout of ${timeoutMs} ms`),
      timeoutMs,
    );
    signal.addEventListener('abort', onAbort, { once: true });
    exchange.then(
      (res) => {
        if (settle()) resolve(res);
      },
      (err) => {
        if (settle()) reject(err);
      },
    );
  });
}
