/**
 * The EKM quota across gateway PROCESSES (docs/audit-and-metrics.md, "EKM quota"): two gateways, each its own
 * Node process (test/helpers/gateway-process.ts), share one Firestore project on the emulator and one reference
 * EKM, and are hammered with concurrent encrypts for about three seconds on real time. Together they admit at most
 * the project's quota per second of the (shared) clock — the documented margin is the instances' clock
 * disagreement, zero here since both run on this machine's clock — the excess gets 429 RESOURCE_EXHAUSTED with
 * RetryInfo, and the EKM sees exactly one wrap per admitted request.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type LocalEkm, startLocalEkm } from '../../scripts/lib/local-ekm.js';
import { localGatewayEnv, mintLocalToken } from '../../scripts/lib/local-state.js';
import { requestJson } from '../helpers/stack.js';

const LIMIT = 20;
/** The quota's project: the one named in the resource paths (the Firestore project is a fresh demo-… id). */
const PROJECT = 'quota-procs';
const KEY_ID = `qp-${randomBytes(4).toString('hex')}`;
const HAMMER_MS = 3000;
/**
 * The hammer goes on past HAMMER_MS, up to this, until a request has been refused (a safety net: with lease
 * transactions, since replaced, requests were seen waiting 2–4 s for a lease, during which none was admitted or
 * refused; the quota now holds a request at most QUOTA_MAX_WAIT_MS).
 */
const HAMMER_MAX_MS = 12_000;
/** Concurrent encrypts per gateway process, and a bound on the requests of the whole hammer. */
const CONCURRENCY = 12;
const MAX_REQUESTS = 1500;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const helper = join(root, 'test/helpers/gateway-process.ts');
const ring = `/v1/projects/${PROJECT}/locations/us-east1/keyRings/q`;

let dir: string | undefined;
let local: LocalEkm | undefined;
const ekmLogs: string[] = [];
const children: ChildProcess[] = [];
const childOutput: string[][] = [];
let urls: string[] = [];
let token: string;

/** Wrap requests the EKM received for the test key. */
const ekmWraps = () =>
  ekmLogs.filter(
    (l) => /"msg":"request"/.test(l) && /"operation":"wrap"/.test(l) && l.includes(`"keyId":"${KEY_ID}"`),
  ).length;

/** Starts one gateway process; resolves with its URL once it listens. */
function spawnGateway(env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', helper], {
    cwd: root,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  const output: string[] = [];
  childOutput.push(output);
  // Keep draining both pipes for the child's whole life: a full pipe would block its writes (audit entries).
  child.stderr!.setEncoding('utf8').on('data', (d: string) => output.push(d));
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway process did not start:\n${output.join('')}`)),
      30_000,
    );
    lines.on('line', (line) => {
      const m = /^OPENEKM_GATEWAY_URL=(\S+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolvePromise(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway process exited (${code ?? signal}) before listening:\n${output.join('')}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(killer);
}

async function call(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const { status, json } = await requestJson(url + path, method, headers, payload);
  return { status, json };
}

before(async () => {
  const firestoreHost = process.env.FIRESTORE_EMULATOR_HOST;
  if (!firestoreHost) throw new Error('FIRESTORE_EMULATOR_HOST is not set: run the tests with npm test.');
  dir = mkdtempSync(join(tmpdir(), 'openekm-quota-procs-'));
  local = await startLocalEkm({
    dir,
    httpPort: 0,
    httpsPort: 0,
    mode: 'test',
    log: (l) => ekmLogs.push(l),
    project: PROJECT,
  });
  await local.ekm.admin.createKey(KEY_ID);
  // Generous attempt timeouts: a retried attempt would count twice at the EKM.
  const endpoints = (
    JSON.parse(local.env.OPENEKM_EKM_ENDPOINTS ?? '[]') as Array<Record<string, unknown>>
  ).map((e) => ({ ...e, timeoutMs: 5000 }));
  const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    ...(await localGatewayEnv(firestoreHost, dir)),
    ...local.env,
    OPENEKM_EKM_ENDPOINTS: JSON.stringify(endpoints),
    OPENEKM_FIRESTORE_PROJECT: `demo-quota-${randomBytes(6).toString('hex')}`,
    OPENEKM_EKM_QUOTA: JSON.stringify({ default: 1000, projects: { [PROJECT]: LIMIT } }),
    METADATA_SERVER_DETECTION: 'none',
    OPENEKM_LOG_LEVEL: 'warn',
  };
  urls = await Promise.all([spawnGateway(env), spawnGateway(env)]);
  token = await mintLocalToken({ dir });

  // The key is made through the first process; the second sees it through the shared Firestore.
  const [first] = urls as [string, string];
  const created = await call(
    first,
    'POST',
    `/v1/projects/${PROJECT}/locations/us-east1/keyRings?keyRingId=q`,
    {},
  );
  assert.equal(created.status, 200, JSON.stringify(created.json));
  const key = await call(
    first,
    'POST',
    `${ring}/cryptoKeys?cryptoKeyId=ext&skipInitialVersionCreation=true`,
    {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    },
  );
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const version = await call(first, 'POST', `${ring}/cryptoKeys/ext/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: local.keyUri(KEY_ID, 'google', 'http') },
  });
  assert.equal(version.status, 200, JSON.stringify(version.json));
  const primary = await call(first, 'POST', `${ring}/cryptoKeys/ext:updatePrimaryVersion`, {
    cryptoKeyVersionId: '1',
  });
  assert.equal(primary.status, 200, JSON.stringify(primary.json));
});

after(async () => {
  await Promise.all(children.map(stopChild));
  await local?.ekm.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  gateway: number;
  status: number;
  body: string;
  /** Wall-clock ms when the request was sent and when its answer arrived. */
  sent: number;
  answered: number;
}

const second = (ms: number) => Math.floor(ms / 1000);

/** Answers per second of the clock in which they arrived (seconds modulo 100, for the failure message). */
function perSecond(outcomes: Outcome[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const o of outcomes) counts[second(o.answered) % 100] = (counts[second(o.answered) % 100] ?? 0) + 1;
  return counts;
}

test('two gateway processes together admit at most the quota per second; the excess gets 429 with RetryInfo before the EKM', async (t) => {
  const plaintext = Buffer.from('quota across processes').toString('base64');
  // Both processes can encrypt (and the key works) before the hammer starts. A process's first lease may take
  // longer than the quota's wait bound on a busy machine (channel set-up): that answer is a 429 with a short
  // RetryInfo, and a client retries it, as here.
  for (const url of urls) {
    let r = await call(url, 'POST', `${ring}/cryptoKeys/ext:encrypt`, { plaintext });
    for (let retry = 0; retry < 5 && r.status === 429; retry++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      r = await call(url, 'POST', `${ring}/cryptoKeys/ext:encrypt`, { plaintext });
    }
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)));

  const wrapsBefore = ekmWraps();
  const outcomes: Outcome[] = [];
  let started = 0;
  let refusals = 0;
  const begin = Date.now();
  const more = () =>
    started < MAX_REQUESTS && Date.now() < begin + (refusals > 0 ? HAMMER_MS : HAMMER_MAX_MS);
  const worker = async (gateway: number) => {
    while (more()) {
      started++;
      const sent = Date.now();
      const res = await fetch(`${urls[gateway]}${ring}/cryptoKeys/ext:encrypt`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ plaintext }),
        signal: AbortSignal.timeout(30_000),
      });
      const body = await res.text();
      if (res.status === 429) refusals++;
      outcomes.push({ gateway, status: res.status, body, sent, answered: Date.now() });
    }
  };
  await Promise.all(urls.flatMap((_, g) => Array.from({ length: CONCURRENCY }, () => worker(g))));
  const ok = outcomes.filter((o) => o.status === 200);
  // The EKM runs in its own process: its request log reaches this one through a pipe, so the last lines may still
  // be on their way. Wait (at most 5 s) until every admitted request's wrap is counted; an extra wrap still shows.
  const waitUntil = Date.now() + 5000;
  while (ekmWraps() - wrapsBefore < ok.length && Date.now() < waitUntil) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const wraps = ekmWraps() - wrapsBefore;

  const refused = outcomes.filter((o) => o.status === 429);
  const summary = JSON.stringify({
    requests: outcomes.length,
    ok: ok.length,
    refused: refused.length,
    okPerGateway: [0, 1].map((g) => ok.filter((o) => o.gateway === g).length),
    wraps,
    okPerSecond: perSecond(ok),
    refusedPerSecond: perSecond(refused),
    notInTime: refused.filter((o) => /not granted in time/.test(o.body)).length,
    ms: Math.max(...outcomes.map((o) => o.answered)) - begin,
  });
  t.diagnostic(summary);
  for (const o of outcomes) assert.ok(o.status === 200 || o.status === 429, `${o.status}: ${o.body}`);

  // Demand exceeded the quota, so some requests were refused — each with RESOURCE_EXHAUSTED and RetryInfo.
  assert.ok(refused.length > 0, `no request was refused: ${summary}`);
  for (const o of refused) {
    const error = JSON.parse(o.body).error;
    assert.equal(error.status, 'RESOURCE_EXHAUSTED', o.body);
    assert.equal(error.code, 429, o.body);
    assert.match(error.message, /OPENEKM_EKM_QUOTA/);
    const retry = error.details?.find((d: any) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo');
    assert.ok(retry, `no RetryInfo: ${o.body}`);
    assert.match(retry.retryDelay, /^[01]\.[0-9]{3}s$/, o.body);
  }

  // Both processes spent the shared budget.
  for (let g = 0; g < 2; g++)
    assert.ok(
      ok.some((o) => o.gateway === g),
      `gateway ${g} admitted nothing: ${summary}`,
    );

  // Over the whole window: each admitted request took its token in a second between its sending and its answer,
  // so at most LIMIT per second spanned. Same machine, same clock: the documented margin (clock disagreement) is 0.
  const first = Math.min(...outcomes.map((o) => o.sent));
  const last = Math.max(...outcomes.map((o) => o.answered));
  const seconds = second(last) - second(first) + 1;
  assert.ok(
    ok.length <= LIMIT * seconds,
    `${ok.length} admitted in ${seconds} seconds of the clock: ${summary}`,
  );
  // Per second: requests sent and answered within one second of the clock were admitted in that second.
  const within = new Map<number, number>();
  for (const o of ok) {
    if (second(o.sent) === second(o.answered))
      within.set(second(o.sent), (within.get(second(o.sent)) ?? 0) + 1);
  }
  for (const [s, n] of within)
    assert.ok(n <= LIMIT, `second ${s}: ${n} admitted, quota ${LIMIT}: ${summary}`);
  // The budget is used, not stranded: both processes together admitted at least half the quota over the hammer.
  // Lease transactions that stalled for seconds under this contention (or gave up on the first conflict, ~9/s of
  // 20/s) admitted less; the design admits the full quota in every second but the partial first and last.
  assert.ok(
    ok.length >= (LIMIT * HAMMER_MS) / 1000 / 2,
    `${ok.length} admitted in ${HAMMER_MS} ms, quota ${LIMIT}/s: ${summary}`,
  );
  // Refused requests never reached the EKM; each admitted one made exactly one wrap.
  assert.equal(wraps, ok.length, `EKM wraps vs admitted: ${summary}`);
});
