/**
 * Calls to external key managers on behalf of a request: resolve the key URI against the declared endpoints,
 * pick the protocol, and run attempts — each bounded by the endpoint's per-attempt timeout — retrying only the
 * retriable domains, with jittered exponential backoff, while the request's deadline allows another attempt.
 * Nothing here caches key material or unwrap results.
 */
import type { GatewayIdentity } from '../access/outgoing.js';
import type { EkmAttempt, EkmMethod } from '../audit/ekm-metrics.js';
import { type EkmEndpoint, type ResolvedKey, resolveKeyUri } from './endpoints.js';
import { type EkmDomain, EkmFailure, RETRIABLE } from './errors.js';
import { type EkmCallContext, type EkmProtocol, GoogleEkmProtocol, XksProtocol } from './protocols.js';
import { EkmTransport, type TransportOptions } from './transport.js';

/** Time kept before the request's deadline to turn the last attempt's failure into the caller's answer. */
const ANSWER_MARGIN_MS = 50;

export interface EkmCallOptions {
  /** Aborts when the request is cancelled or its deadline passes. */
  signal: AbortSignal;
  /** The request's deadline (epoch ms). */
  deadline: number;
}

export class EkmClient {
  private readonly transport: EkmTransport;
  private readonly protocols: Record<EkmEndpoint['protocol'], EkmProtocol>;

  constructor(
    readonly endpoints: readonly EkmEndpoint[],
    identity: GatewayIdentity | undefined,
    options: TransportOptions & {
      random?: () => number;
      now?: () => number;
      /** Called once per attempt (metrics). */
      onAttempt?: (attempt: EkmAttempt) => void;
    } = {},
  ) {
    this.transport = new EkmTransport(options);
    this.protocols = {
      'google-ekm-v0': new GoogleEkmProtocol(this.transport, identity),
      'aws-xks-v1': new XksProtocol(this.transport),
    };
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.onAttempt = options.onAttempt;
  }

  private readonly onAttempt: ((attempt: EkmAttempt) => void) | undefined;

  private readonly random: () => number;
  private readonly now: () => number;

  /** Throws EkmFailure (EXTERNAL_KEY_URI_INVALID / EXTERNAL_KEY_HOST_NOT_WHITELISTED) for unusable URIs. */
  resolve(keyUri: string): ResolvedKey {
    return resolveKeyUri(this.endpoints, keyUri);
  }

  wrap(keyUri: string, plaintext: Buffer, ctx: EkmCallContext, opts: EkmCallOptions): Promise<Buffer> {
    const key = this.resolve(keyUri);
    return this.withRetries('wrap', key, ctx.requestId, opts, (signal) =>
      this.protocols[key.endpoint.protocol].wrap(key, plaintext, ctx, signal),
    );
  }

  unwrap(keyUri: string, blob: Buffer, ctx: EkmCallContext, opts: EkmCallOptions): Promise<Buffer> {
    const key = this.resolve(keyUri);
    return this.withRetries('unwrap', key, ctx.requestId, opts, (signal) =>
      this.protocols[key.endpoint.protocol].unwrap(key, blob, ctx, signal),
    );
  }

  checkKey(keyUri: string, ctx: EkmCallContext, opts: EkmCallOptions): Promise<void> {
    const key = this.resolve(keyUri);
    return this.withRetries('checkKey', key, ctx.requestId, opts, (signal) =>
      this.protocols[key.endpoint.protocol].checkKey(key, ctx, signal),
    );
  }

  private async withRetries<T>(
    method: EkmMethod,
    key: ResolvedKey,
    requestId: string,
    opts: EkmCallOptions,
    attempt: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const attemptMs = key.endpoint.timeoutMs;
    for (let n = 0; ; n++) {
      // An attempt that could outlast the request would leave the caller a bare DEADLINE_EXCEEDED: cut it
      // short so the EKM's domain (TIMEOUT) is still answered before the deadline.
      const room = opts.deadline - this.now() - ANSWER_MARGIN_MS;
      const signal =
        room < attemptMs
          ? AbortSignal.any([opts.signal, AbortSignal.timeout(Math.max(1, room))])
          : opts.signal;
      const started = performance.now();
      try {
        const result = await attempt(signal);
        this.report(method, key, requestId, true, undefined, started);
        return result;
      } catch (err) {
        const failure =
          err instanceof EkmFailure ? err : new EkmFailure('UNEXPECTED_ERROR', String(err), { cause: err });
        const backoff = Math.min(200, 10 * 2 ** n) * (0.5 + this.random());
        const roomAfter = opts.deadline - this.now() - backoff - ANSWER_MARGIN_MS;
        // Retry only when a whole attempt still fits before the deadline.
        const final = !RETRIABLE.has(failure.domain) || opts.signal.aborted || roomAfter < attemptMs;
        this.report(method, key, requestId, final, failure.domain, started);
        if (final) throw failure;
        await sleep(backoff, opts.signal);
      }
    }
  }

  private report(
    method: EkmMethod,
    key: ResolvedKey,
    requestId: string,
    final: boolean,
    domain: EkmDomain | undefined,
    started: number,
  ): void {
    if (!this.onAttempt) return;
    this.onAttempt({
      method,
      protocol: key.endpoint.protocol,
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
