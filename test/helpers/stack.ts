/**
 * A real OpenEKM gateway for integration tests: the four functions behind one base URL (the same local server
 * `npm start` uses), a real Firestore emulator (FIRESTORE_EMULATOR_HOST, set by scripts/run-tests.ts), a fresh
 * Firestore project per stack so test files never see each other's data, and a clock the test can move.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalEkm, startLocalEkm } from '../../scripts/lib/local-ekm.js';
import { type LocalServer, startLocalServer } from '../../scripts/lib/local-server.js';
import { localGatewayEnv, mintLocalToken } from '../../scripts/lib/local-state.js';
import { Gateway } from '../../shared/api/gateway.js';
import { loadConfig } from '../../shared/config.js';
import type { TransportOptions } from '../../shared/ekm/transport.js';
import { createLogger } from '../../shared/log.js';

export interface TestStack {
  url: string;
  gateway: Gateway;
  server: LocalServer;
  /** Moves the gateway's clock forward. */
  advance(ms: number): void;
  token(principal?: string, ttlSeconds?: number): Promise<string>;
  /** A JSON request with the owner's token unless `token` is given ('' sends none). */
  call(
    method: string,
    path: string,
    body?: unknown,
    options?: { token?: string; headers?: Record<string, string>; raw?: string },
  ): Promise<{ status: number; json: any; headers: Headers }>;
  project: string;
  stateDir: string;
  logs: string[];
  /** The reference EKM, when started with `ekm: true`. */
  ekm: LocalEkm | undefined;
  ekmLogs: string[];
  stop(): Promise<void>;
}

export interface StackOptions {
  env?: Record<string, string>;
  /** Also start a reference EKM (test mode, ephemeral ports) declared to the gateway, as npm start does. */
  ekm?: boolean;
  /** With `ekm`: changes the EKM endpoints declared to the gateway (e.g. adds unreachable or untrusted ones). */
  ekmEndpoints?: (
    declared: Array<Record<string, unknown>>,
    ekm: LocalEkm,
    project: string,
  ) => Array<Record<string, unknown>>;
  /**
   * With `ekm`: per-attempt timeout of the declared EKM endpoints (default 150 ms). Tests that count EKM calls
   * but do not test timeouts raise it so a busy machine cannot turn one call into a retried one.
   */
  ekmTimeoutMs?: number;
  /**
   * With `ekm`: run the reference EKM in its own process, as `npm start` and the bench do (tests of load and
   * transport). By default it runs in this process, where its request log (`ekmLogs`) is complete as soon as an
   * answer arrives, for tests that count EKM calls and drive its admin API.
   */
  ekmProcess?: 'child' | 'in-process';
  /** Options of the gateway's EKM transport, e.g. an injected `lookup` for DNS tests. */
  ekmTransport?: TransportOptions;
}

export async function startTestStack(options: StackOptions = {}): Promise<TestStack> {
  const firestoreHost = process.env.FIRESTORE_EMULATOR_HOST;
  if (!firestoreHost) throw new Error('FIRESTORE_EMULATOR_HOST is not set: run the tests with npm test.');
  const stateDir = mkdtempSync(join(tmpdir(), 'openekm-test-'));
  const project = `demo-test-${randomBytes(6).toString('hex')}`;
  const ekmLogs: string[] = [];
  const local = options.ekm
    ? await startLocalEkm({
        dir: stateDir,
        httpPort: 0,
        httpsPort: 0,
        mode: 'test',
        log: (l) => ekmLogs.push(l),
        process: options.ekmProcess ?? 'in-process',
        // Keys the tests create at the EKM are granted to the EKM identity of the stack's project.
        project,
      })
    : undefined;
  const ekmEnv = { ...local?.env };
  if (local && (options.ekmEndpoints || options.ekmTimeoutMs)) {
    let declared = JSON.parse(local.env.OPENEKM_EKM_ENDPOINTS ?? '[]') as Array<Record<string, unknown>>;
    if (options.ekmTimeoutMs) declared = declared.map((e) => ({ ...e, timeoutMs: options.ekmTimeoutMs }));
    if (options.ekmEndpoints) declared = options.ekmEndpoints(declared, local, project);
    ekmEnv.OPENEKM_EKM_ENDPOINTS = JSON.stringify(declared);
  }
  const env = {
    ...(await localGatewayEnv(firestoreHost, stateDir)),
    ...ekmEnv,
    OPENEKM_FIRESTORE_PROJECT: project,
    // Tests that are not about the EKM quota must not meet it (bursts of failing EKM calls exceed 100/s), nor
    // wait for its Firestore leases inside their tight deadlines.
    OPENEKM_EKM_QUOTA: '{"enabled": false}',
    // Tests of retry behaviour fault a large share of their few requests; the retry budget (retries at most 10 %
    // of first attempts) is tested on its own (test/external/ekm-overload.test.ts) and set aside here.
    OPENEKM_EKM_RETRY_BUDGET_MIN_PER_SECOND: '1000',
    ...options.env,
  };
  const config = loadConfig(env);
  let offset = 0;
  const logs: string[] = [];
  const gateway = new Gateway({
    config,
    now: () => new Date(Date.now() + offset),
    logger: createLogger('debug', (l) => logs.push(l)),
    ...(options.ekmTransport ? { ekmTransport: options.ekmTransport } : {}),
  });
  const server = await startLocalServer({ gateway });
  const ownerToken = await mintLocalToken({ dir: stateDir });
  const stack: TestStack = {
    url: server.url,
    gateway,
    server,
    project,
    stateDir,
    logs,
    advance(ms) {
      offset += ms;
    },
    token: (principal, ttlSeconds) => mintLocalToken({ dir: stateDir, principal, ttlSeconds }),
    async call(method, path, body, opts = {}) {
      const token = opts.token ?? ownerToken;
      const headers: Record<string, string> = { ...opts.headers };
      if (token) headers.authorization = `Bearer ${token}`;
      let payload: string | undefined = opts.raw;
      if (payload === undefined && body !== undefined) payload = JSON.stringify(body);
      if (payload !== undefined) headers['content-type'] ??= 'application/json';
      return requestJson(server.url + path, method, headers, payload);
    },
    ekm: local,
    ekmLogs,
    async stop() {
      await server.stop();
      await gateway.close();
      await local?.ekm.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** One HTTP request to a gateway; the body is parsed as JSON (or kept as `{notJson}` when it is not). */
export async function requestJson(
  url: string,
  method: string,
  headers: Record<string, string>,
  payload?: string,
): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { method, headers, body: payload, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = { notJson: text };
  }
  return { status: res.status, json, headers: res.headers };
}

/** The environment that points gcloud at a local gateway without touching the user's own configuration. */
export function gcloudEnv(
  baseUrl: string,
  project: string,
  configDir: string,
  tokenFile: string,
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CLOUDSDK_CONFIG: configDir,
    CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS: `${baseUrl}/`,
    CLOUDSDK_AUTH_ACCESS_TOKEN_FILE: tokenFile,
    CLOUDSDK_CORE_PROJECT: project,
    CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
  };
}

/**
 * Runs gcloud without blocking this process (which serves the requests it sends): its exit code and output,
 * never a rejection, so a test can assert on a failure's message.
 */
export function runGcloud(
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs?: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'gcloud',
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}
