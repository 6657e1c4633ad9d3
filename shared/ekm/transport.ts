/**
 * HTTP to external key managers: ky, over undici's request() on one connection pool per endpoint (keep-alive, the endpoint's TLS
 * trust — system CAs, a CA bundle or pinned leaf certificates — and an injectable resolver for tests). Every
 * attempt is bounded by the endpoint's per-attempt timeout and by the request's own deadline; every failure
 * becomes an EkmFailure with its Cloud EKM error domain.
 */

import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { TLSSocket } from 'node:tls';
import ky from 'ky';
import { Agent, buildConnector, request } from 'undici';
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
      ].includes(c),
    )
  ) {
    return 'UNREACHABLE_NETWORK';
  }
  if (codes.includes('UND_ERR_CONNECT_TIMEOUT') || codes.includes('UND_ERR_HEADERS_TIMEOUT'))
    return 'TIMEOUT';
  return 'UNEXPECTED_ERROR';
}

export class EkmTransport {
  private readonly agents = new Map<string, Agent>();
  private readonly fetches = new Map<string, typeof fetch>();

  constructor(private readonly options: TransportOptions = {}) {}

  /** One pool per endpoint and trust: a connection whose pinned certificates change gets a new pool. */
  private poolKey(endpoint: EkmEndpoint): string {
    return endpoint.pinnedCertSha256
      ? `${endpoint.prefix}#${endpoint.pinnedCertSha256.join(',')}`
      : endpoint.prefix;
  }

  private agentFor(endpoint: EkmEndpoint): Agent {
    let agent = this.agents.get(this.poolKey(endpoint));
    if (agent) return agent;
    const pins = endpoint.pinnedCertSha256;
    // Allow-list hook (shared/ekm/allow-list.ts): every address DNS answers, and the one connected to, is checked.
    const policy = this.options.hostPolicy;
    const lookup = policy
      ? (guardedLookup(policy, (this.options.lookup ?? dnsLookup) as never) as unknown as LookupFunction)
      : this.options.lookup;
    const unguarded = buildConnector({
      ca: endpoint.ca,
      lookup,
      // Pinned endpoints trust exactly their listed leaf certificates instead of a CA chain.
      rejectUnauthorized: !pins,
      // A resumed TLS session carries no peer certificate to compare with the pins: always do a full handshake.
      ...(pins ? { maxCachedSessions: 0 } : {}),
      timeout: Math.max(endpoint.timeoutMs, 100),
    } as buildConnector.BuildOptions);
    const base = policy ? guardedConnector(policy, unguarded) : unguarded;
    const connector: buildConnector.connector = pins
      ? (opts, cb) =>
          base(opts, (err, socket) => {
            if (err || !socket) return cb(err ?? new Error('no socket'), null);
            const cert = (socket as TLSSocket).getPeerCertificate?.();
            if (cert && pins.includes(cert.fingerprint256)) return cb(null, socket);
            socket.destroy();
            const e = Object.assign(new Error('the EKM certificate matches no pinned certificate'), {
              code: 'ERR_OPENEKM_PINNED_CERT',
            });
            return cb(e, null);
          })
      : base;
    agent = new Agent({ connect: connector, keepAliveTimeout: 30_000, connections: 64, pipelining: 1 });
    this.agents.set(this.poolKey(endpoint), agent);
    return agent;
  }

  /**
   * One attempt: POST (or GET when body is undefined) with the attempt timeout; throws EkmFailure. The timeout
   * bounds the wait for the answer's headers (the body is then bounded by the caller's signal). undici's request()
   * rather than ky + fetch: the same pool, timeouts and error domains at a fraction of the CPU (docs/benchmarks.md).
   */
  async send(
    endpoint: EkmEndpoint,
    url: string,
    init: { method: 'POST' | 'GET'; headers: Record<string, string>; body?: string },
    signal: AbortSignal,
  ): Promise<EkmHttpResponse> {
    try {
      const res = await ky(url, {
        method: init.method,
        headers: init.headers,
        body: init.body,
        timeout: endpoint.timeoutMs,
        retry: 0,
        throwHttpErrors: false,
        redirect: 'manual',
        signal,
        fetch: this.fetchFor(endpoint),
      });
      const text = await res.text();
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      return { status: res.status, body, text };
    } catch (err) {
      if (err instanceof EkmFailure) throw err;
      throw new EkmFailure(classifyNetworkError(err, signal), (err as Error).message ?? String(err), {
        cause: err,
      });
    }
  }

  /**
   * ky's transport for one endpoint: undici's request() on the endpoint's pool, answered as a fetch Response.
   * Node's global fetch costs several times more CPU per call (its WHATWG machinery runs under the functions
   * framework's per-request domain), which bench/external.ts measured; redirects are never followed, so a 3xx
   * cannot lead outside the declared EKM prefixes.
   */
  private fetchFor(endpoint: EkmEndpoint): typeof fetch {
    let f = this.fetches.get(this.poolKey(endpoint));
    if (f) return f;
    const dispatcher = this.agentFor(endpoint);
    f = async (input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> => {
      const req = input instanceof Request ? input : new Request(input, init);
      const headers: Record<string, string> = {};
      req.headers.forEach((value, name) => {
        headers[name] = value;
      });
      const res = await request(req.url, {
        method: req.method as 'POST' | 'GET',
        headers,
        body: req.body ? await req.text() : undefined,
        signal: req.signal,
        dispatcher,
      });
      // Bounded read (shared/ekm/bounded.ts): an oversized answer fails UNEXPECTED_RESPONSE.
      const text = await readBoundedText(res.body, res.headers['content-length']);
      const nullBody = res.statusCode === 204 || res.statusCode === 205 || res.statusCode === 304;
      const answered = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (typeof v === 'string') answered.set(k, v);
        else if (Array.isArray(v)) for (const item of v) answered.append(k, item);
      }
      return new Response(nullBody ? null : text, {
        status: Math.min(Math.max(res.statusCode, 200), 599),
        headers: answered,
      });
    };
    this.fetches.set(this.poolKey(endpoint), f);
    return f;
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close()));
    this.agents.clear();
  }
}
