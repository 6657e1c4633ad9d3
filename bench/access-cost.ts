/**
 * What identity checks, IAM and the EKM quota cost per request, with versus without, in one run and one process:
 * `gateway.handle('encrypt', …)` called directly (no HTTP), SOFTWARE and EXTERNAL encrypt of 1 KiB, against a
 * Firestore emulator and (for EXTERNAL) an in-process reference EKM on 127.0.0.1.
 *
 * Variants are run in rounds, each round running every variant once in a rotated order, and the per-request
 * figures are the median over rounds, so machine noise hits all variants alike. "Without" variants are made by
 * shadowing a method on the bench's own Gateway instance (`authorizer.authorize`, the token verifier's `verify`);
 * production code is unchanged. CPU is process.cpuUsage() of this process (the emulator is a separate process;
 * the reference EKM runs in this process, so EXTERNAL CPU includes the EKM's side).
 *
 *   npx tsx bench/access-cost.ts      (also part of `npm run bench`; BENCH_ACCESS=0 skips it there)
 *
 * Knobs: BENCH_ACCESS_N (requests per variant per round, default 1000; EXTERNAL uses a quarter),
 * BENCH_ACCESS_ROUNDS (default 5).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type RunningEmulator, startFirestoreEmulator } from '../scripts/lib/firestore-emulator.js';
import { type LocalEkm, startLocalEkm } from '../scripts/lib/local-ekm.js';
import { LOCAL_OWNER, localGatewayEnv, mintLocalToken } from '../scripts/lib/local-state.js';
import type { Caller } from '../shared/access/identity.js';
import { type ApiRequest, Gateway } from '../shared/api/gateway.js';
import type { FunctionName } from '../shared/api/routes.js';
import { loadConfig } from '../shared/config.js';
import { createLogger } from '../shared/log.js';

const N = Number(process.env.BENCH_ACCESS_N ?? 1000);
const ROUNDS = Number(process.env.BENCH_ACCESS_ROUNDS ?? 5);
const CONCURRENCY = 32;
const PLAINTEXT = Buffer.alloc(1024, 0x5a).toString('base64');
const POLICY_USER = 'user:alice@example.com';

interface Variant {
  id: string;
  what: string;
  n: number;
  /** Runs before/after each measurement of this variant (switching things off and on again). */
  before?: () => void;
  after?: () => void;
  request: (i: number) => ApiRequest;
  gateway: Gateway;
}

interface Sample {
  cpuUs: number;
  wallUs: number;
}

function request(path: string, token: string, body: unknown): ApiRequest {
  return {
    method: 'POST',
    path,
    query: new URLSearchParams(),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(body)),
    remoteAddress: '127.0.0.1',
  };
}

async function call(
  gw: Gateway,
  fn: FunctionName,
  path: string,
  token: string,
  body: unknown,
): Promise<void> {
  const [p, q] = path.split('?');
  const res = await gw.handle(fn, { ...request(p!, token, body), query: new URLSearchParams(q ?? '') });
  if (res.status !== 200) throw new Error(`${fn} ${path}: ${res.status} ${res.body}`);
}

/**
 * EKM quota refusals seen per variant (429 RESOURCE_EXHAUSTED: the quota here is far above the demand, so these
 * are requests for which no lease arrived within the quota's wait bound). Reported, not fatal.
 */
const quotaRefusals = new Map<string, number>();

/**
 * Runs `n` requests of `v`, `conc` at a time; per-request CPU and wall µs. Throws on any non-200 but a quota
 * refusal (counted in quotaRefusals).
 */
async function run(v: Variant, conc: number, offset: number): Promise<Sample> {
  v.before?.();
  try {
    let next = 0;
    let failed = '';
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const worker = async () => {
      while (next < v.n) {
        const i = next++;
        const res = await v.gateway.handle('encrypt', v.request(offset + i));
        if (res.status === 429 && res.body.includes('RESOURCE_EXHAUSTED')) {
          quotaRefusals.set(v.id, (quotaRefusals.get(v.id) ?? 0) + 1);
        } else if (res.status !== 200) failed ||= `${res.status} ${res.body.slice(0, 300)}`;
      }
    };
    await Promise.all(Array.from({ length: conc }, worker));
    const wallUs = (performance.now() - t0) * 1000;
    const cpu = process.cpuUsage(cpu0);
    if (failed) throw new Error(`${v.id}: a request failed: ${failed}`);
    return { cpuUs: (cpu.user + cpu.system) / v.n, wallUs: wallUs / v.n };
  } finally {
    v.after?.();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Stops what a running benchAccessCost() started (for a caller's Ctrl-C handler); resolves at once otherwise. */
let stopActive: (() => Promise<void>) | undefined;
export function stopAccessCost(): Promise<void> {
  return stopActive?.() ?? Promise.resolve();
}

const us = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');
const ratio = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');

export async function benchAccessCost(): Promise<string> {
  process.env.METADATA_SERVER_DETECTION = 'none';
  const previousEmulatorHost = process.env.FIRESTORE_EMULATOR_HOST;
  let emulator: RunningEmulator | undefined;
  let ekm: LocalEkm | undefined;
  const gateways: Gateway[] = [];
  const stateDir = await mkdtemp(join(tmpdir(), 'openekm-bench-access-'));
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      for (const gw of gateways) await gw.close().catch(() => undefined);
      await ekm?.ekm.stop().catch(() => undefined);
      await emulator?.stop().catch(() => undefined);
      await rm(stateDir, { recursive: true, force: true }).catch(() => undefined);
      if (previousEmulatorHost === undefined) delete process.env.FIRESTORE_EMULATOR_HOST;
      else process.env.FIRESTORE_EMULATOR_HOST = previousEmulatorHost;
    })();
    return stopping;
  };
  stopActive = stop;
  try {
    emulator = await startFirestoreEmulator();
    // The Firestore client finds the emulator through the process environment (restored at the end).
    process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
    ekm = await startLocalEkm({
      dir: stateDir,
      httpPort: 0,
      httpsPort: 0,
      mode: 'test',
      log: () => {},
      project: 'bench-access',
    });
    const baseEnv = {
      ...(await localGatewayEnv(emulator.host, stateDir)),
      ...ekm.env,
      OPENEKM_FIRESTORE_PROJECT: `demo-access-${randomBytes(4).toString('hex')}`,
      OPENEKM_LOG_LEVEL: 'warn',
    };
    const gateway = (quota: object) => {
      const gw = new Gateway({
        config: loadConfig({ ...baseEnv, OPENEKM_EKM_QUOTA: JSON.stringify(quota) }),
        logger: createLogger('warn', () => {}),
      });
      gateways.push(gw);
      return gw;
    };
    // Quota on: enabled, far above what the bench reaches, so it measures the bookkeeping, never a refusal.
    const gw = gateway({ default: 1_000_000 });
    const gwNoQuota = gateway({ enabled: false });

    const owner = await mintLocalToken({ dir: stateDir, ttlSeconds: 3 * 3600 });
    const alice = await mintLocalToken({ dir: stateDir, principal: POLICY_USER, ttlSeconds: 3 * 3600 });
    const ring = `projects/bench-access/locations/us-east1/keyRings/r-${Date.now()}`;
    await call(
      gw,
      'keyAdmin',
      `/v1/projects/bench-access/locations/us-east1/keyRings?keyRingId=${ring.split('/').pop()}`,
      owner,
      {},
    );
    await call(gw, 'keyAdmin', `/v1/${ring}/cryptoKeys?cryptoKeyId=sw`, owner, {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
    });
    await call(gw, 'keyAdmin', `/v1/${ring}/cryptoKeys/sw:setIamPolicy`, owner, {
      policy: { bindings: [{ role: 'roles/cloudkms.cryptoKeyEncrypterDecrypter', members: [POLICY_USER] }] },
    });
    await ekm.ekm.admin.createKey('bench-access');
    await call(
      gw,
      'keyAdmin',
      `/v1/${ring}/cryptoKeys?cryptoKeyId=ext&skipInitialVersionCreation=true`,
      owner,
      {
        purpose: 'ENCRYPT_DECRYPT',
        versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
      },
    );
    await call(gw, 'keyAdmin', `/v1/${ring}/cryptoKeys/ext/cryptoKeyVersions`, owner, {
      externalProtectionLevelOptions: { externalKeyUri: ekm.keyUri('bench-access', 'google', 'https') },
    });
    await call(gw, 'keyAdmin', `/v1/${ring}/cryptoKeys/ext:updatePrimaryVersion`, owner, {
      cryptoKeyVersionId: '1',
    });

    const sw = `/v1/${ring}/cryptoKeys/sw:encrypt`;
    const ext = `/v1/${ring}/cryptoKeys/ext:encrypt`;
    const body = { plaintext: PLAINTEXT };
    const ownerReq = request(sw, owner, body);
    const aliceReq = request(sw, alice, body);
    const extReq = request(ext, owner, body);

    // Fresh tokens: one per request, minted before the measurements (minting is not measured).
    const freshNeeded = N * ROUNDS * 2 + 2 * Math.min(N, 200);
    const fresh: ApiRequest[] = [];
    for (let i = 0; i < freshNeeded; i++) {
      fresh.push(request(sw, await mintLocalToken({ dir: stateDir, ttlSeconds: 3 * 3600 + i }), body));
    }

    // Switches on the bench's own instances (shadowing prototype methods; deleting the own property restores).
    const authorizer = gw.authorizer as unknown as { authorize?: unknown };
    const iamOff = () => {
      authorizer.authorize = () => undefined;
    };
    const iamOn = () => {
      delete authorizer.authorize;
    };
    const verifier = (gw as unknown as { verifier: { verify?: unknown } }).verifier;
    const ownerCaller: Caller = { principal: LOCAL_OWNER, issuer: 'https://openekm.local/issuer' };
    const identityOff = () => {
      verifier.verify = async () => ownerCaller;
    };
    const identityOn = () => {
      delete verifier.verify;
    };

    const variants: Variant[] = [
      {
        id: 'owner',
        what: 'SOFTWARE, owner (configuration), cached token',
        n: N,
        gateway: gw,
        request: () => ownerReq,
      },
      {
        id: 'owner-noiam',
        what: 'SOFTWARE, owner, IAM off',
        n: N,
        gateway: gw,
        request: () => ownerReq,
        before: iamOff,
        after: iamOn,
      },
      {
        id: 'owner-noid',
        what: 'SOFTWARE, owner, token verification off',
        n: N,
        gateway: gw,
        request: () => ownerReq,
        before: identityOff,
        after: identityOn,
      },
      {
        id: 'owner-none',
        what: 'SOFTWARE, owner, token verification and IAM off',
        n: N,
        gateway: gw,
        request: () => ownerReq,
        before: () => {
          identityOff();
          iamOff();
        },
        after: () => {
          identityOn();
          iamOn();
        },
      },
      {
        id: 'owner-fresh',
        what: 'SOFTWARE, owner, fresh token each request',
        n: N,
        gateway: gw,
        request: (i) => fresh[i]!,
      },
      {
        id: 'policy',
        what: 'SOFTWARE, key-policy principal, cached token',
        n: N,
        gateway: gw,
        request: () => aliceReq,
      },
      {
        id: 'policy-noiam',
        what: 'SOFTWARE, key-policy principal, IAM off',
        n: N,
        gateway: gw,
        request: () => aliceReq,
        before: iamOff,
        after: iamOn,
      },
      {
        id: 'ext-quota',
        what: 'EXTERNAL (Google EKM, HTTPS), quota on',
        n: Math.max(1, Math.floor(N / 4)),
        gateway: gw,
        request: () => extReq,
      },
      {
        id: 'ext-noquota',
        what: 'EXTERNAL (Google EKM, HTTPS), quota off',
        n: Math.max(1, Math.floor(N / 4)),
        gateway: gwNoQuota,
        request: () => extReq,
      },
    ];

    // Warm-up: every variant once, both concurrencies (JIT, caches, EKM connection pools, quota leases).
    let freshOffset = 0;
    for (const v of variants) {
      for (const conc of [1, CONCURRENCY]) {
        await run({ ...v, n: Math.min(v.n, 200) }, conc, freshOffset);
        if (v.id === 'owner-fresh') freshOffset += Math.min(v.n, 200);
      }
    }

    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round, and alternate sequential/concurrent, so drift spreads over all variants.
      const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
      for (const conc of round % 2 ? [CONCURRENCY, 1] : [1, CONCURRENCY]) {
        for (const v of order) {
          const s = await run(v, conc, freshOffset);
          if (v.id === 'owner-fresh') freshOffset += v.n;
          const key = `${v.id}@${conc}`;
          samples.set(key, [...(samples.get(key) ?? []), s]);
        }
      }
    }

    const med = (id: string, conc: number) => {
      const s = samples.get(`${id}@${conc}`) ?? [];
      return { cpu: median(s.map((x) => x.cpuUs)), wall: median(s.map((x) => x.wallUs)) };
    };
    const lines: string[] = [
      `Access cost per encrypt request, in process (\`gateway.handle('encrypt', …)\`, no HTTP), 1 KiB plaintext; ` +
        `median of ${ROUNDS} interleaved rounds of ${N} requests (EXTERNAL: ${Math.max(1, Math.floor(N / 4))}) per variant, sequential (1) and ${CONCURRENCY} concurrent. ` +
        'CPU is this process (EXTERNAL: includes the in-process reference EKM); wall is elapsed time / requests.',
      '',
      '| variant | conc | CPU µs/req | wall µs/req |',
      '|---|---:|---:|---:|',
    ];
    for (const conc of [1, CONCURRENCY]) {
      for (const v of variants) {
        const m = med(v.id, conc);
        lines.push(`| ${v.what} | ${conc} | ${us(m.cpu)} | ${us(m.wall)} |`);
      }
    }
    const diffs: Array<[string, string, string]> = [
      ['token verification (cached)', 'owner', 'owner-noid'],
      ['token verification (fresh token)', 'owner-fresh', 'owner-noid'],
      ['fresh vs cached token', 'owner-fresh', 'owner'],
      ['IAM, owner from configuration', 'owner', 'owner-noiam'],
      ['IAM, key-policy principal (policy read from the metadata cache)', 'policy', 'policy-noiam'],
      ['token verification + IAM, owner', 'owner', 'owner-none'],
      ['EKM quota (enabled, far from the limit) on EXTERNAL', 'ext-quota', 'ext-noquota'],
    ];
    lines.push(
      '',
      '| cost of | with − without | conc | CPU µs/req | wall µs/req | CPU ratio | wall ratio |',
      '|---|---|---:|---:|---:|---:|---:|',
    );
    for (const conc of [1, CONCURRENCY]) {
      for (const [what, a, b] of diffs) {
        const x = med(a, conc);
        const y = med(b, conc);
        lines.push(
          `| ${what} | ${a} − ${b} | ${conc} | ${us(x.cpu - y.cpu)} | ${us(x.wall - y.wall)} | ${ratio(x.cpu / y.cpu)} | ${ratio(x.wall / y.wall)} |`,
        );
      }
    }
    lines.push(
      '',
      `EKM quota refusals (no lease within the wait bound), warm-up and all rounds: ${
        [...quotaRefusals].map(([id, n]) => `${id} ${n}`).join(', ') || 'none'
      }.`,
    );
    return `${lines.join('\n')}\n`;
  } finally {
    await stop();
    if (stopActive === stop) stopActive = undefined;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void stopAccessCost().finally(() => process.exit(130)));
  }
  for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
    process.on(event, (err) => {
      process.stderr.write(`bench/access-cost failed: ${(err as Error)?.stack ?? String(err)}\n`);
      void stopAccessCost().finally(() => process.exit(1));
    });
  }
  try {
    process.stdout.write(await benchAccessCost());
  } catch (err) {
    process.stderr.write(`bench/access-cost failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
