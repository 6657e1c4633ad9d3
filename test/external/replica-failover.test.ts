/**
 * Losing one EKM replica under a steady encrypt load: replica B sits behind a relay that starts to hang (or
 * reset) every connection mid-run. Requests in flight fail over to replica A inside their deadline; once the
 * probe has recorded B as DOWN no request even tries it. The figures (requests, failures, failed-over attempts)
 * go to the test's diagnostics; docs/ekm-connections.md records a run.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { ReferenceEkm } from '@openekm/reference-ekm';
import { FaultRelay, hostOf, type RelayMode, serverCertDer, startReplica } from '../helpers/ekm-replicas.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { b64, keyRing } from './ext-helpers.js';

let s: TestStack;
let replicaB: ReferenceEkm;
let relay: FaultRelay;
let key: string;

before(async () => {
  // The relay's address is replica B's name for the gateway, so B must accept tokens for that audience.
  relay = await FaultRelay.start();
  s = await startTestStack({ ekm: true, env: { OPENEKM_EKM_CONNECTION_TIMEOUT_MS: '1500' } });
  replicaB = await startReplica(s, [`https://${relay.host}`]);
  relay.target = Number(new URL(replicaB.httpsUrl).port);
  const ring = await keyRing(s, 'failover');
  const der = serverCertDer(s);
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  const conn = await s.call('POST', `${loc}/ekmConnections?ekmConnectionId=ab`, {
    serviceResolvers: [
      { hostname: hostOf(s.ekm!.ekm.httpsUrl), serverCertificates: [{ rawDer: der }] },
      { hostname: relay.host, serverCertificates: [{ rawDer: der }] },
    ],
  });
  assert.equal(conn.status, 200, JSON.stringify(conn.json));
  await s.ekm!.ekm.admin.createKey('failover-key');
  const k = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=k&skipInitialVersionCreation=true`, {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'EXTERNAL_VPC' },
    cryptoKeyBackend: conn.json.name,
  });
  assert.equal(k.status, 200, JSON.stringify(k.json));
  key = `/v1/${k.json.name}`;
  const v = await s.call('POST', `${key}/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { ekmConnectionKeyPath: 'v0/keys/failover-key' },
  });
  assert.equal(v.status, 200, JSON.stringify(v.json));
  await s.call('POST', `${key}:updatePrimaryVersion`, { cryptoKeyVersionId: '1' });
});

after(async () => {
  await s.stop();
  await replicaB.stop();
  await relay.stop();
});

/** Runs `workers` encrypt loops until `stop()`; counts answers by status. */
function load(workers: number) {
  const counts = { ok: 0, failed: 0, domains: new Map<string, number>() };
  let running = true;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; running; i++) {
      const res = await s.call('POST', `${key}:encrypt`, { plaintext: b64(`worker ${w} request ${i}`) });
      if (res.status === 200) counts.ok++;
      else {
        counts.failed++;
        const d = String(res.json?.error?.details?.[0]?.violations?.[1]?.type ?? res.json?.error?.status);
        counts.domains.set(d, (counts.domains.get(d) ?? 0) + 1);
      }
    }
  });
  return {
    counts,
    async stop() {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** EKM attempts at replica B since log line `mark`: failed ones, or successful ones with `ok`. */
function attemptsAtB(mark: number, ok = false): number {
  return s.logs
    .slice(mark)
    .map((l) => JSON.parse(l))
    .filter(
      (e) =>
        e.metric === 'openekm.ekm.request' && e.ekm.replica === relay.host && (e.ekm.status === 'OK') === ok,
    ).length;
}

for (const mode of ['hang', 'reset'] as RelayMode[]) {
  it(`a replica that starts to ${mode} costs no failed request; after the probe it is not tried`, async (t) => {
    relay.set('pass');
    await s.call('POST', '/health/probe', {});
    const warmMark = s.logs.length;
    const warm = load(4);
    await sleep(1500);
    const mark = s.logs.length;
    // Replica B is in the rotation before the fault (else the test would prove nothing).
    assert.ok(attemptsAtB(warmMark, true) > 0, 'B served requests before the fault');
    relay.set(mode);
    const faultAt = Date.now();
    await sleep(1500);
    const before = { ...warm.counts };
    const probe = await s.call('POST', '/health/probe', {});
    assert.equal(probe.status, 200, JSON.stringify(probe.json));
    const detectedMs = Date.now() - faultAt;
    const b = probe.json.probed.find((p: { replica: string }) => p.replica === relay.host);
    assert.equal(b.ok, false);
    assert.equal(b.domain, mode === 'hang' ? 'TIMEOUT' : 'UNREACHABLE_NETWORK');
    const afterProbeMark = s.logs.length;
    await sleep(1500);
    const total = await warm.stop();
    const afterProbe = { ok: total.ok - before.ok, failed: total.failed - before.failed };
    const triedAfterProbe = attemptsAtB(afterProbeMark);
    t.diagnostic(
      `${mode}: ${before.ok + before.failed} requests before the probe (${before.failed} failed, ${attemptsAtB(mark) - triedAfterProbe} attempts failed over), ${afterProbe.ok + afterProbe.failed} after (${afterProbe.failed} failed, ${triedAfterProbe} attempts at B); probe recorded DOWN ${detectedMs} ms after the fault`,
    );
    assert.ok(before.ok > 0 && afterProbe.ok > 0, 'the load ran');
    assert.equal(total.failed, 0, `failed requests: ${JSON.stringify([...total.domains])}`);
    assert.equal(triedAfterProbe, 0, 'no attempt goes to a replica the probe saw DOWN');
    relay.set('pass');
    await s.call('POST', '/health/probe', {});
  });
}
