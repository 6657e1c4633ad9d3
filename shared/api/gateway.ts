/**
 * The request pipeline shared by the four functions, free of any HTTP framework, as named stages:
 * match → check → authenticate → authorize → execute → render → record (one file each in this folder). Every
 * failure becomes the google.rpc envelope in one place, and every request one log line (never bodies, tokens or
 * key material) plus its audit entry.
 */
import { randomUUID } from 'node:crypto';
import { Authorizer, iamConfigOf } from '../access/iam.js';
import { TokenVerifier } from '../access/identity.js';
import { GatewayIdentity } from '../access/outgoing.js';
import type { AuditRecord } from '../audit/audit.js';
import { clientIp } from '../audit/client-ip.js';
import { ekmMetricEntry } from '../audit/ekm-metrics.js';
import { type Config, loadConfig } from '../config.js';
import type { Deps, RequestContext } from '../context.js';
import { RootKeyring } from '../crypto/material.js';
import { EkmClient } from '../ekm/client.js';
import type { TransportOptions } from '../ekm/transport.js';
import { RpcError } from '../errors.js';
import { probeStateLoader, runProbe } from '../health/probe.js';
import { Hsm } from '../hsm/hsm.js';
import { createLogger, type Logger } from '../log.js';
import { EkmQuota } from '../quota/ekm-quota.js';
import { MetadataCache } from '../store/cache.js';
import { FirestoreStore, type Store } from '../store/firestore.js';
import { ACCESS_REASON_HEADER, accessReason, authenticate, isOpen, permittedReason } from './authenticate.js';
import { authorize } from './authorize.js';
import { parseBody } from './body.js';
import { checkBodySize, checkQuery } from './check.js';
import { startDeadline, withDeadline } from './deadline.js';
import { match } from './match.js';
import { record } from './record.js';
import { type ApiResponse, renderError, renderResult } from './render.js';
import type { FunctionName, Route } from './routes.js';

export type { ApiResponse };

export interface ApiRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body?: Buffer;
  remoteAddress?: string;
  /** Aborts when the client goes away before the answer: the request is then CANCELLED (HTTP 499 in the log). */
  signal?: AbortSignal;
}

export interface GatewayOptions {
  /** Replaces DNS resolution for EKM calls (tests). */
  ekmTransport?: TransportOptions;
  config?: Config;
  store?: Store;
  now?: () => Date;
  verifier?: TokenVerifier;
  logger?: Logger;
}

function header(req: ApiRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export class Gateway {
  readonly deps: Deps;
  private readonly verifier: TokenVerifier;
  /** The one IAM check of the pipeline (docs/iam.md). */
  readonly authorizer: Authorizer;
  readonly log: Logger;

  constructor(options: GatewayOptions = {}) {
    const config = options.config ?? loadConfig();
    const store =
      options.store ??
      new FirestoreStore({
        projectId: config.firestoreProjectId,
        databaseId: config.firestoreDatabaseId,
        transport: config.firestoreTransport,
      });
    const now = options.now ?? (() => new Date());
    const identity = config.gatewayIdentity
      ? new GatewayIdentity(config.gatewayIdentity) // real time: the EKM checks exp/nbf against its clock
      : undefined;
    const log =
      options.logger ??
      createLogger(config.logLevel, {
        format: config.logFormat,
        ...(config.logFile ? { file: config.logFile } : {}),
      });
    const cache = new MetadataCache(store, {
      ttlMs: config.metadataCacheMs,
      maxEntries: config.metadataCacheEntries,
    });
    this.deps = {
      config,
      store,
      cache,
      authorizer: new Authorizer(iamConfigOf(config), cache, now),
      rootKeys: new RootKeyring(config.rootKeys),
      now,
      ekm: new EkmClient(config.ekmEndpoints, identity, {
        ...config.ekmClient,
        hostPolicy: config.ekmHostPolicy,
        ...options.ekmTransport,
        now: () => now().getTime(),
        onAttempt: (attempt) => log.entry(ekmMetricEntry(attempt)),
        probeStates: probeStateLoader({ store }),
      }),
      log,
      quota: new EkmQuota(store, now, config.ekmQuota),
    };
    if (identity) this.deps.identity = identity;
    if (config.hsm) this.deps.hsm = new Hsm(config.hsm, log);
    this.verifier = options.verifier ?? new TokenVerifier(config.trustedIssuers);
    this.authorizer = this.deps.authorizer;
    this.log = this.deps.log;
  }

  /** Handles one request as the function `fn`; never throws. */
  async handle(fn: FunctionName, req: ApiRequest): Promise<ApiResponse> {
    const started = performance.now();
    // The audit entry's insertId is always ours; a caller's request id is kept (and echoed) as its own field.
    const insertId = randomUUID();
    const callerRequestId = callerRequestIdOf(header(req, 'x-request-id'));
    const requestId = callerRequestId ?? insertId;
    const audit: AuditRecord = {};
    let route: Route | undefined;
    let resourceName = '';
    let principal: string | undefined;
    let error: RpcError | undefined;
    let response: ApiResponse;
    let release: (() => void) | undefined;
    try {
      const matched = match(fn, req.method, req.path);
      route = matched.route;
      resourceName = matched.name;
      const query = checkQuery(req.query, route);
      checkBodySize(req.body, this.deps.config.maxRequestBytes);
      const deadline = startDeadline(
        this.deps.config.requestDeadlineMs,
        header(req, 'x-server-timeout'),
        req.signal,
        this.deps.now().getTime(),
      );
      release = deadline.release;
      const stated = accessReason(header(req, ACCESS_REASON_HEADER));
      const open = isOpen(route, this.deps.config);
      const caller = await authenticate(this.verifier, open, header(req, 'authorization'));
      principal = caller.principal;
      const reason = open ? stated : permittedReason(stated, caller, this.deps.config);
      if (route.permission && !open) {
        const pending = authorize(this.authorizer, audit, caller, route.permission, resourceName);
        if (pending) await pending;
      }
      const ctx: RequestContext = {
        caller,
        requestId,
        signal: deadline.signal,
        deadline: deadline.deadline,
        reason,
        audit,
        authorize: (permission, resource) =>
          authorize(this.authorizer, audit, caller, permission, resource) ?? Promise.resolve(),
      };
      const body = req.method === 'GET' ? {} : parseBody(req.body);
      const result = await withDeadline(
        route.handler(this.deps, ctx, { name: resourceName, query, body }),
        deadline.signal,
      );
      response = renderResult(result, req.query);
    } catch (err) {
      error = RpcError.from(err);
      if (error.code === 'INTERNAL' || error.code === 'DATA_LOSS' || error.code === 'UNKNOWN') {
        this.log.error('request failed', { requestId, cause: describe(error.cause ?? error) });
      }
      response = renderError(error);
    }
    release?.();
    response.headers['x-request-id'] = requestId;
    record(
      this.log,
      {
        fn,
        requestId,
        insertId,
        ...(callerRequestId === undefined ? {} : { callerRequestId }),
        method: req.method,
        path: req.path,
        route,
        resourceName,
        status: response.status,
        error,
        principal,
        remoteIp: clientIp(req.remoteAddress, req.headers, this.deps.config.trustedProxyHops),
        userAgent: header(req, 'user-agent'),
        latencyMs: performance.now() - started,
        audit,
      },
      this.deps.config.auditDataAccess,
      this.deps.now(),
    );
    return response;
  }

  /**
   * The EKM probe outside an HTTP request (the CloudEvent and scheduled-Lambda triggers), bounded by the
   * request deadline. Logged like a request; throws when the run itself failed (not when an EKM is down).
   */
  async probe(): Promise<Awaited<ReturnType<typeof runProbe>>> {
    const started = performance.now();
    const signal = AbortSignal.timeout(this.deps.config.requestDeadlineMs);
    try {
      const result = await runProbe(this.deps, signal);
      this.log.info('EKM probe run', {
        targets: result.probed.length,
        down: result.probed.filter((p) => !p.ok).length,
        latencyMs: Math.round(performance.now() - started),
      });
      return result;
    } catch (err) {
      this.log.error('EKM probe run failed', { cause: describe(err) });
      throw err;
    }
  }

  async close(): Promise<void> {
    // A lease taken ahead may still be in flight: the Firestore client must not be closed under it.
    await this.deps.quota.settled();
    await this.deps.ekm.close();
    await this.deps.store.close();
    await this.deps.hsm?.close();
  }
}

/** A caller's x-request-id when it is 1 to 64 printable ASCII characters; otherwise the request gets ours. */
function callerRequestIdOf(raw: string | undefined): string | undefined {
  return raw !== undefined && /^[\x21-\x7e]{1,64}$/.test(raw) ? raw : undefined;
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
