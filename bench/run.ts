/**
 * `npm run bench`: SOFTWARE encrypt/decrypt and key-admin throughput and latency through the full HTTP stack,
 * and the cold start of the encrypt function, from one run, with ratios against the targets and against a
 * baseline measured in the same run (see docs/benchmarks.md).
 *
 * It builds the project, starts its own Firestore emulator and the compiled local stack (dist/scripts/stack.js)
 * in a child process, loads it with autocannon on 127.0.0.1, and stops everything it started at the end, on
 * error and on Ctrl-C.
 *
 * Environment knobs: BENCH_DURATION_S (seconds per measurement, default 6), BENCH_WARMUP_S (default 1),
 * BENCH_SKIP_BUILD=1, BENCH_STACK_NODE_ARGS (extra node flags for the stack, e.g. "--cpu-prof --cpu-prof-dir=prof"),
 * BENCH_ONLY=load|cold (skip the other half) and BENCH_PICK=health,encrypt32,ext-google-encrypt1,… (only these load
 * measurements), for profiling. BENCH_EXTERNAL_DURATION_S (default 5) is the measurement time of each of the 16
 * EXTERNAL / direct EKM measurements (bench/external.ts). BENCH_ACCESS=0 skips the in-process access-cost section
 * (bench/access-cost.ts: identity, IAM and EKM quota with versus without). BENCH_FAILOVER=0 skips the EKM
 * connection section (bench/failover.ts: EXTERNAL_VPC vs EXTERNAL, and a replica that hangs or resets under load).
 * BENCH_HSM=0 skips the HSM (SoftHSM2) encrypt/decrypt rows (bench/hsm.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, type RunningEmulator, startFirestoreEmulator } from '../scripts/lib/firestore-emulator.js';
import { localGatewayEnv, mintLocalToken } from '../scripts/lib/local-state.js';
import { benchAccessCost, stopAccessCost } from './access-cost.js';
import { benchExternal, externalRatios, OVERLOAD_CONNECTIONS } from './external.js';
import { benchFailover, stopFailover } from './failover.js';
import {
  api,
  build,
  coldStartBareNode,
  coldStartEncrypt,
  type EkmAttemptCounts,
  killAllNow,
  type LoadResult,
  type LoadSpec,
  measure,
  ROOT,
  type RunningStack,
  startStack,
  stopAll,
} from './gateway.js';
import { hsmRows } from './hsm.js';
import { benchQuotaSaturation } from './quota.js';

const TARGET_ENCRYPT_OPS = 3000;
const TARGET_COLD_START_MS = 500;
const PLAINTEXT_BYTES = 1024;
const COLD_RUNS = 5;

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 6);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 1);
const MAX_REQUESTS = 200_000;
const ONLY = process.env.BENCH_ONLY;
const EXTERNAL_DURATION_S = Number(process.env.BENCH_EXTERNAL_DURATION_S ?? 5);

process.env.METADATA_SERVER_DETECTION = 'none';

// ---------------------------------------------------------------------------------------------------------------
// Cleanup: whatever happens, stop what we started.

let emulator: RunningEmulator | undefined;
let stack: RunningStack | undefined;
let stateDir: string | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stack?.stop().catch(() => undefined);
    await stopAccessCost().catch(() => undefined);
    await stopFailover().catch(() => undefined);
    await stopAll().catch(() => undefined);
    await emulator?.stop().catch(() => undefined);
    if (stateDir) await rm(stateDir, { recursive: true, force: true }).catch(() => undefined);
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping everything the bench started…\n`);
    void cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', killAllNow);

// ---------------------------------------------------------------------------------------------------------------

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmtOps = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fmtMs = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '—');
const fmtRatio = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');

interface Row {
  what: string;
  conc: string;
  ops: string;
  p50: string;
  p99: string;
  cpu: string;
  note: string;
}

function loadRow(what: string, r: LoadResult): Row {
  const bad = r.non2xx + r.errors;
  return {
    what,
    conc: String(r.connections),
    ops: fmtOps(r.opsPerSec),
    p50: fmtMs(r.p50Ms),
    p99: fmtMs(r.p99Ms),
    cpu: fmtOps(r.serverCpuMsPerRequest * 1000),
    note: `${r.requests.toLocaleString('en-US')} ok in ${r.seconds.toFixed(1)} s${bad ? `, ${bad} FAILED` : ''}`,
  };
}

function textTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function mdTable(headers: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${headers.join(' | ')} |`,
    `|${headers.map((_, i) => (i === 0 || i === headers.length - 1 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

async function referenceEkmSection(): Promise<string> {
  const file = join(ROOT, 'bench', 'reference-ekm.ts');
  if (!existsSync(file))
    return 'Reference EKM: bench/reference-ekm.ts does not exist yet; no reference EKM figures.';
  const mod = (await import(pathToFileURL(file).href)) as { benchReferenceEkm?: () => Promise<string> };
  if (typeof mod.benchReferenceEkm !== 'function') {
    return 'Reference EKM: bench/reference-ekm.ts does not export benchReferenceEkm(); skipped.';
  }
  return (await mod.benchReferenceEkm()).trimEnd();
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, ${process.platform}/${process.arch}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
  log(machine);

  if (process.env.BENCH_SKIP_BUILD !== '1') {
    log('building (npm run build) …');
    await build();
  }

  stateDir = await mkdtemp(join(tmpdir(), 'openekm-bench-'));
  log('starting the Firestore emulator …');
  emulator = await startFirestoreEmulator();
  const ekmHttpsPort = await freePort();
  const env = {
    ...(await localGatewayEnv(emulator.host, stateDir)),
    OPENEKM_STATE_DIR: stateDir,
    METADATA_SERVER_DETECTION: 'none',
    OPENEKM_LOG_LEVEL: 'warn',
    // The stack's reference EKM on free ports (not 8190/8191, which a running `npm start` may hold).
    OPENEKM_EKM_HTTP_PORT: String(await freePort()),
    OPENEKM_EKM_HTTPS_PORT: String(ekmHttpsPort),
    // EKM quota far above what the bench can reach, so it never throttles the EXTERNAL measurements.
    OPENEKM_EKM_QUOTA: JSON.stringify({ default: 1_000_000 }),
  };
  const token = await mintLocalToken({ dir: stateDir, ttlSeconds: 3 * 3600 });
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

  const ring = `projects/bench/locations/us-east1/keyRings/bench-${Date.now()}`;
  const keyName = `${ring}/cryptoKeys/sw`;
  const plaintext = Buffer.alloc(PLAINTEXT_BYTES, 0x5a).toString('base64');
  const encryptBody = JSON.stringify({ plaintext });

  const rows: Row[] = [];
  const results: Record<string, LoadResult> = {};
  const ekmCounts: Record<string, EkmAttemptCounts> = {};
  const cold: { encrypt: number[]; bare: number[] } = { encrypt: [], bare: [] };

  const port = await freePort();
  log(`starting the compiled local stack on 127.0.0.1:${port} …`);
  stack = await startStack({
    port,
    firestoreHost: emulator.host,
    env,
    nodeArgs: [
      '--enable-source-maps',
      ...(process.env.BENCH_STACK_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []),
    ],
  });

  await api(
    stack.url,
    'POST',
    `/v1/${ring.slice(0, ring.lastIndexOf('/keyRings/'))}/keyRings?keyRingId=${ring.split('/').pop()}`,
    token,
    {},
  );
  await api(stack.url, 'POST', `/v1/${ring}/cryptoKeys?cryptoKeyId=sw`, token, {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
  });
  const enc = await api(stack.url, 'POST', `/v1/${keyName}:encrypt`, token, { plaintext });
  const dec = await api(stack.url, 'POST', `/v1/${keyName}:decrypt`, token, { ciphertext: enc.ciphertext });
  if (dec.plaintext !== plaintext) throw new Error('the setup round trip did not return the plaintext');
  const decryptBody = JSON.stringify({ ciphertext: enc.ciphertext });

  if (ONLY !== 'cold') {
    const base = {
      url: stack.url,
      durationS: DURATION_S,
      warmupS: WARMUP_S,
      maxRequests: MAX_REQUESTS,
      serverPid: stack.pid,
    };
    const plan: Array<[string, string, Omit<LoadSpec, 'url' | 'durationS' | 'maxRequests'>]> = [
      ['health', 'GET /health (baseline)', { method: 'GET', path: '/health', connections: 32 }],
      [
        'encrypt1',
        'encrypt 1 KiB',
        { method: 'POST', path: `/v1/${keyName}:encrypt`, headers: auth, body: encryptBody, connections: 1 },
      ],
      [
        'encrypt32',
        'encrypt 1 KiB',
        { method: 'POST', path: `/v1/${keyName}:encrypt`, headers: auth, body: encryptBody, connections: 32 },
      ],
      [
        'decrypt1',
        'decrypt 1 KiB',
        { method: 'POST', path: `/v1/${keyName}:decrypt`, headers: auth, body: decryptBody, connections: 1 },
      ],
      [
        'decrypt32',
        'decrypt 1 KiB',
        { method: 'POST', path: `/v1/${keyName}:decrypt`, headers: auth, body: decryptBody, connections: 32 },
      ],
      [
        'get32',
        'key-admin GET cryptoKey',
        { method: 'GET', path: `/v1/${keyName}`, headers: auth, connections: 32 },
      ],
    ];
    const pick = process.env.BENCH_PICK?.split(',');
    for (const [id, what, spec] of plan) {
      if (pick && !pick.includes(id)) continue;
      log(`${what}, concurrency ${spec.connections}, ${DURATION_S} s …`);
      const r = await measure({ ...base, ...spec });
      results[id] = r;
      rows.push(loadRow(what, r));
    }
    if (!pick || pick.some((id) => id.startsWith('ext-'))) {
      const external = await benchExternal({
        stackUrl: stack.url,
        stackPid: stack.pid,
        ekmAttempts: stack.ekmAttempts,
        stateDir,
        ekmHttpsPort,
        token,
        ring,
        plaintext,
        durationS: EXTERNAL_DURATION_S,
        warmupS: WARMUP_S,
        maxRequests: MAX_REQUESTS,
        pick,
        log,
      });
      for (const m of external) {
        results[m.id] = m.result;
        if (m.ekm) ekmCounts[m.id] = m.ekm;
        rows.push(loadRow(m.what, m.result));
      }
    }
    // HSM keys (SoftHSM2 in this stack's state directory), beside the SOFTWARE rows above.
    const hsm = await hsmRows({
      stackUrl: stack.url,
      stackPid: stack.pid,
      token,
      ring,
      plaintext,
      durationS: DURATION_S,
      warmupS: WARMUP_S,
      maxRequests: MAX_REQUESTS,
      pick,
      log,
    });
    for (const m of hsm) {
      results[m.id] = m.result;
      rows.push(loadRow(m.what, m.result));
    }
  }
  await stack.stop();
  stack = undefined;

  if (ONLY !== 'load') {
    const coldEnv = { ...env, OPENEKM_LOG_LEVEL: 'warn' };
    for (let i = 0; i < COLD_RUNS; i++) {
      log(`cold start ${i + 1}/${COLD_RUNS} …`);
      cold.encrypt.push(
        await coldStartEncrypt({
          port: await freePort(),
          env: coldEnv,
          path: `/v1/${keyName}:encrypt`,
          token,
          body: encryptBody,
        }),
      );
      cold.bare.push(await coldStartBareNode(await freePort()));
    }
    rows.push({
      what: 'cold start: spawn → first encrypt 200',
      conc: '—',
      ops: '—',
      p50: fmtMs(median(cold.encrypt)),
      p99: '—',
      cpu: '—',
      note: `median of ${COLD_RUNS}: ${cold.encrypt.map((x) => x.toFixed(0)).join(', ')} ms`,
    });
    rows.push({
      what: 'baseline: spawn → first 200 of a bare node HTTP server',
      conc: '—',
      ops: '—',
      p50: fmtMs(median(cold.bare)),
      p99: '—',
      cpu: '—',
      note: `median of ${COLD_RUNS}, interleaved with the runs above`,
    });
  }
  // EKM connections: EXTERNAL_VPC vs EXTERNAL and a replica outage (bench/failover.ts), on this run's emulator.
  const failover =
    process.env.BENCH_FAILOVER === '0'
      ? 'EKM connection failover: skipped (BENCH_FAILOVER=0).'
      : (
          await benchFailover({ firestoreHost: emulator.host, log }).catch(
            (err: Error) => `EKM connection failover: benchFailover() failed: ${err.message}`,
          )
        ).trimEnd();
  // EKM quota at saturation, one and two instances (bench/quota.ts), on this run's emulator.
  const quotaSaturation = (
    await benchQuotaSaturation({ firestoreHost: emulator.host, log }).catch(
      (err: Error) => `EKM quota at saturation: benchQuotaSaturation() failed: ${err.message}`,
    )
  ).trimEnd();
  await emulator.stop();
  emulator = undefined;

  // Ratios ---------------------------------------------------------------------------------------------------
  const ratioRows: string[][] = [];
  const e32 = results.encrypt32?.opsPerSec ?? Number.NaN;
  const d32 = results.decrypt32?.opsPerSec ?? Number.NaN;
  const h32 = results.health?.opsPerSec ?? Number.NaN;
  const coldMs = cold.encrypt.length ? median(cold.encrypt) : Number.NaN;
  const verdict = (ok: boolean, known: boolean) => (known ? (ok ? 'meets' : 'MISSES') : '—');
  ratioRows.push([
    'encrypt ops/s @32 / 3,000 target',
    fmtRatio(e32 / TARGET_ENCRYPT_OPS),
    `≥ 1.00 meets the target (${verdict(e32 >= TARGET_ENCRYPT_OPS, Number.isFinite(e32))})`,
  ]);
  ratioRows.push([
    'cold start / 500 ms target',
    fmtRatio(coldMs / TARGET_COLD_START_MS),
    `≤ 1.00 meets the target (${verdict(coldMs <= TARGET_COLD_START_MS, Number.isFinite(coldMs))})`,
  ]);
  ratioRows.push([
    'cold start / bare node HTTP server start',
    fmtRatio(coldMs / median(cold.bare)),
    'baseline in this run: how many bare Node process starts a cold encrypt function costs',
  ]);
  ratioRows.push([
    'encrypt ops/s @32 / GET /health ops/s @32',
    fmtRatio(e32 / h32),
    'baseline in this run: share of the bare HTTP+framework rate left after auth, cache, crypto',
  ]);
  ratioRows.push(['decrypt ops/s @32 / GET /health ops/s @32', fmtRatio(d32 / h32), 'same, for decrypt']);
  const e32Cpu = results.encrypt32?.serverCpuMsPerRequest ?? Number.NaN;
  const h32Cpu = results.health?.serverCpuMsPerRequest ?? Number.NaN;
  ratioRows.push([
    'encrypt CPU-bound capacity / 3,000 target',
    fmtRatio(1000 / e32Cpu / TARGET_ENCRYPT_OPS),
    `1000 / stack CPU ms per encrypt = ${fmtOps(1000 / e32Cpu)} ops/s per fully available core; less sensitive to a busy machine than ops/s`,
  ]);
  ratioRows.push([
    'encrypt CPU/req / GET /health CPU/req',
    fmtRatio(e32Cpu / h32Cpu),
    'what an encrypt costs the stack process, in /health requests',
  ]);
  ratioRows.push([
    'target-equivalent /health rate',
    fmtOps(TARGET_ENCRYPT_OPS / (e32 / h32)),
    'the /health ops/s a machine needs for this encrypt/health ratio to reach 3,000 encrypt ops/s',
  ]);

  const externalRatioRows = externalRatios(results, ekmCounts, fmtRatio, fmtMs);

  // Output ---------------------------------------------------------------------------------------------------
  const headers = ['measurement', 'conc', 'ops/s', 'p50 ms', 'p99 ms', 'stack CPU µs/req', 'notes'];
  const cells = rows.map((r) => [r.what, r.conc, r.ops, r.p50, r.p99, r.cpu, r.note]);
  const ratioHeaders = ['ratio', 'value', 'how to read it'];
  const referenceEkm = await referenceEkmSection().catch(
    (err: Error) => `Reference EKM: benchReferenceEkm() failed: ${err.message}`,
  );
  if (process.env.BENCH_ACCESS !== '0') log('access cost (identity, IAM, EKM quota), in process …');
  const accessCost =
    process.env.BENCH_ACCESS === '0'
      ? 'Access cost: skipped (BENCH_ACCESS=0).'
      : (
          await benchAccessCost().catch(
            (err: Error) => `Access cost: benchAccessCost() failed: ${err.message}`,
          )
        ).trimEnd();

  // The overload rows refuse by design (503 with RetryInfo); every other row must have no failure.
  const failed = Object.entries(results).some(
    ([id, r]) => !id.endsWith(`encrypt${OVERLOAD_CONNECTIONS}`) && r.non2xx + r.errors > 0,
  );
  const text = [
    `OpenEKM bench — ${startedAt.toISOString()}`,
    `machine: ${machine}`,
    `stack: compiled local stack (dist/scripts/stack.js) in a child process, OPENEKM_LOG_LEVEL=warn, Firestore emulator; load by autocannon on 127.0.0.1, ${DURATION_S} s per measurement after ${WARMUP_S} s warm-up, ${PLAINTEXT_BYTES} B plaintext`,
    '',
    textTable(headers, cells),
    '',
    textTable(ratioHeaders, ratioRows),
    '',
    'EXTERNAL keys: gateway vs the same reference EKM called directly',
    textTable(ratioHeaders, externalRatioRows),
    ...(failed ? ['', 'WARNING: some requests failed; the figures above are not valid.'] : []),
    '',
    referenceEkm,
    '',
    accessCost,
    '',
    failover,
    '',
    quotaSaturation,
    '',
  ].join('\n');
  process.stdout.write(text);

  const md = [
    `# OpenEKM bench — ${startedAt.toISOString()}`,
    '',
    `- machine: ${machine}`,
    `- stack: compiled local stack (\`dist/scripts/stack.js\`) in a child process, \`OPENEKM_LOG_LEVEL=warn\`, Firestore emulator`,
    `- load: autocannon on 127.0.0.1, ${DURATION_S} s per measurement after ${WARMUP_S} s warm-up, ${PLAINTEXT_BYTES} B plaintext`,
    '- command: `npm run bench`',
    '',
    mdTable(headers, cells),
    '',
    mdTable(ratioHeaders, ratioRows),
    '',
    '## EXTERNAL keys: gateway vs the same reference EKM called directly',
    '',
    mdTable(ratioHeaders, externalRatioRows),
    ...(failed ? ['', '**WARNING: some requests failed; the figures above are not valid.**'] : []),
    '',
    '## Reference EKM',
    '',
    referenceEkm,
    '',
    '## Access cost: identity, IAM, EKM quota',
    '',
    accessCost,
    '',
    '## EKM connections: EXTERNAL_VPC vs EXTERNAL, and a replica outage',
    '',
    failover,
    '',
    '## EKM quota at saturation',
    '',
    quotaSaturation,
    '',
  ].join('\n');
  const outDir = join(ROOT, 'bench', 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'latest.md'), md);
  log(`written bench/results/latest.md`);
}

try {
  await main();
  await cleanup();
} catch (err) {
  if (!interrupted) process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  await cleanup();
  process.exitCode = 1;
}
