/**
 * Building blocks of `npm run bench`: child processes we start and always stop (the compiled local stack, cold
 * functions-framework processes), HTTP load through autocannon, and the cold-start probe. Everything talks to
 * 127.0.0.1 only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const require = createRequire(import.meta.url);

export const ROOT = resolve(import.meta.dirname, '..');

// ---------------------------------------------------------------------------------------------------------------
// Children: every process the bench starts is tracked here and stopped by its PID.

const children = new Set<ChildProcess>();

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (!alive(child)) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (alive(child)) child.kill('SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Last resort, synchronous (for process 'exit'): SIGKILL whatever is still running. */
export function killAllNow(): void {
  for (const child of children) if (alive(child)) child.kill('SIGKILL');
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c)));
}

function lastLines(buf: string[]): string {
  return buf.slice(-30).join('');
}

function collectOutput(child: ChildProcess): string[] {
  const out: string[] = [];
  const push = (b: Buffer) => {
    out.push(b.toString('utf8'));
    if (out.length > 200) out.shift();
  };
  child.stdout?.on('data', push);
  child.stderr?.on('data', push);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Build and the local stack

/** `npm run build` (tsc -p tsconfig.build.json), without going through npm. */
export async function build(): Promise<void> {
  const child = track(
    spawn(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const out = collectOutput(child);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`npm run build failed (tsc exit ${code}):\n${lastLines(out)}`);
}

async function waitHttpOk(url: string, child: ChildProcess, out: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(child))
      throw new Error(`The process exited early (code ${child.exitCode}):\n${lastLines(out)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms:\n${lastLines(out)}`);
}

export interface RunningStack {
  url: string;
  pid: number;
  /** EKM attempts the gateway logged so far (its `openekm.ekm.request` metric lines), for retry amplification. */
  ekmAttempts(): EkmAttemptCounts;
  stop(): Promise<void>;
}

export interface EkmAttemptCounts {
  /** Attempts sent to an EKM (every metric line but the gateway's own refusals, `sent: "false"`). */
  sent: number;
  /** Calls that ended (one final line each), refused ones included. */
  calls: number;
  /** First attempts sent to an EKM (calls that reached it). */
  firstSent: number;
  /** Calls the gateway refused itself (concurrency bound): never sent. */
  refused: number;
}

/** Counts the gateway's EKM metric lines on a stream of JSON log lines (see shared/audit/ekm-metrics.ts). */
function countEkmAttempts(child: ChildProcess): () => EkmAttemptCounts {
  const counts: EkmAttemptCounts = { sent: 0, calls: 0, firstSent: 0, refused: 0 };
  let rest = '';
  child.stdout?.on('data', (b: Buffer) => {
    const lines = (rest + b.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('"openekm.ekm.request"')) continue;
      try {
        const e = JSON.parse(line) as { ekm?: { final?: string; sent?: string; attempt?: number } };
        const refused = e.ekm?.sent === 'false';
        if (!refused) counts.sent++;
        if (!refused && e.ekm?.attempt === 1) counts.firstSent++;
        if (e.ekm?.final === 'true') counts.calls++;
        if (refused) counts.refused++;
      } catch {
        // not a JSON line
      }
    }
  });
  return () => ({ ...counts });
}

/**
 * The compiled local stack (dist/scripts/stack.js) in a child process, on `port`, using the emulator at
 * `firestoreHost`. `nodeArgs` lets a profiling run add e.g. `--cpu-prof`.
 */
export async function startStack(options: {
  port: number;
  firestoreHost: string;
  env: Record<string, string>;
  nodeArgs?: string[];
}): Promise<RunningStack> {
  const child = track(
    // As `npm start` runs it: the gateway compiled, the reference EKM package (TypeScript source) through tsx.
    spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', 'dist/scripts/stack.js'], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...options.env,
        PORT: String(options.port),
        OPENEKM_HOST: '127.0.0.1',
        FIRESTORE_EMULATOR_HOST: options.firestoreHost,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const out = collectOutput(child);
  const ekmAttempts = countEkmAttempts(child);
  const url = `http://127.0.0.1:${options.port}`;
  try {
    await waitHttpOk(`${url}/health`, child, out, 60_000);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { url, pid: child.pid ?? 0, ekmAttempts, stop: () => stopChild(child, 5000) };
}

// ---------------------------------------------------------------------------------------------------------------
// Plain API calls (setup)

export async function api(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------------------------
// Load through autocannon

interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
}
interface AutocannonInstance extends PromiseLike<AutocannonResult> {
  on(
    event: 'response',
    fn: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void,
  ): void;
  stop(): void;
}
type Autocannon = (opts: Record<string, unknown>) => AutocannonInstance;
const autocannon = require('autocannon') as Autocannon;

export interface LoadSpec {
  url: string;
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  connections: number;
  durationS: number;
  /** Upper bound on requests, whatever the duration. */
  maxRequests: number;
  warmupS?: number;
  /** PID of the server process, to account its CPU time per request (Linux /proc). */
  serverPid?: number;
}

export interface LoadResult {
  connections: number;
  requests: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  seconds: number;
  /** CPU time (user + system) the server process spent per successful request, in ms; NaN if unknown. */
  serverCpuMsPerRequest: number;
  /** Slowest answer of any status (refusals included), ms. */
  maxAnyMs: number;
}

/** User + system CPU time of a process in ms, from /proc/<pid>/stat (clock ticks of 10 ms). */
export function processCpuMs(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

async function runOnce(spec: LoadSpec, durationS: number, maxRequests: number, record: boolean) {
  if (!/^https?:\/\/127\.0\.0\.1:\d+$/.test(spec.url))
    throw new Error(`load only goes to 127.0.0.1, not ${spec.url}`);
  const latencies: number[] = [];
  let ok = 0;
  let maxAny = 0;
  const started = performance.now();
  const instance = autocannon({
    url: `${spec.url}${spec.path}`,
    method: spec.method,
    headers: spec.headers ?? {},
    body: spec.body,
    connections: spec.connections,
    pipelining: 1,
    duration: durationS,
    maxOverallRequests: Math.max(maxRequests, spec.connections),
    timeout: 10,
  });
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    if (responseTime > maxAny) maxAny = responseTime;
    if (statusCode >= 200 && statusCode < 300) {
      ok++;
      if (record) latencies.push(responseTime);
    }
  });
  const result = await instance;
  const seconds = (performance.now() - started) / 1000;
  return { result, ok, latencies, seconds, maxAny };
}

/** A warm-up (not recorded), then one measurement bounded by `durationS` and `maxRequests`. */
export async function measure(spec: LoadSpec): Promise<LoadResult> {
  if (spec.warmupS) await runOnce(spec, spec.warmupS, spec.maxRequests, false);
  const cpuBefore = processCpuMs(spec.serverPid);
  const { result, ok, latencies, seconds, maxAny } = await runOnce(
    spec,
    spec.durationS,
    spec.maxRequests,
    true,
  );
  const cpuMs = processCpuMs(spec.serverPid) - cpuBefore;
  const sorted = Float64Array.from(latencies).sort();
  return {
    connections: spec.connections,
    requests: ok,
    opsPerSec: ok / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    seconds,
    serverCpuMsPerRequest: cpuMs / ok,
    maxAnyMs: maxAny,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Cold start of the encrypt function alone

/**
 * Spawns `functions-framework --target=encrypt` on `port` and polls an encrypt request until it answers 200.
 * Returns milliseconds from spawn to that first successful answer; the process is stopped before returning.
 */
export async function coldStartEncrypt(options: {
  port: number;
  env: Record<string, string>;
  path: string;
  token: string;
  body: string;
  timeoutMs?: number;
  nodeArgs?: string[];
}): Promise<number> {
  const main = resolve(ROOT, 'node_modules/@google-cloud/functions-framework/build/src/main.js');
  const url = `http://127.0.0.1:${options.port}${options.path}`;
  const started = performance.now();
  const child = track(
    spawn(
      process.execPath,
      [
        ...(options.nodeArgs ?? []),
        main,
        '--target=encrypt',
        `--port=${options.port}`,
        `--source=${resolve(ROOT, 'dist/functions/index.js')}`,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, ...options.env, PORT: String(options.port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );
  const out = collectOutput(child);
  const deadline = started + (options.timeoutMs ?? 30_000);
  try {
    while (performance.now() < deadline) {
      if (!alive(child))
        throw new Error(`functions-framework exited early (code ${child.exitCode}):\n${lastLines(out)}`);
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' },
          body: options.body,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        if (res.ok) return performance.now() - started;
        if (res.status !== 404 && res.status !== 503) {
          throw new Error(`cold encrypt answered ${res.status}: ${text.slice(0, 300)}`);
        }
      } catch (err) {
        if ((err as Error).message.startsWith('cold encrypt')) throw err;
        // connection refused: not listening yet
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error(
      `the encrypt function did not answer within ${options.timeoutMs ?? 30_000} ms:\n${lastLines(out)}`,
    );
  } finally {
    await stopChild(child);
  }
}

/**
 * Baseline for the cold start: milliseconds from spawning a bare `node` that serves a constant 200 on `port` to
 * its first answer, polled the same way. The ratio of the two is comparable across machines of different speed.
 */
export async function coldStartBareNode(port: number): Promise<number> {
  const script = `require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1')`;
  const started = performance.now();
  const child = track(spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const out = collectOutput(child);
  try {
    while (performance.now() < started + 30_000) {
      if (!alive(child))
        throw new Error(`bare node exited early (code ${child.exitCode}):\n${lastLines(out)}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
        await res.text();
        if (res.ok) return performance.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error('bare node did not answer within 30 s');
  } finally {
    await stopChild(child);
  }
}
