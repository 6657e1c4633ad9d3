/**
 * What the EKM quota costs per EKM request, against a real Firestore emulator: the lease transaction, the
 * amortised cost per request at Cloud EKM's default (100/s, leases of 5), the local spending cost once a lease is
 * held, and two instances sharing one budget (how many requests each second admits, and how many tokens go
 * unused). Time is a fake clock stepped per simulated second, so the figures are the quota's own cost, not waits;
 * "µs in take()" is the time a request spends getting its unit (the overhead the quota adds to it).
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

const store = new FirestoreStore({ projectId: `bench-quota-${randomBytes(4).toString('hex')}` });
const rows: string[][] = [];
let clock = Math.ceil(Date.now() / 1000) * 1000;
const now = () => new Date(clock);
const quota = (c: Partial<EkmQuotaConfig>) =>
  new EkmQuota(store, now, { enabled: true, default: 100, projects: {}, shards: 4, leaseSize: 0, ...c });

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
          await q.take('projects/bench/locations/us-east1/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1');
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

// Warm the client (channel set-up) outside the measurements.
await measure('warm-up', 1, 10, [quota({ leaseSize: 1 })]);
rows.length = 0;
await measure('every request leases (leaseSize 1), sequential', 3, 100, [quota({ leaseSize: 1 })]);
await measure('default: 100/s, leases of 5, sequential', 20, 100, [quota({})]);
await measure('default: 100/s, leases of 5, 32 concurrent', 20, 100, [quota({})], 32);
await measure('default, 8 concurrent, each holding a 25 ms EKM call', 10, 100, [quota({})], 8, 25);
await measure('local spending: 1,000,000/s, leases of 50,000', 2, 200_000, [quota({ default: 1_000_000 })]);
await measure('two instances, 100/s, offered 300/s, 16 concurrent each', 10, 300, [quota({}), quota({})], 16);

process.stdout.write(
  [
    '| scenario | instances | concurrency | requests | admitted | refused | take() per s | µs in take() per request |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n'),
);
await store.close();
await emulator?.stop();
