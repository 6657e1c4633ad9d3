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
 *   npx tsx bench/quota.ts        (starts an emulator unless FIRESTORE_EMULATOR_HOST is set)
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFirestoreEmulator } from '../scripts/lib/firestore-emulator.js';
import { EkmQuota, type EkmQuotaConfig } from '../shared/quota/ekm-quota.js';
import { FirestoreStore } from '../shared/store/firestore.js';

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
await measure('leaseSize 1 (leases still sized from demand), sequential', 3, 100, [quota({ leaseSize: 1 })]);
await measure('default: 100/s, leases of 5, sequential', 20, 100, [quota({})]);
await measure('default: 100/s, 32 concurrent', 20, 100, [quota({})], 32);
await measure('default, 8 concurrent, each holding a 25 ms EKM call', 10, 100, [quota({})], 8, 25);
await measure('local spending: 1,000,000/s, leases of 50,000', 2, 200_000, [quota({ default: 1_000_000 })]);
await measure('two instances, 100/s, offered 300/s, 16 concurrent each', 10, 300, [quota({}), quota({})], 16);

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
await store.close();
await emulator?.stop();
