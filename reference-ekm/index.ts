import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { EkmAdmin } from './admin/admin.js';
import { DEFAULTS, type EkmMode, type TrustedIssuer, validateIssuer } from './config.js';
import { FaultInjector } from './core/faults.js';
import { KeyService } from './core/key-service.js';
import { RateLimiter } from './core/rate-limit.js';
import { TokenVerifier } from './google-ekm/auth.js';
import { matchGoogleEkm } from './google-ekm/router.js';
import { EkmHttpServer } from './http/server.js';
import { ensureLocalTls } from './http/tls.js';
import type { KeyStore } from './keystore/key-store.js';
import { openKeyStore } from './keystore/open.js';
import { createLogger } from './log.js';
import { StateStore } from './state/state-store.js';
import type { BackendName } from './state/types.js';
import { HealthCache } from './xks/health.js';
import { matchXks } from './xks/router.js';

export { EkmAdmin } from './admin/admin.js';
export type { EkmMode, TrustedIssuer } from './config.js';

export interface ReferenceEkmOptions {
  /** State, master key, TLS files and (local/test) the SoftHSM token live here. */
  dataDir: string;
  /** HTTPS listen address (default 127.0.0.1). Plain HTTP always listens on 127.0.0.1. */
  host?: string;
  /** 0 = ephemeral. Defaults 8190 (HTTP) and 8191 (HTTPS). */
  httpPort?: number;
  httpsPort?: number;
  backend?: BackendName;
  trustedIssuers?: TrustedIssuer[];
  /** local (default) and test allow fault injection and provision SoftHSM; production does neither. */
  mode?: EkmMode;
  /** Receives one JSON line per request and per error. Default: stdout. */
  log?: (line: string) => void;
  /** Principal granted on keys created by the admin API / CLI (default gateway@openekm.local). */
  defaultPrincipal?: string;
  /** Extra token audiences accepted besides this EKM's own http and https origins. */
  extraAudiences?: string[];
  /** Requests per second per caller (Google EKM principal, XKS prefix); 0 = unlimited (default). */
  rateLimit?: number;
  /** Software back end: the 32-byte master key (default: `<dataDir>/master.key`, generated). */
  masterKey?: Buffer;
  pkcs11?: { modulePath?: string; tokenLabel?: string; pin?: string };
  /**
   * certFile/keyFile: serve this certificate instead of the generated local CA (caCertPath is then the
   * cert file). dir: where the local CA and server certificate are kept (default `<dataDir>/tls`), so a
   * local stack can share one CA. hostnames: extra names for the generated server certificate.
   */
  tls?: { certFile?: string; keyFile?: string; dir?: string; hostnames?: string[] };
  /** The region this XKS proxy serves (default us-east-1): reported in credentials, required in the SigV4 scope. */
  xksRegion?: string;
}

export interface ReferenceEkm {
  httpUrl: string;
  httpsUrl: string;
  caCertPath: string;
  /** `{httpsUrl}/v0`: key URIs are `{googleEkmBaseUrl}/keys/{keyId}`. */
  googleEkmBaseUrl: string;
  /** `{httpUrl}/v0`, the same API over plain HTTP on loopback. */
  googleEkmHttpBaseUrl: string;
  /** `{httpUrl}/{prefix}/kms/xks/v1` (plain HTTP on loopback, as `xks credentials create` prints). */
  xksBaseUrl(prefix: string): string;
  /** `{httpsUrl}/{prefix}/kms/xks/v1`. */
  xksHttpsBaseUrl(prefix: string): string;
  /** Admin operations (create keys, grants, XKS credentials, faults), the same the CLI performs. */
  admin: EkmAdmin;
  backend: BackendName;
  stop(): Promise<void>;
}

/** What the running server publishes in `<dataDir>/server.json` for the CLI. */
export interface ServerInfo {
  pid: number;
  mode: EkmMode;
  backend: BackendName;
  httpUrl: string;
  httpsUrl: string;
  caCertPath: string;
  startTime: string;
  /** The principal keys created by the admin API / CLI are granted to. */
  defaultPrincipal?: string;
}

export function readServerInfo(dataDir: string): ServerInfo | undefined {
  const path = join(dataDir, 'server.json');
  if (!existsSync(path)) return undefined;
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as ServerInfo;
    process.kill(info.pid, 0);
    return info;
  } catch {
    return undefined;
  }
}

/** Starts the reference EKM (Google EKM API v0 + AWS XKS proxy API v1) and resolves once both listeners are up. */
export async function startReferenceEkm(options: ReferenceEkmOptions): Promise<ReferenceEkm> {
  const dataDir = isAbsolute(options.dataDir) ? options.dataDir : resolve(options.dataDir);
  const mode = options.mode ?? 'local';
  const backend = options.backend ?? 'software';
  const host = options.host ?? DEFAULTS.host;
  const log = createLogger(options.log ?? ((line) => process.stdout.write(`${line}\n`)));
  const trustedIssuers = (options.trustedIssuers ?? []).map((entry, i) =>
    validateIssuer(entry, `trustedIssuers[${i}]`),
  );

  const state = new StateStore(dataDir);
  const bound = state.read().backend;
  if (bound && bound !== backend) {
    throw new Error(
      `the data directory ${dataDir} holds ${bound} keys; start with backend ${bound} or use another data directory`,
    );
  }
  const store: KeyStore = openKeyStore({
    backend,
    dataDir,
    mode,
    masterKey: options.masterKey,
    pkcs11: options.pkcs11,
  });
  const cleanups: Array<() => Promise<void> | void> = [() => store.close()];
  try {
    const keys = new KeyService(state, store);
    const defaultPrincipal = (options.defaultPrincipal ?? DEFAULTS.defaultPrincipal).toLowerCase();
    const admin = new EkmAdmin({ state, store, defaultPrincipal, mode });
    const limiter = new RateLimiter(options.rateLimit ?? 0);
    const health = new HealthCache(store, log);
    cleanups.push(() => health.close());
    const origins: string[] = [];
    const audiences = () => [...origins.flatMap(audienceForms), ...(options.extraAudiences ?? [])];
    const verifier = new TokenVerifier(trustedIssuers, audiences);
    const googleDeps = { keys, admin, verifier, limiter, log, backendModel: store.model };
    const xksDeps = {
      keys,
      limiter,
      health,
      log,
      now: () => new Date(),
      region: options.xksRegion ?? DEFAULTS.xksRegion,
    };
    const server = new EkmHttpServer({
      state,
      log,
      faults: new FaultInjector(mode !== 'production'),
      match: (method, path) => matchGoogleEkm(method, path, googleDeps) ?? matchXks(method, path, xksDeps),
    });
    cleanups.unshift(() => server.close());

    let tls: { cert: string; key: string };
    let caCertPath: string;
    if (options.tls?.certFile && options.tls.keyFile) {
      tls = {
        cert: readFileSync(options.tls.certFile, 'utf8'),
        key: readFileSync(options.tls.keyFile, 'utf8'),
      };
      caCertPath = options.tls.certFile;
    } else {
      const local = ensureLocalTls(options.tls?.dir ?? join(dataDir, 'tls'), [
        host,
        ...(options.tls?.hostnames ?? []),
      ]);
      tls = local;
      caCertPath = local.caCertPath;
    }
    const httpUrl = await server.listen({
      scheme: 'http',
      host: '127.0.0.1',
      port: options.httpPort ?? DEFAULTS.httpPort,
    });
    const httpsUrl = await server.listen({
      scheme: 'https',
      host,
      port: options.httpsPort ?? DEFAULTS.httpsPort,
      tls,
    });
    origins.push(httpUrl, httpsUrl);
    void health.refresh();

    const info: ServerInfo = {
      pid: process.pid,
      mode,
      backend,
      httpUrl,
      httpsUrl,
      caCertPath,
      startTime: new Date().toISOString(),
      defaultPrincipal,
    };
    const infoPath = join(dataDir, 'server.json');
    writeFileSync(infoPath, `${JSON.stringify(info, null, 2)}\n`);
    log.info({ msg: 'reference EKM started', mode, backend, httpUrl, httpsUrl, caCertPath });

    let stopped = false;
    return {
      httpUrl,
      httpsUrl,
      caCertPath,
      googleEkmBaseUrl: `${httpsUrl}/v0`,
      googleEkmHttpBaseUrl: `${httpUrl}/v0`,
      xksBaseUrl: (prefix) => `${httpUrl}/${prefix}/kms/xks/v1`,
      xksHttpsBaseUrl: (prefix) => `${httpsUrl}/${prefix}/kms/xks/v1`,
      admin,
      backend,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          const current = JSON.parse(readFileSync(infoPath, 'utf8')) as ServerInfo;
          if (current.pid === process.pid && current.httpUrl === httpUrl) unlinkSync(infoPath);
        } catch {
          // already gone
        }
        for (const cleanup of cleanups) await cleanup();
        log.info({ msg: 'reference EKM stopped' });
      },
    };
  } catch (error) {
    for (const cleanup of cleanups) await cleanup();
    throw error;
  }
}

/** An origin and its localhost / 127.0.0.1 twin, each with and without a trailing slash. */
function audienceForms(origin: string): string[] {
  const forms = [origin];
  if (origin.includes('://127.0.0.1:')) forms.push(origin.replace('://127.0.0.1:', '://localhost:'));
  if (origin.includes('://localhost:')) forms.push(origin.replace('://localhost:', '://127.0.0.1:'));
  return forms.flatMap((o) => [o, `${o}/`]);
}
