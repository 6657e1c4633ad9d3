/**
 * EKM connections under load and under a replica outage, in one run:
 *
 * 1. EXTERNAL_VPC encrypt (1 KiB) through an EKM connection with two replicas, next to EXTERNAL encrypt (Google
 *    EKM by URI) on the same reference EKM, at concurrency 1 and 32 (autocannon, like the other bench rows), and
 *    the ratio VPC / EXTERNAL.
 * 2. The outage: steady EXTERNAL_VPC encrypt load at concurrency 8; replica B's network path starts to hang (then,
 *    in a second scenario, to reset connections); the probe runs on a fixed interval (gateway.probe() on a timer,
 *    as scripts/stack.ts runs it). Reported per scenario: requests before detection (fault → the probe recording B
 *    DOWN) and after it, failures, failed-over attempts (EKM metric lines with ekm.replica = B and status ≠ OK),
 *    attempts still sent to B after detection, and p50/p99 per window.
 *
 * The server side runs in a worker thread of this process, built as test/helpers/stack.ts builds it: a Gateway
 * behind the local server (the four functions' functions-framework pipelines), reference EKM replica A (the local
 * stack's EKM, which the EXTERNAL key also uses), replica B (a second reference EKM over the same data directory)
 * behind a TCP fault relay (test/helpers/ekm-replicas.ts), and the probe timer. autocannon runs on the main thread,
 * so the load generator does not share the gateway's event loop (bench/external.ts has it in another process). The
 * gateway and both EKMs share one event loop, as in the local stack: absolute figures are lower than a
 * deployment's; the VPC / EXTERNAL ratio compares like with like (the VPC path also crosses the relay for B's
 * share of the requests).
 *
 *   npx tsx bench/failover.ts     (starts its own Firestore emulator, or uses FIRESTORE_EMULATOR_HOST when set)
 *
 * Part of `npm run bench` (BENCH_FAILOVER=0 skips it there). Knobs: BENCH_FAILOVER_DURATION_S (seconds per round
 * of a throughput measurement, default 1.5), BENCH_FAILOVER_ROUNDS (default 3; VPC and EXTERNAL alternate, after
 * 1 s of warm-up each), BENCH_FAILOVER_STEADY_S (load before the fault, default 3), BENCH_FAILOVER_AFTER_S (load
 * after detection, default 3), BENCH_FAILOVER_PROBE_S (probe interval, default 2), BENCH_FAILOVER_TIMEOUT_MS
 * (per-attempt timeout of connections; default: the gateway's, 150 ms).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type ReferenceEkm, startReferenceEkm } from '@openekm/reference-ekm';
import { type RunningEmulator, startFirestoreEmulator } from '../scripts/lib/firestore-emulator.js';
import { type LocalEkm, startLocalEkm } from '../scripts/lib/local-ekm.js';
import { type LocalServer, startLocalServer } from '../scripts/lib/local-server.js';
import {
  ensureGatewaySigningKey,
  LOCAL_GATEWAY_ISSUER,
  localGatewayEnv,
  mintLocalToken,
} from '../scripts/lib/local-state.js';
import { Gateway } from '../shared/api/gateway.js';
import { loadConfig } from '../shared/config.js';
import { createLogger } from '../shared/log.js';
import { FaultRelay, type RelayMode } from '../test/helpers/ekm-replicas.js';
import { api, type LoadResult, measure } from './gateway.js';

const require = createRequire(import.meta.url);

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const DURATION_S = num('BENCH_FAILOVER_DURATION_S', 1.5);
const ROUNDS = Math.round(num('BENCH_FAILOVER_ROUNDS', 3));
const WARMUP_S = 1;
const STEADY_S = num('BENCH_FAILOVER_STEADY_S', 3);
const AFTER_S = num('BENCH_FAILOVER_AFTER_S', 3);
const PROBE_S = num('BENCH_FAILOVER_PROBE_S', 2);
const TIMEOUT_MS = process.env.BENCH_FAILOVER_TIMEOUT_MS;
const OUTAGE_CONNECTIONS = 8;
/** Longest wait for the probe to see the fault (or the recovery) before the scenario is reported as undetected. */
const DETECT_LIMIT_MS = 15_000;
const EKM_KEY_ID = 'bench-failover';
const PLAINTEXT = Buffer.alloc(1024, 0x5a).toString('base64');

// ---------------------------------------------------------------------------------------------------------------
// autocannon, with a callback per response (for the per-window figures of the outage scenarios)

interface AutocannonInstance extends PromiseLike<unknown> {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  on(event: 'reqError', fn: (err: Error) => void): void;
  stop(): void;
}
const autocannon = require('autocannon') as (opts: Record<string, unknown>) => AutocannonInstance;

/** One answer (or error) of the outage load: completion time (Date.now()), ok, latency in ms. */
interface Done {
  t: number;
  ok: boolean;
  ms: number;
}

/** One EKM attempt from the gateway's metric log lines: start (log time − latency) and end, replica, status. */
interface Attempt {
  start: number;
  end: number;
  replica: string;
  status: string;
  requestId: string;
}

/** One probe run: when it ended, and replica B's result in it. */
interface ProbeRun {
  ended: number;
  bOk: boolean;
  bDomain: string;
}

interface Scenario {
  mode: RelayMode;
  bServedBeforeFault: number;
  probeDomain: string;
  detectMs: number;
  detected: boolean;
  steady: WindowStats;
  before: WindowStats;
  after: WindowStats;
  failedOver: number;
  failedAtOthers: number;
  bAfter: number;
  /** Of bAfter: attempts at B made after the same request's attempt at A had failed (B as the last resort). */
  bAfterAFailed: number;
}

/** One row of part 1, over its rounds. */
interface Rounds {
  ok: number;
  bad: number;
  seconds: number;
  /** Per round. */
  ops: number[];
  p50: number[];
  p99: number[];
  /** EKM attempts over all rounds, and the failed ones by domain. */
  attempts: number;
  failed: Map<string, number>;
}

function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface WindowStats {
  seconds: number;
  ok: number;
  failed: number;
  p50: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function windowStats(done: Done[], from: number, to: number): WindowStats {
  const inside = done.filter((d) => d.t >= from && d.t < to);
  const ok = inside.filter((d) => d.ok);
  const lat = ok.map((d) => d.ms).sort((a, b) => a - b);
  return {
    seconds: (to - from) / 1000,
    ok: ok.length,
    failed: inside.length - ok.length,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmtOps = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fmtMs = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '—');
const fmtRatio = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');

// ---------------------------------------------------------------------------------------------------------------
// Server side, in a worker thread: gateway, local server, replicas A and B, B's relay, the probe timer. The load
// generator stays on the main thread, so it does not share the gateway's event loop (as in bench/external.ts,
// where autocannon and the stack are separate processes).

type ToServer =
  | { id: number; cmd: 'record'; on: boolean }
  | { id: number; cmd: 'relay'; mode: RelayMode }
  | { id: number; cmd: 'probeTimer'; on: boolean }
  | { id: number; cmd: 'stop' };
type FromServer =
  | {
      type: 'ready';
      url: string;
      token: string;
      vpcPath: string;
      extPath: string;
      timeoutMs: number;
      hostA: string;
      hostB: string;
    }
  | { type: 'reply'; id: number; attempts?: Attempt[] }
  | { type: 'probe'; run: ProbeRun }
  | { type: 'error'; message: string };

async function serverSide(firestoreHost: string): Promise<void> {
  const port = parentPort!;
  const post = (m: FromServer) => port.postMessage(m);
  process.env.METADATA_SERVER_DETECTION = 'none';
  // The Firestore client finds the emulator through the process environment (this thread's copy).
  process.env.FIRESTORE_EMULATOR_HOST = firestoreHost;
  const stateDir = await mkdtemp(join(tmpdir(), 'openekm-bench-failover-'));
  let ekm: LocalEkm | undefined;
  let replicaB: ReferenceEkm | undefined;
  let relay: FaultRelay | undefined;
  let gateway: Gateway | undefined;
  let server: LocalServer | undefined;
  let probeTimer: NodeJS.Timeout | undefined;
  /** The probe run in flight, awaited before the gateway closes (its Firestore client must outlive it). */
  let probeRun: Promise<void> | undefined;
  const stop = async () => {
    if (probeTimer) clearInterval(probeTimer);
    await probeRun;
    await server?.stop().catch(() => undefined);
    await gateway?.close().catch(() => undefined);
    await relay?.stop().catch(() => undefined);
    await replicaB?.stop().catch(() => undefined);
    await ekm?.ekm.stop().catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    // Replica A: the local stack's reference EKM (also the EXTERNAL key's EKM). Replica B: a second reference EKM
    // over the same data directory, reached through the relay, whose address is B's name for the gateway.
    ekm = await startLocalEkm({
      dir: stateDir,
      httpPort: 0,
      httpsPort: 0,
      mode: 'test',
      log: () => undefined,
      project: 'bench-failover',
    });
    await ekm.ekm.admin.createKey(EKM_KEY_ID);
    relay = await FaultRelay.start();
    const { publicJwksPath } = await ensureGatewaySigningKey(stateDir);
    replicaB = await startReferenceEkm({
      dataDir: join(stateDir, 'ekm'),
      httpPort: 0,
      httpsPort: 0,
      trustedIssuers: [{ issuer: LOCAL_GATEWAY_ISSUER, jwksFile: publicJwksPath }],
      mode: 'test',
      extraAudiences: [`https://${relay.host}`],
      log: () => undefined,
    });
    relay.target = Number(new URL(replicaB.httpsUrl).port);
    const hostA = new URL(ekm.ekm.httpsUrl).host;
    const hostB = relay.host;

    // EKM attempts from the gateway's metric lines (written whatever the log level), kept while `recording`.
    let recording = false;
    const attempts: Attempt[] = [];
    const sink = (line: string) => {
      if (!recording || !line.includes('"openekm.ekm.request"')) return;
      const e = JSON.parse(line) as {
        ekm?: { replica?: string; status?: string; latencyMs?: number };
        'logging.googleapis.com/labels'?: { requestId?: string };
      };
      if (!e.ekm?.replica) return;
      const end = Date.now();
      attempts.push({
        start: end - (e.ekm.latencyMs ?? 0),
        end,
        replica: e.ekm.replica,
        status: e.ekm.status ?? '',
        requestId: e['logging.googleapis.com/labels']?.requestId ?? '',
      });
    };
    const config = loadConfig({
      ...(await localGatewayEnv(firestoreHost, stateDir)),
      ...ekm.env,
      OPENEKM_FIRESTORE_PROJECT: `demo-failover-${randomBytes(4).toString('hex')}`,
      OPENEKM_LOG_LEVEL: 'warn',
      // Enabled, far above what the bench reaches (as in the other EXTERNAL rows): never a refusal.
      OPENEKM_EKM_QUOTA: JSON.stringify({ default: 1_000_000 }),
      OPENEKM_PROBE_INTERVAL_SECONDS: String(Math.max(1, Math.round(PROBE_S))),
      ...(TIMEOUT_MS ? { OPENEKM_EKM_CONNECTION_TIMEOUT_MS: TIMEOUT_MS } : {}),
    });
    const gw = new Gateway({ config, logger: createLogger('warn', sink) });
    gateway = gw;
    server = await startLocalServer({ gateway: gw });
    const url = server.url;
    const token = await mintLocalToken({ dir: stateDir, ttlSeconds: 3600 });

    // Setup through the API: a connection A + B (both pinning the EKM's leaf certificate), an EXTERNAL_VPC key on
    // it and an EXTERNAL key by URI, both on the same EKM key, each checked by a round trip.
    const project = 'bench-failover';
    const loc = `projects/${project}/locations/us-east1`;
    const ring = `${loc}/keyRings/r-${Date.now()}`;
    await api(url, 'POST', `/v1/${loc}/keyRings?keyRingId=${ring.split('/').pop()}`, token, {});
    const pem = readFileSync(join(stateDir, 'ekm', 'tls', 'server.pem'), 'utf8');
    const der = (
      /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1] ?? ''
    ).replace(/\s+/g, '');
    const conn = await api(url, 'POST', `/v1/${loc}/ekmConnections?ekmConnectionId=ab`, token, {
      serviceResolvers: [
        { hostname: hostA, serverCertificates: [{ rawDer: der }] },
        { hostname: hostB, serverCertificates: [{ rawDer: der }] },
      ],
    });
    const keys = {
      vpc: {
        id: 'vpc',
        template: { protectionLevel: 'EXTERNAL_VPC' },
        extra: { cryptoKeyBackend: conn.name },
        version: { ekmConnectionKeyPath: `v0/keys/${EKM_KEY_ID}` },
      },
      ext: {
        id: 'ext',
        template: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
        extra: {},
        version: { externalKeyUri: ekm.keyUri(EKM_KEY_ID, 'google', 'https') },
      },
    };
    for (const k of Object.values(keys)) {
      const name = `${ring}/cryptoKeys/${k.id}`;
      await api(
        url,
        'POST',
        `/v1/${ring}/cryptoKeys?cryptoKeyId=${k.id}&skipInitialVersionCreation=true`,
        token,
        {
          purpose: 'ENCRYPT_DECRYPT',
          versionTemplate: k.template,
          ...k.extra,
        },
      );
      await api(url, 'POST', `/v1/${name}/cryptoKeyVersions`, token, {
        externalProtectionLevelOptions: k.version,
      });
      await api(url, 'POST', `/v1/${name}:updatePrimaryVersion`, token, { cryptoKeyVersionId: '1' });
      const enc = await api(url, 'POST', `/v1/${name}:encrypt`, token, { plaintext: PLAINTEXT });
      const dec = await api(url, 'POST', `/v1/${name}:decrypt`, token, { ciphertext: enc.ciphertext });
      if (dec.plaintext !== PLAINTEXT) throw new Error(`the ${k.id} round trip did not return the plaintext`);
    }
    const vpcPath = `/v1/${ring}/cryptoKeys/vpc:encrypt`;
    const extPath = `/v1/${ring}/cryptoKeys/ext:encrypt`;
    // Both replicas UP in the probe's records before anything is measured.
    await gw.probe();
    const probe = () => {
      if (probeRun) return; // a run still in flight: skip this tick, as a scheduler with one run at a time would
      probeRun = (async () => {
        try {
          const r = await gw.probe();
          const b = r.probed.find((p) => p.replica === hostB);
          if (b) post({ type: 'probe', run: { ended: Date.now(), bOk: b.ok, bDomain: b.domain ?? 'OK' } });
        } catch {
          // a failed run records nothing; the next tick tries again
        } finally {
          probeRun = undefined;
        }
      })();
    };
    const r = relay;
    port.on('message', (m: ToServer) => {
      if (m.cmd === 'record') {
        recording = m.on;
        if (m.on) attempts.length = 0;
        post({ type: 'reply', id: m.id, ...(m.on ? {} : { attempts: attempts.splice(0) }) });
      } else if (m.cmd === 'relay') {
        r.set(m.mode);
        post({ type: 'reply', id: m.id });
      } else if (m.cmd === 'probeTimer') {
        if (probeTimer) clearInterval(probeTimer);
        probeTimer = m.on ? setInterval(probe, PROBE_S * 1000) : undefined;
        void (m.on ? Promise.resolve() : (probeRun ?? Promise.resolve())).then(() =>
          post({ type: 'reply', id: m.id }),
        );
      } else {
        void stop().finally(() => {
          post({ type: 'reply', id: m.id });
          port.close();
        });
      }
    });
    post({
      type: 'ready',
      url,
      token,
      vpcPath,
      extPath,
      timeoutMs: config.ekmConnectionTimeoutMs,
      hostB,
      hostA,
    });
  } catch (err) {
    await stop();
    post({ type: 'error', message: (err as Error).stack ?? String(err) });
    port.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Main thread: the emulator (when none is given), the worker, the load and the report.

/** Stops what a running benchFailover() started (for a caller's Ctrl-C handler); resolves at once otherwise. */
let stopActive: (() => Promise<void>) | undefined;
export function stopFailover(): Promise<void> {
  return stopActive?.() ?? Promise.resolve();
}

export interface FailoverOptions {
  /** A running Firestore emulator (host:port); without it, FIRESTORE_EMULATOR_HOST or one started here. */
  firestoreHost?: string;
  log?: (line: string) => void;
}

/** Runs both parts and answers the section's text (Markdown tables, readable as plain text). */
export async function benchFailover(options: FailoverOptions = {}): Promise<string> {
  const log = options.log ?? ((l: string) => process.stderr.write(`[bench failover] ${l}\n`));
  let emulator: RunningEmulator | undefined;
  let worker: Worker | undefined;
  let load: AutocannonInstance | undefined;
  let stopping: Promise<void> | undefined;
  let nextId = 0;
  const waiting = new Map<number, (m: { attempts?: Attempt[] }) => void>();
  const probes: ProbeRun[] = [];
  let failure: Error | undefined;
  const send = (m: Record<string, unknown> & { cmd: ToServer['cmd'] }) =>
    new Promise<{ attempts?: Attempt[] }>((resolve, reject) => {
      if (!worker || failure) return reject(failure ?? new Error('the failover server is not running'));
      const id = ++nextId;
      waiting.set(id, resolve);
      worker.postMessage({ ...m, id });
    });
  const stop = () => {
    stopping ??= (async () => {
      load?.stop();
      if (worker) {
        const w = worker;
        const exited = new Promise<void>((r) => w.once('exit', () => r()));
        await Promise.race([send({ cmd: 'stop' }).catch(() => undefined), sleep(10_000)]);
        await Promise.race([exited, sleep(2_000)]);
        await w.terminate().catch(() => undefined);
        worker = undefined;
      }
      await emulator?.stop().catch(() => undefined);
    })();
    return stopping;
  };
  stopActive = stop;
  try {
    const startLoad = loadavg();
    const t0 = performance.now();
    let emulatorMs = 0;
    let firestoreHost = options.firestoreHost ?? process.env.FIRESTORE_EMULATOR_HOST;
    if (!firestoreHost) {
      log('starting a Firestore emulator …');
      emulator = await startFirestoreEmulator();
      firestoreHost = emulator.host;
      emulatorMs = performance.now() - t0;
    }
    log(
      'starting (worker thread) reference EKM replicas A and B, B behind a fault relay, a gateway, the local server …',
    );
    // tsx's loader has to be registered in the worker before this file (TypeScript) is imported there.
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const src = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    worker = new Worker(src, { eval: true, workerData: { failoverServer: true, firestoreHost } });
    const ready = await new Promise<Extract<FromServer, { type: 'ready' }>>((resolve, reject) => {
      worker!.on('message', (m: FromServer) => {
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'reply') {
          waiting.get(m.id)?.(m);
          waiting.delete(m.id);
        } else if (m.type === 'probe') probes.push(m.run);
        else {
          failure = new Error(`the failover server failed: ${m.message}`);
          reject(failure);
        }
      });
      worker!.once('error', (err) => {
        failure = err;
        reject(err);
      });
      worker!.once('exit', (code) => {
        failure ??= new Error(`the failover server exited (${code})`);
        reject(failure);
        for (const w of waiting.values()) w({});
      });
    });
    const { url, token, vpcPath, extPath, hostB } = ready;
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const body = JSON.stringify({ plaintext: PLAINTEXT });

    // Part 1: throughput, VPC and EXTERNAL alternated in rounds (ABBA…) so machine noise hits both alike ---------
    const results: Record<string, Rounds> = {};
    for (const c of [1, 32]) {
      const plan = [
        { id: `vpc${c}`, what: 'EXTERNAL_VPC (connection, 2 replicas)', path: vpcPath },
        { id: `ext${c}`, what: 'EXTERNAL (Google EKM by URI)', path: extPath },
      ];
      const spec = (path: string) => ({
        url,
        method: 'POST' as const,
        path,
        headers: auth,
        body,
        connections: c,
      });
      log(
        `EXTERNAL_VPC vs EXTERNAL encrypt 1 KiB, concurrency ${c}: ${ROUNDS} rounds of ${DURATION_S} s each …`,
      );
      for (const step of plan) {
        await measure({ ...spec(step.path), durationS: WARMUP_S, maxRequests: 200_000 });
        results[step.id] = {
          ok: 0,
          bad: 0,
          seconds: 0,
          ops: [],
          p50: [],
          p99: [],
          attempts: 0,
          failed: new Map(),
        };
      }
      for (let round = 0; round < ROUNDS; round++) {
        for (const step of round % 2 ? [...plan].reverse() : plan) {
          await send({ cmd: 'record', on: true });
          const r: LoadResult = await measure({
            ...spec(step.path),
            durationS: DURATION_S,
            maxRequests: 200_000,
          });
          const attempts = (await send({ cmd: 'record', on: false })).attempts ?? [];
          const acc = results[step.id]!;
          acc.ok += r.requests;
          acc.bad += r.non2xx + r.errors;
          acc.seconds += r.seconds;
          acc.ops.push(r.opsPerSec);
          acc.p50.push(r.p50Ms);
          acc.p99.push(r.p99Ms);
          acc.attempts += attempts.length;
          for (const x of attempts)
            if (x.status !== 'OK') acc.failed.set(x.status, (acc.failed.get(x.status) ?? 0) + 1);
        }
      }
    }

    // Part 2: outage of replica B under steady load, the probe on a timer ----------------------------------------
    /** The first probe run that ended after `since` with B's result `ok` (or undefined after DETECT_LIMIT_MS). */
    const probeSees = async (since: number, ok: boolean): Promise<ProbeRun | undefined> => {
      while (Date.now() - since < DETECT_LIMIT_MS) {
        const hit = probes.find((p) => p.ended > since && p.bOk === ok);
        if (hit) return hit;
        await sleep(10);
      }
      return undefined;
    };
    await send({ cmd: 'probeTimer', on: true });

    const scenarios: Scenario[] = [];
    for (const mode of ['hang', 'reset'] as RelayMode[]) {
      await send({ cmd: 'relay', mode: 'pass' });
      const recovered = await probeSees(Date.now(), true);
      if (!recovered) throw new Error('the probe did not record replica B UP before the scenario');
      log(
        `outage: concurrency ${OUTAGE_CONNECTIONS}, ${STEADY_S} s steady, then B starts to ${mode}; probe every ${PROBE_S} s …`,
      );
      await send({ cmd: 'record', on: true });
      const done: Done[] = [];
      const started = Date.now();
      const instance = autocannon({
        url: `${url}${vpcPath}`,
        method: 'POST',
        headers: auth,
        body,
        connections: OUTAGE_CONNECTIONS,
        pipelining: 1,
        duration: 600,
        timeout: 10,
      });
      load = instance;
      instance.on('response', (_c, status, _b, ms) => {
        done.push({ t: Date.now(), ok: status >= 200 && status < 300, ms });
      });
      instance.on('reqError', () => {
        done.push({ t: Date.now(), ok: false, ms: Number.NaN });
      });
      // The first 0.5 s are left out of the steady window (connections opening).
      await sleep(STEADY_S * 1000);
      const faultAt = Date.now();
      await send({ cmd: 'relay', mode });
      const hit = await probeSees(faultAt, false);
      const detectedAt = hit?.ended ?? Date.now();
      await sleep(AFTER_S * 1000);
      const endAt = Date.now();
      instance.stop();
      await instance;
      load = undefined;
      const attempts = (await send({ cmd: 'record', on: false })).attempts ?? [];
      const atB = attempts.filter((a) => a.replica === hostB);
      // Attempts after detection that still went to B: B is the last resort once A failed in the same request.
      const bAfter = atB.filter((a) => a.start >= detectedAt);
      const aFailedBefore = (x: Attempt) =>
        attempts.some(
          (a) => a.requestId === x.requestId && a.replica !== hostB && a.status !== 'OK' && a.end <= x.start,
        );
      scenarios.push({
        mode,
        bServedBeforeFault: atB.filter((a) => a.status === 'OK' && a.start < faultAt).length,
        probeDomain: hit?.bDomain ?? '—',
        detectMs: detectedAt - faultAt,
        detected: hit !== undefined,
        steady: windowStats(done, started + 500, faultAt),
        before: windowStats(done, faultAt, detectedAt),
        after: windowStats(done, detectedAt, endAt),
        // Failed at B after the fault and started before detection (a reset fails attempts already in flight).
        failedOver: atB.filter((a) => a.status !== 'OK' && a.end >= faultAt && a.start < detectedAt).length,
        failedAtOthers: attempts.filter((a) => a.replica !== hostB && a.status !== 'OK').length,
        bAfter: bAfter.length,
        bAfterAFailed: bAfter.filter(aFailedBefore).length,
      });
    }
    await send({ cmd: 'relay', mode: 'pass' });
    await send({ cmd: 'probeTimer', on: false });

    // Output ---------------------------------------------------------------------------------------------------
    const endLoad = loadavg();
    const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
    const lines: string[] = [
      `EKM connection (EXTERNAL_VPC, replicas A and B) vs EXTERNAL by URI, same reference EKM; gateway, local ` +
        `server, both replicas and B's fault relay in one worker thread, autocannon on the main thread; 1 KiB ` +
        `encrypt; per concurrency ${WARMUP_S} s warm-up each, then ${ROUNDS} rounds of ${DURATION_S} s each, VPC and ` +
        `EXTERNAL alternated; ops/s over all rounds, p50 / p99 the median of the rounds'; per-attempt timeout ` +
        `${ready.timeoutMs} ms (connections); load average ${la(startLoad)} at the start, ${la(endLoad)} at the end; ` +
        `the section took ${((performance.now() - t0) / 1000).toFixed(0)} s` +
        (emulatorMs
          ? ` (${(emulatorMs / 1000).toFixed(0)} s of it starting its own Firestore emulator).`
          : '.'),
      '',
      '| measurement | conc | ops/s | p50 ms | p99 ms | notes |',
      '|---|---:|---:|---:|---:|---|',
    ];
    for (const c of [1, 32]) {
      for (const [id, what] of [
        [`vpc${c}`, 'EXTERNAL_VPC encrypt via connection (2 replicas)'],
        [`ext${c}`, 'EXTERNAL encrypt (Google EKM by URI)'],
      ] as const) {
        const r = results[id]!;
        const failedEkm = [...r.failed].map(([d, n]) => `${n} ${d}`).join(', ') || 'none failed';
        lines.push(
          `| ${what} | ${c} | ${fmtOps(r.ok / r.seconds)} | ${fmtMs(median(r.p50))} | ${fmtMs(median(r.p99))} | ` +
            `${r.ok.toLocaleString('en-US')} ok in ${r.seconds.toFixed(1)} s${r.bad ? `, ${r.bad} FAILED` : ''}; ` +
            `${fmtRatio(r.attempts / (r.ok + r.bad))} EKM attempts/request (${failedEkm}) |`,
        );
      }
    }
    lines.push('', '| ratio | value | how to read it |', '|---|---:|---|');
    for (const c of [1, 32]) {
      const v = results[`vpc${c}`]!;
      const e = results[`ext${c}`]!;
      const perRound = v.ops.map((x, i) => x / e.ops[i]!);
      lines.push(
        `| EXTERNAL_VPC ops/s / EXTERNAL ops/s @${c} | ${fmtRatio(v.ok / v.seconds / (e.ok / e.seconds))} | ` +
          `1.00 = a connection costs nothing over a key URI; per round ${perRound.map(fmtRatio).join(', ')} |`,
      );
      lines.push(
        `| EXTERNAL_VPC p50 − EXTERNAL p50 @${c} (ms) | ${fmtMs(median(v.p50) - median(e.p50))} | latency the connection path adds (replica choice, pinned TLS, B's relay hop for half the requests) |`,
      );
    }
    lines.push(
      '',
      `Outage of replica B under EXTERNAL_VPC encrypt load at concurrency ${OUTAGE_CONNECTIONS}: ${STEADY_S} s steady, ` +
        `then B's relay starts to hang (or reset) every connection; gateway.probe() every ${PROBE_S} s on a timer; ` +
        `"detection" is the end of the first probe run that records B DOWN; load continues ${AFTER_S} s after it. ` +
        'Requests are counted in the window they complete in. Failed-over attempts: EKM metric lines at B with ' +
        'status ≠ OK that ended after the fault and started before detection. Attempts at B after: started after ' +
        'detection (in brackets, those made after the same request failed at A: B is the last resort).',
      '',
      '| fault on B | B served before fault | fault → probe DOWN | ok / failed before detection | failed-over attempts | p50 / p99 ms before detection | ok / failed after detection | attempts at B after | p50 / p99 ms after detection | steady p50 / p99 ms (ops/s) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const s of scenarios) {
      lines.push(
        `| ${s.mode} (probe: ${s.probeDomain}) | ${s.bServedBeforeFault} | ${s.detected ? `${(s.detectMs / 1000).toFixed(2)} s` : `not within ${DETECT_LIMIT_MS / 1000} s`} | ` +
          `${s.before.ok} / ${s.before.failed} | ${s.failedOver} | ${fmtMs(s.before.p50)} / ${fmtMs(s.before.p99)} | ` +
          `${s.after.ok} / ${s.after.failed} | ${s.bAfter} (${s.bAfterAFailed}) | ${fmtMs(s.after.p50)} / ${fmtMs(s.after.p99)} | ` +
          `${fmtMs(s.steady.p50)} / ${fmtMs(s.steady.p99)} (${fmtOps(s.steady.ok / s.steady.seconds)}) |`,
      );
    }
    const others = scenarios.map((s) => `${s.mode} ${s.failedAtOthers}`).join(', ');
    const failed = scenarios.some((s) => s.steady.failed + s.before.failed + s.after.failed > 0);
    lines.push(
      '',
      `Failed attempts at replica A during the scenarios (load noise, not the fault): ${others}.` +
        (failed ? ' Some requests FAILED: see the ok / failed columns.' : ' No request failed.'),
    );
    return `${lines.join('\n')}\n`;
  } finally {
    await stop();
    if (stopActive === stop) stopActive = undefined;
  }
}

if (!isMainThread && (workerData as { failoverServer?: boolean } | null)?.failoverServer) {
  await serverSide((workerData as { firestoreHost: string }).firestoreHost);
} else if (isMainThread && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void stopFailover().finally(() => process.exit(130)));
  }
  try {
    process.stdout.write(await benchFailover());
  } catch (err) {
    process.stderr.write(`bench/failover failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
