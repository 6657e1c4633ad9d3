/**
 * HSM rows of the benchmarks: encrypt and decrypt of 1 KiB through the full HTTP stack with an HSM key (SoftHSM2
 * through PKCS#11) and with a SOFTWARE key, at concurrency 1 and 32, in one run, with the HSM / SOFTWARE ratio
 * of each pair. SoftHSM2 is software: the numbers measure OpenEKM's PKCS#11 path (token threads, sessions,
 * AES-GCM in the token), not a hardware HSM's speed.
 *
 *   npx tsx bench/hsm.ts        builds, starts its own Firestore emulator and the compiled local stack (which
 *                               makes the SoftHSM2 token in its state directory), measures, stops everything
 *
 * benchHsm() measures against a stack that is already running. `npm run bench` (bench/run.ts) calls hsmRows(),
 * whose HSM rows it shows beside its SOFTWARE rows; BENCH_HSM=0 skips them.
 * Knobs: BENCH_DURATION_S (default 6), BENCH_WARMUP_S (default 1), BENCH_SKIP_BUILD=1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, type RunningEmulator, startFirestoreEmulator } from '../scripts/lib/firestore-emulator.js';
import { findSoftHsm, localGatewayEnv, mintLocalToken } from '../scripts/lib/local-state.js';
import { api, build, type LoadResult, measure, type RunningStack, startStack, stopAll } from './gateway.js';

export interface HsmMeasurement {
  id: string;
  what: string;
  result: LoadResult;
}

export interface HsmBenchOptions {
  stackUrl: string;
  stackPid: number;
  token: string;
  /** A key ring (resource name) that exists; the HSM and SOFTWARE keys are made in it. */
  ring: string;
  /** base64 plaintext to encrypt. */
  plaintext: string;
  durationS: number;
  warmupS: number;
  maxRequests: number;
  log: (line: string) => void;
}

/** Measurement ids: hsm-{hsm|software}-{encrypt|decrypt}{1|32}. */
export async function benchHsm(o: HsmBenchOptions): Promise<HsmMeasurement[]> {
  const suffix = Date.now().toString(36);
  const keys: Record<'hsm' | 'software', string> = {
    hsm: `${o.ring}/cryptoKeys/hsm-${suffix}`,
    software: `${o.ring}/cryptoKeys/sw-${suffix}`,
  };
  const bodies: Record<string, string> = {};
  for (const level of ['hsm', 'software'] as const) {
    const name = keys[level];
    await api(o.stackUrl, 'POST', `/v1/${o.ring}/cryptoKeys?cryptoKeyId=${name.split('/').pop()}`, o.token, {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: level.toUpperCase() },
    });
    const enc = await api(o.stackUrl, 'POST', `/v1/${name}:encrypt`, o.token, { plaintext: o.plaintext });
    if (enc.protectionLevel !== level.toUpperCase()) throw new Error(`${name} did not encrypt at ${level}`);
    const dec = await api(o.stackUrl, 'POST', `/v1/${name}:decrypt`, o.token, { ciphertext: enc.ciphertext });
    if (dec.plaintext !== o.plaintext) throw new Error(`the ${level} setup round trip failed`);
    bodies[`${level}-encrypt`] = JSON.stringify({ plaintext: o.plaintext });
    bodies[`${level}-decrypt`] = JSON.stringify({ ciphertext: enc.ciphertext });
  }
  const headers = { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' };
  const out: HsmMeasurement[] = [];
  for (const op of ['encrypt', 'decrypt'] as const) {
    for (const connections of [1, 32]) {
      // SOFTWARE and HSM back to back, so each ratio compares measurements taken under the same machine load.
      for (const level of ['software', 'hsm'] as const) {
        const what = `${level === 'hsm' ? 'HSM (SoftHSM2)' : 'SOFTWARE'} ${op} 1 KiB`;
        o.log(`${what}, concurrency ${connections}, ${o.durationS} s …`);
        const result = await measure({
          url: o.stackUrl,
          method: 'POST',
          path: `/v1/${keys[level]}:${op}`,
          headers,
          body: bodies[`${level}-${op}`],
          connections,
          durationS: o.durationS,
          warmupS: o.warmupS,
          maxRequests: o.maxRequests,
          serverPid: o.stackPid,
        });
        out.push({ id: `hsm-${level}-${op}${connections}`, what, result });
      }
    }
  }
  return out;
}

/**
 * The HSM rows of `npm run bench`: HSM (SoftHSM2) encrypt and decrypt of 1 KiB at concurrency 1 and 32 on the
 * run's stack (which has a SoftHSM2 token when SoftHSM2 is installed). Each is measured right after the same
 * SOFTWARE measurement, so that its ratio (in the row's name) compares figures taken under the same machine load;
 * those SOFTWARE figures are not rows (the run has its own). None with BENCH_HSM=0, without SoftHSM2, or when
 * BENCH_PICK names no hsm-* measurement.
 */
export async function hsmRows(o: HsmBenchOptions & { pick?: string[] }): Promise<HsmMeasurement[]> {
  if (process.env.BENCH_HSM === '0') {
    o.log('HSM rows skipped (BENCH_HSM=0)');
    return [];
  }
  if (!findSoftHsm()) {
    o.log('HSM rows skipped: SoftHSM2 is not installed (apt-get install softhsm2)');
    return [];
  }
  if (o.pick && !o.pick.some((id) => id.startsWith('hsm-'))) return [];
  const measured = await benchHsm(o);
  const by = new Map(measured.map((m) => [m.id, m.result]));
  return measured
    .filter((m) => m.id.startsWith('hsm-hsm-') && (!o.pick || o.pick.includes(m.id)))
    .map((m) => {
      const sw = by.get(m.id.replace('hsm-hsm-', 'hsm-software-'))?.opsPerSec;
      const ratio = sw ? ` (${(m.result.opsPerSec / sw).toFixed(2)}× SOFTWARE back to back)` : '';
      return { ...m, what: `${m.what}${ratio}` };
    });
}

/** The table: one row per measurement, and the HSM / SOFTWARE throughput ratio on each HSM row. */
export function hsmReport(measurements: HsmMeasurement[]): string {
  const by = new Map(measurements.map((m) => [m.id, m.result]));
  const lines = [
    'HSM (PKCS#11, SoftHSM2) vs SOFTWARE, 1 KiB, through the full HTTP stack',
    '| measurement | conc | ops/s | p50 ms | p99 ms | errors | HSM / SOFTWARE ops/s |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const m of measurements) {
    const r = m.result;
    let ratio = '';
    if (m.id.startsWith('hsm-hsm-')) {
      const sw = by.get(m.id.replace('hsm-hsm-', 'hsm-software-'));
      if (sw && sw.opsPerSec > 0) ratio = (r.opsPerSec / sw.opsPerSec).toFixed(2);
    }
    lines.push(
      `| ${m.what} | ${r.connections} | ${r.opsPerSec.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.non2xx + r.errors} | ${ratio} |`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Standalone: npx tsx bench/hsm.ts

async function main(): Promise<void> {
  const log = (line: string) => process.stderr.write(`[bench:hsm] ${line}\n`);
  if (!findSoftHsm()) {
    process.stdout.write('HSM bench skipped: SoftHSM2 is not installed (apt-get install softhsm2).\n');
    return;
  }
  process.env.METADATA_SERVER_DETECTION = 'none';
  let emulator: RunningEmulator | undefined;
  let stack: RunningStack | undefined;
  const stateDir = await mkdtemp(join(tmpdir(), 'openekm-bench-hsm-'));
  const cleanup = async () => {
    await stack?.stop().catch(() => undefined);
    await stopAll().catch(() => undefined);
    await emulator?.stop().catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true }).catch(() => undefined);
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    if (process.env.BENCH_SKIP_BUILD !== '1') {
      log('building (npm run build) …');
      await build();
    }
    log('starting the Firestore emulator …');
    emulator = await startFirestoreEmulator();
    const env = {
      ...(await localGatewayEnv(emulator.host, stateDir)),
      OPENEKM_STATE_DIR: stateDir,
      METADATA_SERVER_DETECTION: 'none',
      OPENEKM_LOG_LEVEL: 'warn',
      OPENEKM_EKM_HTTP_PORT: String(await freePort()),
      OPENEKM_EKM_HTTPS_PORT: String(await freePort()),
    };
    const port = await freePort();
    log(`starting the compiled local stack on 127.0.0.1:${port} …`);
    stack = await startStack({ port, firestoreHost: emulator.host, env, nodeArgs: ['--enable-source-maps'] });
    const token = await mintLocalToken({ dir: stateDir, ttlSeconds: 3600 });
    const ring = `projects/bench/locations/us-east1/keyRings/hsm-${Date.now()}`;
    await api(
      stack.url,
      'POST',
      `/v1/projects/bench/locations/us-east1/keyRings?keyRingId=${ring.split('/').pop()}`,
      token,
      {},
    );
    const measurements = await benchHsm({
      stackUrl: stack.url,
      stackPid: stack.pid,
      token,
      ring,
      plaintext: Buffer.alloc(1024, 0x5a).toString('base64'),
      durationS: Number(process.env.BENCH_DURATION_S ?? 6),
      warmupS: Number(process.env.BENCH_WARMUP_S ?? 1),
      maxRequests: 200_000,
      log,
    });
    process.stdout.write(`${hsmReport(measurements)}\n`);
  } finally {
    await cleanup();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`HSM bench failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
