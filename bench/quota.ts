/**
 * What the EKM quota costs per EKM request, against a real Firestore emulator, and whether it holds its bounds
 * under contention.
 *
 * Part 1, fake clock (stepped per simulated second, so the figures are the quota's own cost, not waits): a lease
 * per request, Cloud EKM's default (100/s) sequential and 32 concurrent, the local spending cost once a lease is
 * held, and two instances sharing one budget.
 *
 * Part 2, real time: one or two quota instances (two gateway instances' worth of EkmQuota on one Firestore),
 * each with 32 concurrent callers that take a unit and then hold it for BENCH_QUOTA_HOLD_MS (default 10, a
 * stand-in for the EKM call), for BENCH_QUOTA_SECONDS (default 5) each: once with a quota far above the demand
 * (nothing may be refused; also with leases of at least 50 tokens, the set-up in which the lease transactions
 * this design replaced stalled 2–4 s) and with quotas far below it. Reported: admitted per second (mean, and the
 * largest count in one second of the clock), refusals (budget spent / no lease within the 100 ms bound), p50 /
 * p99 / max of the time in take(), and the most Firestore writes one shard document received (each document
 * lives for one second).
 *
 * Part 3, saturation (`benchQuotaSaturation()`, also part of `npm run bench`): one and then two quota instances,
 * each in its own worker thread with its own Firestore client and event loop, as two gateway instances are. Each
 * has 32 callers that never stop asking, and each call costs the instance's event loop what a gateway request
 * costs (CPU for the HTTP request and, when admitted, for the EKM call, plus the EKM's round trip), so the leases
 * compete with the requests for the event loop as they do in a busy gateway. Reported: admitted per second
 * against the configured rate, and the p99 of the time a request spent in take() against maxWait. Knobs:
 * BENCH_QUOTA_SATURATION_S (measured seconds, default 5, after one of ramp-up) and BENCH_QUOTA_SATURATION_CPU_MS
 * (CPU per request before take(), default 1).
 *
 *   npx tsx bench/quota.ts        (starts an emulator unless FIRESTORE_EMULATOR_HOST is set)
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { startFirestoreEmulator } from '../scripts/lib/firestore-emulator.js';
import { EkmQuota, type EkmQuotaConfig, QUOTA_MAX_WAIT_MS } from '../shared/quota/ekm-quota.js';
import { FirestoreStore } from '../shared/store/firestore.js';

async function main(): Promise<void> {
  const emulator = process.env.FIRESTORE_EMULATOR_HOST ? undefined : await startFirestoreEmulator();
  if (emulator) process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  process.env.METADATA_SERVER_DETECTION = 'none';

  const HOLD_MS = Number(process.env.BENCH_QUOTA_HOLD_MS ?? 10);
  const SECONDS = Number(process.env.BENCH_QUOTA_SECONDS ?? 5);
  const RESOURCE = 'projects/bench/locations/us-east1/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1';

  const store = new FirestoreStore({ projectId: `bench-quota-${randomBytes(4).toString('hex')}` });
  const rows: string[][] = [];
  let clock = Math.ceil(Date.now() / 1000) * 1000;
  const fake = () => new Date(clock);
  const config = (c: Partial<EkmQuotaConfig>): EkmQuotaConfig => ({
    enabled: true,
    default: 100,
    projects: {},
    shards: 4,
    leaseSize: 0,
    ...c,
  });
  const quota = (c: Partial<EkmQuotaConfig>) => new EkmQuota(store, fake, config(c));

  async function measure(
    name: string,
    seconds: number,
    perSecond: number,
    instances: EkmQuota[],
    concurrency = 1,
    ekmMs = 0,
  ): Promise<void> {
    let inTake = 0;
    let admitted = 0;
    let refused = 0;
    const started = performance.now();
    for (let s = 0; s < seconds; s++) {
      clock += 1000;
      let next = 0;
      const worker = async (q: EkmQuota) => {
        while (next++ < perSecond) {
          const t = performance.now();
          try {
            await q.take(RESOURCE);
            inTake += performance.now() - t;
            admitted++;
            if (ekmMs > 0) await sleep(ekmMs);
          } catch {
            inTake += performance.now() - t;
            refused++;
          }
        }
      };
      await Promise.all(instances.flatMap((q) => Array.from({ length: concurrency }, () => worker(q))));
    }
    const ms = performance.now() - started;
    const requests = admitted + refused;
    rows.push([
      name,
      String(instances.length),
      String(concurrency),
      String(requests),
      `${admitted} (${(admitted / seconds).toFixed(1)}/s)`,
      String(refused),
      Math.round((requests / ms) * 1000).toLocaleString('en'),
      ((inTake * 1000) / requests).toFixed(1),
    ]);
  }

  const realRows: string[][] = [];

  /** Real time: `instances` quotas, 32 concurrent callers each, for SECONDS whole seconds of the clock. */
  async function realTime(name: string, limit: number, instances: number, leaseSize = 0): Promise<void> {
    const project = `rt-${randomBytes(3).toString('hex')}`;
    const cfg = config({ default: limit, leaseSize });
    const quotas = Array.from({ length: instances }, () => new EkmQuota(store, () => new Date(), cfg));
    const resource = RESOURCE.replace('projects/bench', `projects/${project}`);
    // Start on a second boundary, after one unit per instance (client channels, first lease) outside the figures.
    for (const q of quotas) await q.take(resource).catch(() => undefined);
    await sleep(1000 - (Date.now() % 1000));
    const first = Math.floor(Date.now() / 1000);
    const end = (first + SECONDS) * 1000;
    const times: number[] = [];
    const perSecond = new Map<number, number>();
    let spent = 0;
    let late = 0;
    const worker = async (q: EkmQuota) => {
      while (Date.now() < end) {
        const t = performance.now();
        try {
          await q.take(resource);
          times.push(performance.now() - t);
          const s = Math.floor(Date.now() / 1000);
          perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
          await sleep(HOLD_MS);
        } catch (err) {
          times.push(performance.now() - t);
          if (/not granted in time/.test((err as Error).message)) late++;
          else spent++;
          await sleep(HOLD_MS);
        }
      }
    };
    await Promise.all(quotas.flatMap((q) => Array.from({ length: 32 }, () => worker(q))));
    for (const q of quotas) await q.settled();
    // Admissions counted by the second they were granted in; a take() that began in the last second and ended after
    // it is left out of the per-second maximum's window but in the mean.
    const admitted = [...perSecond.values()].reduce((a, b) => a + b, 0);
    const writes = new Map<string, number>();
    for (const q of quotas) {
      for (const [path, n] of q.stats.writesPerDoc)
        if (path.includes(`:${project}:`)) writes.set(path, (writes.get(path) ?? 0) + n);
    }
    const leases = quotas.reduce((a, q) => a + q.stats.leases, 0);
    times.sort((a, b) => a - b);
    const pct = (p: number) =>
      (times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? 0).toFixed(1);
    realRows.push([
      name,
      String(instances),
      String(limit),
      (admitted / SECONDS).toFixed(1),
      String(Math.max(...[...perSecond.entries()].filter(([s]) => s < first + SECONDS).map(([, n]) => n))),
      `${spent} / ${late}`,
      `${pct(0.5)} / ${pct(0.99)} / ${(times.at(-1) ?? 0).toFixed(1)}`,
      (leases / SECONDS).toFixed(1),
      String(Math.max(0, ...writes.values())),
    ]);
  }

  // Warm the client (channel set-up) outside the measurements.
  await measure('warm-up', 1, 10, [quota({ leaseSize: 1 })]);
  rows.length = 0;
  await measure('leaseSize 1 (leases still sized from demand), sequential', 3, 100, [
    quota({ leaseSize: 1 }),
  ]);
  await measure('default: 100/s, leases of 5, sequential', 20, 100, [quota({})]);
  await measure('default: 100/s, 32 concurrent', 20, 100, [quota({})], 32);
  await measure('default, 8 concurrent, each holding a 25 ms EKM call', 10, 100, [quota({})], 8, 25);
  await measure('local spending: 1,000,000/s, leases of 50,000', 2, 200_000, [quota({ default: 1_000_000 })]);
  await measure(
    'two instances, 100/s, offered 300/s, 16 concurrent each',
    10,
    300,
    [quota({}), quota({})],
    16,
  );

  await realTime('far above demand', 100_000, 1);
  await realTime('far above demand', 100_000, 2);
  await realTime('far above demand, leases of at least 50 (as in the test)', 100_000, 2, 50);
  await realTime('Cloud EKM default, overloaded', 100, 2);
  await realTime('20/s, overloaded', 20, 2);

  process.stdout.write(
    [
      'Fake clock:',
      '',
      '| scenario | instances | concurrency | requests | admitted | refused | take() per s | µs in take() per request |',
      '|---|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      `Real time, 32 concurrent callers per instance, each holding a unit ${HOLD_MS} ms, ${SECONDS} s:`,
      '',
      '| scenario | instances | quota/s | admitted/s (mean) | admitted in the busiest second | refused: spent / not in time | ms in take(): p50 / p99 / max | leases/s | most writes to one shard document |',
      '|---|---|---|---|---|---|---|---|---|',
      ...realRows.map((r) => `| ${r.join(' | ')} |`),
      '',
    ].join('\n'),
  );
  process.stdout.write(
    `\n${await benchQuotaSaturation({ firestoreHost: process.env.FIRESTORE_EMULATOR_HOST })}\n`,
  );
  await store.close();
  await emulator?.stop();
}

// ---------------------------------------------------------------------------------------------------------------
// Part 3: saturation, one quota instance per worker thread

interface SaturationSpec {
  quotaSaturation: true;
  firestoreHost: string;
  projectId: string;
  resource: string;
  limit: number;
  /** Epoch ms (a whole second) at which the callers start, and how many seconds are measured after a first one. */
  startAt: number;
  seconds: number;
  callers: number;
  /** CPU a request costs the instance before take() (HTTP, token, IAM), and after it when admitted (the EKM call). */
  requestCpuMs: number;
  ekmCpuMs: number;
  /** The EKM's round trip, waited (not CPU). */
  ekmMs: number;
}

interface SaturationResult {
  admittedAt: number[];
  waits: number[];
  refusedSpent: number;
  refusedLate: number;
  leases: number;
}

const SATURATION_CALLERS = 32;
const SATURATION_REQUEST_CPU_MS = Number(process.env.BENCH_QUOTA_SATURATION_CPU_MS ?? 1);
const SATURATION_EKM_CPU_MS = 1.5;
const SATURATION_EKM_MS = 5;

function burn(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // CPU a gateway request would spend
  }
}

async function saturationInstance(spec: SaturationSpec): Promise<void> {
  process.env.FIRESTORE_EMULATOR_HOST = spec.firestoreHost;
  process.env.METADATA_SERVER_DETECTION = 'none';
  const store = new FirestoreStore({ projectId: spec.projectId });
  const quota = new EkmQuota(store, () => new Date(), {
    enabled: true,
    default: spec.limit,
    projects: {},
    shards: 4,
    leaseSize: 0,
  });
  // Client channel and first lease outside the figures.
  await quota.take(spec.resource).catch(() => undefined);
  parentPort!.postMessage({ type: 'ready' });
  await sleep(Math.max(0, spec.startAt - Date.now()));
  // One second of ramp-up (the first leases, demand not yet known) before the measured seconds.
  const from = spec.startAt + 1000;
  const end = from + spec.seconds * 1000;
  const out: SaturationResult = { admittedAt: [], waits: [], refusedSpent: 0, refusedLate: 0, leases: 0 };
  // Every CPU burst runs in its own turn of the event loop (as a request's work does), never in the microtask
  // continuation of another caller's take(): the admission times below are then the times of the decisions.
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const caller = async () => {
    while (Date.now() < end) {
      await turn();
      burn(spec.requestCpuMs);
      const t = performance.now();
      try {
        await quota.take(spec.resource);
        if (Date.now() >= from) out.waits.push(performance.now() - t);
        out.admittedAt.push(Date.now());
        await turn();
        burn(spec.ekmCpuMs);
        await sleep(spec.ekmMs);
      } catch (err) {
        if (Date.now() < from) continue;
        out.waits.push(performance.now() - t);
        if (/not granted in time/.test((err as Error).message)) out.refusedLate++;
        else out.refusedSpent++;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.callers }, caller));
  await quota.settled();
  out.leases = quota.stats.leases;
  await store.close();
  parentPort!.postMessage({ type: 'result', result: out });
}

async function saturationRun(
  firestoreHost: string,
  instances: number,
  limit: number,
  seconds: number,
): Promise<{ results: SaturationResult[]; first: number }> {
  const projectId = `bench-sat-${randomBytes(4).toString('hex')}`;
  const resource = `projects/sat-${randomBytes(3).toString('hex')}/locations/us-east1/keyRings/r/cryptoKeys/k`;
  // tsx's loader has to be registered in the worker before this file (TypeScript) is imported there.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const src = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const startAt = (Math.floor(Date.now() / 1000) + 4) * 1000;
  const workers = Array.from(
    { length: instances },
    () =>
      new Worker(src, {
        eval: true,
        workerData: {
          quotaSaturation: true,
          firestoreHost,
          projectId,
          resource,
          limit,
          startAt,
          seconds,
          callers: SATURATION_CALLERS,
          requestCpuMs: SATURATION_REQUEST_CPU_MS,
          ekmCpuMs: SATURATION_EKM_CPU_MS,
          ekmMs: SATURATION_EKM_MS,
        } satisfies SaturationSpec,
      }),
  );
  try {
    const results = await Promise.all(
      workers.map(
        (w) =>
          new Promise<SaturationResult>((resolve, reject) => {
            w.on('message', (m: { type: string; result?: SaturationResult }) => {
              if (m.type === 'result') resolve(m.result!);
            });
            w.once('error', reject);
            w.once('exit', (code) =>
              reject(new Error(`a quota worker exited (code ${code}) without a result`)),
            );
          }),
      ),
    );
    return { results, first: startAt / 1000 + 1 };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * The quota at saturation, one instance and two sharing one Firestore: admitted per second against the configured
 * rate, and the p99 time in take() against maxWait. Starts its own emulator unless given one.
 */
export async function benchQuotaSaturation(
  options: { firestoreHost?: string; log?: (line: string) => void } = {},
): Promise<string> {
  const seconds = Number(process.env.BENCH_QUOTA_SATURATION_S ?? 5);
  const limit = 100;
  const emulator = options.firestoreHost ? undefined : await startFirestoreEmulator();
  const host = options.firestoreHost ?? emulator!.host;
  const lines: string[][] = [];
  const load = loadavg()[0]!.toFixed(2);
  try {
    for (const instances of [1, 2]) {
      options.log?.(`EKM quota at saturation, ${instances} instance(s), ${seconds} s …`);
      const { results, first } = await saturationRun(host, instances, limit, seconds);
      const perSecond = new Map<number, number>();
      for (const r of results)
        for (const at of r.admittedAt) {
          const s = Math.floor(at / 1000);
          if (s >= first && s < first + seconds) perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
        }
      const admitted = [...perSecond.values()].reduce((a, b) => a + b, 0) / seconds;
      const busiest = Math.max(0, ...perSecond.values());
      const waits = results.flatMap((r) => r.waits).sort((a, b) => a - b);
      const p99 = waits[Math.min(waits.length - 1, Math.floor(0.99 * waits.length))] ?? Number.NaN;
      const spent = results.reduce((a, r) => a + r.refusedSpent, 0);
      const late = results.reduce((a, r) => a + r.refusedLate, 0);
      const leases = results.reduce((a, r) => a + r.leases, 0);
      lines.push([
        String(instances),
        `${admitted.toFixed(1)} / ${limit}`,
        (admitted / limit).toFixed(2),
        `${busiest}`,
        `${p99.toFixed(1)} / ${QUOTA_MAX_WAIT_MS}`,
        (p99 / QUOTA_MAX_WAIT_MS).toFixed(2),
        `${spent} / ${late}`,
        (leases / seconds).toFixed(1),
      ]);
    }
  } finally {
    await emulator?.stop();
  }
  return [
    `EKM quota at saturation: ${limit}/s (the default), ${SATURATION_CALLERS} callers per instance that never stop, each request costing its instance ${SATURATION_REQUEST_CPU_MS} ms of CPU, plus ${SATURATION_EKM_CPU_MS} ms of CPU and a ${SATURATION_EKM_MS} ms EKM round trip when admitted; ${seconds} s; each instance a worker thread with its own Firestore client; load average ${load} at the start. Targets: admitted/configured ≥ 0.95, p99 in take() / maxWait ≤ 1.00, and never more than ${limit} in one second.`,
    '',
    '| instances | admitted/s / configured | ratio | most admitted in one second | p99 ms in take() / maxWait | ratio | refused: spent / not in time | leases/s |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...lines.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

if (!isMainThread && (workerData as { quotaSaturation?: boolean } | null)?.quotaSaturation) {
  await saturationInstance(workerData as SaturationSpec);
} else if (isMainThread && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
