/**
 * The request pipeline shared by the four functions, free of any HTTP framework: route → authenticate →
 * decode → operation → encode, with one place that turns any failure into the google.rpc.Status envelope and
 * one structured log line per request (never bodies, tokens or key material).
 */
import { randomUUID } from 'node:crypto';
import { Authorizer, iamConfigOf } from '../access/iam.js';
import { TokenVerifier } from '../access/identity.js';
import { GatewayIdentity } from '../access/outgoing.js';
import { type AuditRecord, auditEntry, auditedMethod, recordAuthorization } from '../audit/audit.js';
import { ekmMetricEntry } from '../audit/ekm-metrics.js';
import { type Config, loadConfig } from '../config.js';
import type { Deps, RequestContext } from '../context.js';
import { RootKeyring } from '../crypto/material.js';
import { EkmClient } from '../ekm/client.js';
import type { TransportOptions } from '../ekm/transport.js';
import { type Code, numericCode, RpcError } from '../errors.js';
import { buildReport, probeStateLoader, runProbe } from '../health/probe.js';
import { renderStatusPage } from '../health/status-page.js';
import { createLogger, type Logger } from '../log.js';
import { decrypt, encrypt } from '../operations/crypto.js';
import {
  createCryptoKey,
  getCryptoKey,
  listCryptoKeys,
  patchCryptoKey,
  updatePrimaryVersion,
} from '../operations/cryptoKeys.js';
import {
  createCryptoKeyVersion,
  destroyCryptoKeyVersion,
  getCryptoKeyVersion,
  listCryptoKeyVersions,
  patchCryptoKeyVersion,
  restoreCryptoKeyVersion,
} from '../operations/cryptoKeyVersions.js';
import {
  createEkmConnection,
  getEkmConfig,
  getEkmConnection,
  listEkmConnections,
  patchEkmConnection,
  updateEkmConfig,
  verifyConnectivity,
} from '../operations/ekmConnections.js';
import { getIamPolicy, setIamPolicy, testIamPermissions } from '../operations/iam.js';
import { createKeyRing, getKeyRing, listKeyRings } from '../operations/keyRings.js';
import type { ListRequest } from '../operations/list.js';
import { runScheduledTasks } from '../operations/scheduled.js';
import { EkmQuota } from '../quota/ekm-quota.js';
import { enumValue, fieldMask, type JsonObject, parseBool } from '../resources/fields.js';
import {
  AccessReason,
  type AccessReasonName,
  CryptoKeyVersionView,
  enumsByField,
} from '../resources/types.js';
import { MetadataCache } from '../store/cache.js';
import { FirestoreStore, type Store } from '../store/firestore.js';
import { parseBody } from './body.js';
import { envelope, httpStatus } from './envelope.js';
import {
  type FunctionName,
  matchRoute,
  type OperationId,
  parsePath,
  type Route,
  SYSTEM_QUERY,
} from './routes.js';

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

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
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

function listRequest(q: URLSearchParams): ListRequest {
  return {
    pageSize: q.get('pageSize'),
    pageToken: q.get('pageToken'),
    filter: q.get('filter'),
    orderBy: q.get('orderBy'),
  };
}

/** `$alt=json;enum-encoding=int` (the Node client) asks for enums as numbers. */
function wantsIntEnums(q: URLSearchParams): boolean {
  return /enum-encoding=int/.test(q.get('$alt') ?? q.get('alt') ?? '');
}

function intEnums(value: unknown, field = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => intEnums(v, field));
  if (typeof value === 'string') {
    const table = enumsByField[field];
    return table && Object.hasOwn(table, value) ? table[value] : value;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = intEnums(v, k);
    return out;
  }
  return value;
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
      new FirestoreStore({ projectId: config.firestoreProjectId, databaseId: config.firestoreDatabaseId });
    const now = options.now ?? (() => new Date());
    const identity = config.gatewayIdentity
      ? new GatewayIdentity(config.gatewayIdentity) // real time: the EKM checks exp/nbf against its clock
      : undefined;
    const log = options.logger ?? createLogger(config.logLevel);
    this.deps = {
      config,
      store,
      cache: new MetadataCache(store, {
        ttlMs: config.metadataCacheMs,
        maxEntries: config.metadataCacheEntries,
      }),
      rootKeys: new RootKeyring(config.rootKeys),
      now,
      ekm: new EkmClient(config.ekmEndpoints, identity, {
        ...config.ekmClient,
        ...options.ekmTransport,
        now: () => now().getTime(),
        onAttempt: (attempt) => log.entry(ekmMetricEntry(attempt)),
        probeStates: probeStateLoader({ store }),
      }),
      log,
      quota: new EkmQuota(store, now, config.ekmQuota),
    };
    if (identity) this.deps.identity = identity;
    this.verifier = options.verifier ?? new TokenVerifier(config.trustedIssuers);
    this.authorizer = new Authorizer(iamConfigOf(config), this.deps.cache, now);
    this.log = this.deps.log;
  }

  /** Handles one request as the function `fn`; never throws. */
  async handle(fn: FunctionName, req: ApiRequest): Promise<ApiResponse> {
    const started = performance.now();
    const requestId = header(req, 'x-request-id')?.slice(0, 64) || randomUUID();
    let principal: string | undefined;
    let operation: OperationId | undefined;
    let status = 200;
    let errorCode: string | undefined;
    let errorMessage = '';
    let verb = '';
    let resourceName = '';
    const audit: AuditRecord = {};
    let response: ApiResponse;
    let release: (() => void) | undefined;
    try {
      const parsed = parsePath(req.path);
      if (!parsed) {
        throw new RpcError(
          'NOT_FOUND',
          `The path ${req.path.slice(0, 200)} is not part of this API. Paths look like /v1/projects/{project}/locations/{location}/keyRings.`,
        );
      }
      const { route, allowed } = matchRoute(req.method, parsed);
      if (!route) {
        if (allowed.length > 0) {
          throw new RpcError(
            'NOT_FOUND',
            `Method ${req.method} is not supported on ${req.path.slice(0, 200)}; use ${allowed.join(' or ')}.`,
          );
        }
        throw new RpcError(
          'NOT_FOUND',
          parsed.verb
            ? `Custom method ":${parsed.verb.slice(0, 40)}" does not exist on this resource.`
            : `The path ${req.path.slice(0, 200)} is not part of this API.`,
        );
      }
      if (route.fn !== fn) {
        throw new RpcError(
          'NOT_FOUND',
          `This is the ${fn} function; ${req.method} ${req.path.slice(0, 200)} is served by the ${route.fn} function. Send it to the service's base URL.`,
        );
      }
      operation = route.operation;
      verb = parsed.verb;
      resourceName = parsed.name;
      this.checkQuery(req.query, route);
      if (req.body && req.body.length > this.deps.config.maxRequestBytes) {
        throw RpcError.invalidArgument(
          `The request body is ${req.body.length} bytes; the limit is ${this.deps.config.maxRequestBytes} bytes.`,
        );
      }
      const { signal, deadline, release: releaseDeadline } = this.deadline(req);
      release = releaseDeadline;
      const reason = accessReason(header(req, ACCESS_REASON_HEADER));
      const open =
        this.deps.config.statusPublic &&
        (route.operation === 'ekmHealth' || route.operation === 'statusPage');
      const caller =
        route.authenticated && !open
          ? await this.verifier.verify(header(req, 'authorization'))
          : { principal: 'anonymous', issuer: '' };
      principal = caller.principal;
      // The one IAM check (docs/iam.md); synchronous when configuration alone grants the permission. The
      // decision goes to the audit entry (granted stays false if the check throws).
      if (route.permission && !open) {
        const decision = { resource: parsed.name, permission: route.permission, granted: false };
        recordAuthorization(audit, decision);
        const authorized = this.authorizer.authorize(caller, route.permission, parsed.name);
        if (authorized) await authorized;
        decision.granted = true;
      }
      const ctx: RequestContext = {
        caller,
        requestId,
        signal,
        deadline,
        reason,
        audit,
        authorize: async (permission, resource) => {
          const decision = { resource, permission, granted: false };
          recordAuthorization(audit, decision);
          await this.authorizer.authorize(caller, permission, resource);
          decision.granted = true;
        },
      };
      const body = req.method === 'GET' ? {} : parseBody(req.body);
      const result = await withDeadline(this.run(route, parsed.name, req.query, body, ctx), signal);
      if (result instanceof Rendered) {
        response = {
          status,
          headers: { 'content-type': result.contentType, ...result.headers },
          body: result.body,
        };
      } else {
        const rendered = wantsIntEnums(req.query) ? intEnums(result) : result;
        response = {
          status,
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body: JSON.stringify(rendered),
        };
      }
    } catch (err) {
      const e = RpcError.from(err);
      status = httpStatus(e.code);
      errorCode = e.code;
      errorMessage = e.message;
      if (e.code === 'INTERNAL' || e.code === 'DATA_LOSS' || e.code === 'UNKNOWN') {
        this.log.error('request failed', { requestId, cause: describe(e.cause ?? e) });
      }
      response = {
        status,
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify(envelope(e)),
      };
    }
    release?.();
    response.headers['x-request-id'] = requestId;
    this.log.request({
      function: fn,
      requestId,
      method: req.method,
      path: req.path,
      operation,
      status,
      errorCode,
      principal,
      remoteIp: req.remoteAddress,
      userAgent: header(req, 'user-agent'),
      latencyMs: performance.now() - started,
    });
    const audited = auditedMethod(operation, verb, resourceName);
    if (audited && (audited.write || this.deps.config.auditDataAccess)) {
      this.log.entry(
        auditEntry(
          {
            method: audited,
            resourceName,
            principal,
            callerIp: req.remoteAddress,
            userAgent: header(req, 'user-agent'),
            requestId,
            code: errorCode ? numericCode(errorCode as Code) : 0,
            message: errorMessage,
            latencyMs: performance.now() - started,
            record: audit,
          },
          this.deps.now(),
        ),
      );
    }
    return response;
  }

  private checkQuery(q: URLSearchParams, route: Route): void {
    for (const k of new Set(q.keys())) {
      if (q.getAll(k).length > 1) {
        const name = k.slice(0, 40);
        throw RpcError.invalidArgument(
          `Query parameter "${name}" is given more than once; give it once.`,
          name,
        );
      }
      if (!route.query.includes(k) && !SYSTEM_QUERY.has(k)) {
        throw RpcError.invalidArgument(
          `Unknown query parameter "${k.slice(0, 40)}"${route.query.length ? `; this method accepts ${route.query.join(', ')}` : ''}.`,
          k.slice(0, 40),
        );
      }
    }
  }

  /**
   * The request's signal: aborts when the deadline passes (reason: a TimeoutError, as AbortSignal.timeout) or
   * when `req.signal` aborts (its reason), whichever comes first — what AbortSignal.any([AbortSignal.timeout(ms),
   * req.signal]) gives, at a fraction of its cost per request. `release` disarms both when the request ends
   * rather than leaving a timer armed for the whole deadline.
   */
  private deadline(req: ApiRequest): { signal: AbortSignal; deadline: number; release: () => void } {
    let ms = this.deps.config.requestDeadlineMs;
    const t = header(req, 'x-server-timeout');
    if (t && /^[0-9]+(\.[0-9]+)?$/.test(t)) ms = Math.min(ms, Math.max(1, Number(t) * 1000));
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
      ms,
    );
    timer.unref();
    const cancel = req.signal;
    let onCancel: (() => void) | undefined;
    if (cancel?.aborted) controller.abort(cancel.reason);
    else if (cancel) {
      onCancel = () => controller.abort(cancel.reason);
      cancel.addEventListener('abort', onCancel, { once: true });
    }
    return {
      signal: controller.signal,
      deadline: this.deps.now().getTime() + ms,
      release: () => {
        clearTimeout(timer);
        if (onCancel) cancel?.removeEventListener('abort', onCancel);
      },
    };
  }

  private async run(
    route: Route,
    name: string,
    q: URLSearchParams,
    body: JsonObject,
    ctx: RequestContext,
  ): Promise<unknown> {
    const d = this.deps;
    switch (route.operation) {
      case 'health':
        return { status: 'SERVING' };
      case 'jwks':
        if (!d.identity)
          throw new RpcError('NOT_FOUND', 'This deployment has no gateway signing key configured.');
        return d.identity.jwks();
      case 'ready':
        await d.store.get('openekm/readiness');
        return { status: 'SERVING', firestore: 'reachable' };
      case 'runScheduledTasks':
        return runScheduledTasks(d);
      case 'runProbe':
        return runProbe(d, ctx.signal);
      case 'ekmHealth':
        return buildReport(d);
      case 'statusPage':
        return new Rendered(
          'text/html; charset=utf-8',
          renderStatusPage(await buildReport(d)),
          STATUS_PAGE_HEADERS,
        );
      case 'createEkmConnection':
        return createEkmConnection(d, name, q.get('ekmConnectionId'), body);
      case 'getEkmConnection':
        return getEkmConnection(d, name);
      case 'listEkmConnections': {
        const page = await listEkmConnections(d, name, listRequest(q));
        return { ekmConnections: page.items, nextPageToken: page.nextPageToken, totalSize: page.totalSize };
      }
      case 'patchEkmConnection':
        return patchEkmConnection(d, name, fieldMask(q.get('updateMask')), body);
      case 'verifyConnectivity':
        return verifyConnectivity(d, ctx, name);
      case 'getEkmConfig':
        return getEkmConfig(d, name);
      case 'updateEkmConfig':
        return updateEkmConfig(d, name, fieldMask(q.get('updateMask')), body);
      case 'createKeyRing':
        return createKeyRing(d, name, q.get('keyRingId'), body);
      case 'getKeyRing':
        return getKeyRing(d, name);
      case 'listKeyRings': {
        const page = await listKeyRings(d, name, listRequest(q));
        return { keyRings: page.items, nextPageToken: page.nextPageToken, totalSize: page.totalSize };
      }
      case 'createCryptoKey':
        return createCryptoKey(
          d,
          ctx,
          name,
          q.get('cryptoKeyId'),
          parseBool(q.get('skipInitialVersionCreation') ?? 'false', 'skipInitialVersionCreation'),
          body,
        );
      case 'getCryptoKey':
        return getCryptoKey(d, name);
      case 'listCryptoKeys': {
        checkView(q, 'versionView');
        const page = await listCryptoKeys(d, name, listRequest(q));
        return { cryptoKeys: page.items, nextPageToken: page.nextPageToken, totalSize: page.totalSize };
      }
      case 'patchCryptoKey':
        return patchCryptoKey(d, name, fieldMask(q.get('updateMask')), body);
      case 'updatePrimaryVersion':
        return updatePrimaryVersion(d, name, body);
      case 'encrypt':
        return encrypt(d, ctx, name, body);
      case 'decrypt':
        return decrypt(d, ctx, name, body);
      case 'createCryptoKeyVersion':
        return createCryptoKeyVersion(d, ctx, name, body);
      case 'getCryptoKeyVersion':
        return getCryptoKeyVersion(d, name);
      case 'listCryptoKeyVersions': {
        checkView(q, 'view');
        const page = await listCryptoKeyVersions(d, name, listRequest(q));
        return {
          cryptoKeyVersions: page.items,
          nextPageToken: page.nextPageToken,
          totalSize: page.totalSize,
        };
      }
      case 'patchCryptoKeyVersion':
        return patchCryptoKeyVersion(d, ctx, name, fieldMask(q.get('updateMask')), body);
      case 'destroyCryptoKeyVersion':
        return destroyCryptoKeyVersion(d, name, body);
      case 'restoreCryptoKeyVersion':
        return restoreCryptoKeyVersion(d, name, body);
      case 'iam':
        if (route.verb === 'getIamPolicy') {
          return getIamPolicy(d, name, q.get('options.requestedPolicyVersion'));
        }
        if (route.verb === 'setIamPolicy') return setIamPolicy(d, name, body);
        return testIamPermissions(d, this.authorizer, ctx.caller, name, body);
    }
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
  }
}

/** A non-JSON answer (the status page). */
class Rendered {
  constructor(
    readonly contentType: string,
    readonly body: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** The status page loads nothing and runs nothing; it is never cached (it is live state). */
const STATUS_PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

/** The header in which a caller states why it uses a key (Key Access Justifications), by name or number. */
export const ACCESS_REASON_HEADER = 'x-openekm-access-reason';
const DEFAULT_ACCESS_REASON: AccessReasonName = 'CUSTOMER_INITIATED_ACCESS';

function accessReason(raw: string | undefined): AccessReasonName {
  if (raw === undefined || raw.trim() === '') return DEFAULT_ACCESS_REASON;
  const name = enumValue(AccessReason, raw.trim(), ACCESS_REASON_HEADER) as AccessReasonName;
  if (name === 'REASON_UNSPECIFIED') return DEFAULT_ACCESS_REASON;
  return name;
}

/** `view` / `versionView` (FULL adds HSM attestation) change nothing here, but a bad value is still refused. */
function checkView(q: URLSearchParams, field: string): void {
  enumValue(CryptoKeyVersionView, q.get(field), field);
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/**
 * The work's outcome, or DEADLINE_EXCEEDED / CANCELLED when `signal` aborts first. One promise and one reaction
 * instead of async/await around Promise.race: every request runs inside the functions framework's domain,
 * where each promise also goes through async hooks, so promises are a large share of the per-request cost.
 */
function withDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(RpcError.deadlineExceeded('The request deadline passed before the work started.'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      reject(
        (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError'
          ? RpcError.deadlineExceeded(
              'The request did not finish within its deadline; its outcome is unknown. Retry it.',
            )
          : new RpcError('CANCELLED', 'The client cancelled the request; its outcome is unknown.'),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
