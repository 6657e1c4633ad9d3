/**
 * EKM connections end to end: the Cloud KMS resources (create/get/list/patch/verifyConnectivity, ekmConfig),
 * EXTERNAL_VPC keys through two real reference EKM replicas with pinned certificates, the probe and
 * /health/ekm, and coordinated keys (CLOUD_KMS mode) created and destroyed by the EKM.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ReferenceEkm } from '@openekm/reference-ekm';
import { blockNonLoopback, launchChromium, pngSize } from '../helpers/browser.js';
import { hostOf, serverCertDer, startReplica } from '../helpers/ekm-replicas.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { b64, keyRing, nameOf } from './ext-helpers.js';

let s: TestStack;
let replicaB: ReferenceEkm;
let ring: string;
let der: string;
let loc: string;

before(async () => {
  s = await startTestStack({ ekm: true, env: { OPENEKM_EKM_CONNECTION_TIMEOUT_MS: '2000' } });
  replicaB = await startReplica(s);
  ring = await keyRing(s, 'conn-ring');
  der = serverCertDer(s);
  loc = `/v1/projects/${s.project}/locations/us-east1`;
});
after(async () => {
  await replicaB.stop();
  await s.stop();
});

function resolver(host: string, cert = der) {
  return { hostname: host, serverCertificates: [{ rawDer: cert }] };
}

async function connection(id: string, body: Record<string, unknown>) {
  const res = await s.call('POST', `${loc}/ekmConnections?ekmConnectionId=${id}`, body);
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json;
}

async function vpcKey(id: string, conn: string, extra: Record<string, unknown> = {}, skip = true) {
  const res = await s.call(
    'POST',
    `${ring}/cryptoKeys?cryptoKeyId=${id}${skip ? '&skipInitialVersionCreation=true' : ''}`,
    {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL_VPC', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
      cryptoKeyBackend: conn,
      ...extra,
    },
  );
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json;
}

describe('EkmConnection resources', () => {
  it('creates a connection with parsed certificates, gets, lists and patches it with its etag', async () => {
    const c = await connection('two-replicas', {
      serviceResolvers: [resolver(hostOf(s.ekm!.ekm.httpsUrl)), resolver(hostOf(replicaB.httpsUrl))],
    });
    assert.equal(c.name, `${nameOf(loc)}/ekmConnections/two-replicas`);
    assert.equal(c.keyManagementMode, 'MANUAL');
    assert.equal(c.serviceResolvers.length, 2);
    const cert = c.serviceResolvers[0].serverCertificates[0];
    assert.equal(cert.parsed, true);
    assert.match(cert.sha256Fingerprint, /^[0-9a-f]{64}$/);
    assert.ok(cert.subject.length > 0 && cert.issuer.length > 0);
    assert.ok(Date.parse(cert.notAfterTime) > Date.now());
    const got = await s.call('GET', `/v1/${c.name}`);
    assert.deepEqual(got.json, c);
    const list = await s.call('GET', `${loc}/ekmConnections`);
    assert.equal(list.status, 200);
    assert.ok(list.json.ekmConnections.some((x: { name: string }) => x.name === c.name));
    const stale = await s.call('PATCH', `/v1/${c.name}?updateMask=serviceResolvers`, {
      etag: 'not-the-etag',
      serviceResolvers: [resolver(hostOf(s.ekm!.ekm.httpsUrl))],
    });
    assert.equal(stale.status, 409, JSON.stringify(stale.json));
    const patched = await s.call('PATCH', `/v1/${c.name}?updateMask=serviceResolvers`, {
      etag: c.etag,
      serviceResolvers: [resolver(hostOf(s.ekm!.ekm.httpsUrl)), resolver(hostOf(replicaB.httpsUrl))],
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.json));
    assert.notEqual(patched.json.etag, c.etag);
  });

  it('refuses bad connections with the field and what to do', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /serviceResolvers is required/],
      [{ serviceResolvers: [{ hostname: 'ekm.example.com' }] }, /serverCertificates is required/],
      [{ serviceResolvers: [resolver('not a host')] }, /hostname must be/],
      [{ serviceResolvers: [resolver('ekm.example.com', 'bm90IGEgY2VydA==')] }, /rawDer is not usable/],
      [
        { serviceResolvers: Array.from({ length: 6 }, (_, i) => resolver(`ekm${i}.example.com`)) },
        /at most 5/,
      ],
      [
        { serviceResolvers: [resolver('ekm.example.com')], keyManagementMode: 'CLOUD_KMS' },
        /needs cryptoSpacePath/,
      ],
      [{ serviceResolvers: [resolver('a.example.com'), resolver('a.example.com')] }, /listed twice/],
    ];
    for (const [body, message] of cases) {
      const res = await s.call('POST', `${loc}/ekmConnections?ekmConnectionId=bad`, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.json.error.message, message);
    }
    const missing = await s.call('GET', `${loc}/ekmConnections/bad`);
    assert.equal(missing.status, 404, 'nothing was written');
  });

  it('sets and reads the location default (ekmConfig), which keys without cryptoKeyBackend use', async () => {
    const empty = await s.call('GET', `${loc}/ekmConfig`);
    assert.deepEqual(empty.json, { name: `${nameOf(loc)}/ekmConfig` });
    const noKey = await s.call(
      'POST',
      `${ring}/cryptoKeys?cryptoKeyId=nodefault&skipInitialVersionCreation=true`,
      {
        purpose: 'ENCRYPT_DECRYPT',
        versionTemplate: { protectionLevel: 'EXTERNAL_VPC' },
      },
    );
    assert.equal(noKey.status, 400);
    assert.match(noKey.json.error.message, /need cryptoKeyBackend/);
    const conn = `${nameOf(loc)}/ekmConnections/two-replicas`;
    const set = await s.call('PATCH', `${loc}/ekmConfig?updateMask=defaultEkmConnection`, {
      defaultEkmConnection: conn,
    });
    assert.equal(set.status, 200, JSON.stringify(set.json));
    const key = await s.call(
      'POST',
      `${ring}/cryptoKeys?cryptoKeyId=bydefault&skipInitialVersionCreation=true`,
      {
        purpose: 'ENCRYPT_DECRYPT',
        versionTemplate: { protectionLevel: 'EXTERNAL_VPC' },
      },
    );
    assert.equal(key.status, 200, JSON.stringify(key.json));
    assert.equal(key.json.cryptoKeyBackend, conn);
  });

  it('naming a connection in a new key needs cloudkms.ekmConnections.use on it', async () => {
    const alice = await s.token('user:alice@example.com');
    const grant = async (resource: string, role: string) => {
      const cur = await s.call('GET', `/v1/${resource}:getIamPolicy`);
      const set = await s.call('POST', `/v1/${resource}:setIamPolicy`, {
        policy: { bindings: [{ role, members: ['user:alice@example.com'] }], etag: cur.json.etag },
      });
      assert.equal(set.status, 200, JSON.stringify(set.json));
    };
    await grant(nameOf(ring), 'roles/cloudkms.admin');
    const conn = `${nameOf(loc)}/ekmConnections/two-replicas`;
    const body = {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL_VPC' },
      cryptoKeyBackend: conn,
    };
    const denied = await s.call(
      'POST',
      `${ring}/cryptoKeys?cryptoKeyId=alice1&skipInitialVersionCreation=true`,
      body,
      {
        token: alice,
      },
    );
    assert.equal(denied.status, 403, JSON.stringify(denied.json));
    assert.match(denied.json.error.message, /cloudkms\.ekmConnections\.use/);
    await grant(conn, 'roles/cloudkms.ekmConnectionsAdmin');
    const allowed = await s.call(
      'POST',
      `${ring}/cryptoKeys?cryptoKeyId=alice1&skipInitialVersionCreation=true`,
      body,
      {
        token: alice,
      },
    );
    assert.equal(allowed.status, 200, JSON.stringify(allowed.json));
  });

  it('verifyConnectivity answers {} for reachable replicas and TLS_CERT for a wrong pin', async () => {
    const ok = await s.call('GET', `${loc}/ekmConnections/two-replicas:verifyConnectivity`);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json, {});
    // A certificate that is not the replica's: the reference EKM's CA certificate.
    const { readFileSync } = await import('node:fs');
    const caPem = readFileSync(s.ekm!.ekm.caCertPath, 'utf8');
    const caDer = caPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    await connection('wrong-pin', { serviceResolvers: [resolver(hostOf(s.ekm!.ekm.httpsUrl), caDer)] });
    const bad = await s.call('GET', `${loc}/ekmConnections/wrong-pin:verifyConnectivity`);
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.equal(bad.json.error.status, 'FAILED_PRECONDITION');
    assert.match(bad.json.error.message, /TLS_CERT/);
  });
});

describe('EXTERNAL_VPC keys through two replicas', () => {
  it('encrypts and decrypts through the connection, checking the key at the EKM first', async () => {
    await s.ekm!.ekm.admin.createKey('vpc-key-1');
    const conn = `${nameOf(loc)}/ekmConnections/two-replicas`;
    const key = await vpcKey('vpc1', conn);
    assert.equal(key.cryptoKeyBackend, conn);
    const missing = await s.call('POST', `/v1/${key.name}/cryptoKeyVersions`, {
      externalProtectionLevelOptions: { ekmConnectionKeyPath: 'v0/keys/no-such-key' },
    });
    assert.equal(missing.status, 400, JSON.stringify(missing.json));
    assert.match(missing.json.error.message, /EXTERNAL_NOT_FOUND/);
    const v = await s.call('POST', `/v1/${key.name}/cryptoKeyVersions`, {
      externalProtectionLevelOptions: { ekmConnectionKeyPath: 'v0/keys/vpc-key-1' },
    });
    assert.equal(v.status, 200, JSON.stringify(v.json));
    assert.equal(v.json.protectionLevel, 'EXTERNAL_VPC');
    assert.equal(v.json.state, 'ENABLED');
    await s.call('POST', `/v1/${key.name}:updatePrimaryVersion`, { cryptoKeyVersionId: '1' });
    const enc = await s.call('POST', `/v1/${key.name}:encrypt`, { plaintext: b64('through a replica') });
    assert.equal(enc.status, 200, JSON.stringify(enc.json));
    const dec = await s.call('POST', `/v1/${key.name}:decrypt`, { ciphertext: enc.json.ciphertext });
    assert.equal(dec.status, 200, JSON.stringify(dec.json));
    assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'through a replica');
    // Both replicas served requests (healthy replicas take turns).
    const replicas = new Set(
      s.logs
        .map((l) => JSON.parse(l))
        .filter(
          (e) => e.metric === 'openekm.ekm.request' && e.ekm?.method === 'wrap' && e.ekm.status === 'OK',
        )
        .map((e) => e.ekm.replica),
    );
    for (let i = 0; i < 4; i++) {
      await s.call('POST', `/v1/${key.name}:encrypt`, { plaintext: b64('x') });
    }
    const after = new Set(
      s.logs
        .map((l) => JSON.parse(l))
        .filter(
          (e) => e.metric === 'openekm.ekm.request' && e.ekm?.method === 'wrap' && e.ekm.status === 'OK',
        )
        .map((e) => e.ekm.replica),
    );
    assert.ok(after.size >= Math.max(2, replicas.size), `both replicas used: ${[...after].join(', ')}`);
  });

  it('fails over when a replica stops, and the probe shows it DOWN on /health/ekm and the status page', async () => {
    const key = `/v1/${nameOf(ring)}/cryptoKeys/vpc1`;
    const probe = await s.call('POST', '/health/probe', {});
    assert.equal(probe.status, 200, JSON.stringify(probe.json));
    let report = await s.call('GET', '/health/ekm');
    assert.equal(report.status, 200, JSON.stringify(report.json));
    const mine = (r: { json: { targets: Array<Record<string, any>> } }) =>
      r.json.targets.filter((t) => t.name.endsWith('/ekmConnections/two-replicas'));
    assert.equal(mine(report).length, 2);
    assert.deepEqual(
      mine(report).map((t) => t.state),
      ['UP', 'UP'],
    );
    // Stop replica B: requests keep succeeding through A, even before any probe has run.
    const bHost = hostOf(replicaB.httpsUrl);
    await replicaB.stop();
    let failures = 0;
    for (let i = 0; i < 10; i++) {
      const enc = await s.call('POST', `${key}:encrypt`, { plaintext: b64(`during outage ${i}`) });
      if (enc.status !== 200) failures++;
    }
    assert.equal(failures, 0, 'a stopped replica costs a failed-over attempt, not a failed request');
    await s.call('POST', '/health/probe', {});
    report = await s.call('GET', '/health/ekm');
    const b = mine(report).find((t) => t.replica === bHost)!;
    assert.equal(b.state, 'DOWN');
    assert.equal(b.lastFailure.domain, 'UNREACHABLE_NETWORK');
    assert.equal(b.day.count, 2);
    assert.equal(b.day.availability, 0.5);
    const a = mine(report).find((t) => t.replica !== bHost)!;
    assert.equal(a.state, 'UP');
    assert.ok(a.hour.p50Ms > 0);
    const page = await fetch(`${s.url}/health/status`, {
      headers: { authorization: `Bearer ${await s.token()}` },
    });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    const html = await page.text();
    assert.match(
      html,
      new RegExp(
        `data-target-id="${b.id}"[^>]*data-state="DOWN"|data-state="DOWN"[^>]*data-target-id="${b.id}"`,
      ),
    );
  });

  it('shows the outage on the status page in a headless browser', async () => {
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({
        viewport: { width: 390, height: 844 },
        isMobile: true,
        extraHTTPHeaders: { authorization: `Bearer ${await s.token()}` },
      });
      const { blocked } = await blockNonLoopback(context);
      const page = await context.newPage();
      const res = await page.goto(`${s.url}/health/status`);
      assert.equal(res?.status(), 200);
      const down = page.locator('[data-state="DOWN"]');
      assert.ok((await down.count()) >= 1, 'the stopped replica is shown DOWN');
      assert.match(((await down.first().textContent()) ?? '').toUpperCase(), /DOWN/);
      assert.match((await down.first().textContent()) ?? '', /UNREACHABLE_NETWORK/);
      assert.ok((await page.locator('[data-state="UP"]').count()) >= 1);
      const png = await page.screenshot();
      assert.deepEqual(pngSize(png), { width: 390, height: 844 });
      assert.deepEqual(blocked, []);
    } finally {
      await browser.close();
    }
  });

  it('keeps the status routes for operators unless OPENEKM_STATUS_PUBLIC', async () => {
    const anonymous = await s.call('GET', '/health/ekm', undefined, { token: '' });
    assert.equal(anonymous.status, 401);
    const stranger = await s.call('GET', '/health/ekm', undefined, {
      token: await s.token('user:stranger@example.com'),
    });
    assert.equal(stranger.status, 403);
    const probe = await s.call(
      'POST',
      '/health/probe',
      {},
      { token: await s.token('user:stranger@example.com') },
    );
    assert.equal(probe.status, 403);
  });
});

describe('moving a MANUAL version to another key path', () => {
  it('checks the new path at the EKM first and keeps the old one when refused', async () => {
    await s.ekm!.ekm.admin.createKey('vpc-key-2');
    const version = `/v1/${nameOf(ring)}/cryptoKeys/vpc1/cryptoKeyVersions/1`;
    const mask = 'updateMask=externalProtectionLevelOptions.ekmConnectionKeyPath';
    const refused = await s.call('PATCH', `${version}?${mask}`, {
      externalProtectionLevelOptions: { ekmConnectionKeyPath: 'v0/keys/not-there' },
    });
    assert.equal(refused.status, 400, JSON.stringify(refused.json));
    assert.match(refused.json.error.message, /EXTERNAL_NOT_FOUND/);
    const kept = await s.call('GET', version);
    assert.equal(kept.json.externalProtectionLevelOptions.ekmConnectionKeyPath, 'v0/keys/vpc-key-1');
    const moved = await s.call('PATCH', `${version}?${mask}`, {
      externalProtectionLevelOptions: { ekmConnectionKeyPath: 'v0/keys/vpc-key-2' },
    });
    assert.equal(moved.status, 200, JSON.stringify(moved.json));
    assert.equal(moved.json.externalProtectionLevelOptions.ekmConnectionKeyPath, 'v0/keys/vpc-key-2');
    const uri = await s.call('PATCH', `${version}?updateMask=externalProtectionLevelOptions.externalKeyUri`, {
      externalProtectionLevelOptions: { externalKeyUri: 'https://ekm.example.com/v0/keys/x' },
    });
    assert.equal(uri.status, 400, 'EXTERNAL_VPC versions have no externalKeyUri');
  });
});

describe('coordinated keys (CLOUD_KMS mode)', () => {
  it('the EKM creates the first version and rotations; destroy asks the EKM to destroy', async () => {
    await s.ekm!.ekm.admin.createCryptoSpace('space-1');
    const conn = await connection('coordinated', {
      serviceResolvers: [resolver(hostOf(s.ekm!.ekm.httpsUrl))],
      keyManagementMode: 'CLOUD_KMS',
      cryptoSpacePath: 'v0/cryptospaces/space-1',
    });
    const verify = await s.call('GET', `/v1/${conn.name}:verifyConnectivity`);
    assert.equal(verify.status, 200, JSON.stringify(verify.json));
    const next = new Date(Date.now() + 3600_000).toISOString();
    const key = await vpcKey(
      'coord1',
      conn.name,
      { rotationPeriod: '86400s', nextRotationTime: next },
      false,
    );
    assert.equal(key.primary.state, 'ENABLED', JSON.stringify(key));
    const path = key.primary.externalProtectionLevelOptions.ekmConnectionKeyPath as string;
    assert.match(path, /^v0\/cryptospaces\/space-1\/keys\/space-1-/);
    const enc = await s.call('POST', `/v1/${key.name}:encrypt`, { plaintext: b64('coordinated') });
    assert.equal(enc.status, 200, JSON.stringify(enc.json));
    // Giving a key path is refused: the EKM chooses it.
    const manual = await s.call('POST', `/v1/${key.name}/cryptoKeyVersions`, {
      externalProtectionLevelOptions: { ekmConnectionKeyPath: 'v0/keys/x' },
    });
    assert.equal(manual.status, 400);
    // Rotation when due: a new EKM key becomes primary.
    s.advance(2 * 3600_000);
    const run = await s.call('POST', '/health/tasks:run', {});
    assert.equal(run.status, 200, JSON.stringify(run.json));
    assert.deepEqual(run.json.rotated, [`${key.name}/cryptoKeyVersions/2`]);
    const rotated = await s.call('GET', `/v1/${key.name}`);
    assert.equal(rotated.json.primary.name, `${key.name}/cryptoKeyVersions/2`);
    assert.equal(rotated.json.primary.state, 'ENABLED');
    assert.notEqual(rotated.json.primary.externalProtectionLevelOptions.ekmConnectionKeyPath, path);
    // Destroy version 1: when due it waits for the EKM, then the probe's tasks destroy it there.
    const d = await s.call('POST', `/v1/${key.name}/cryptoKeyVersions/1:destroy`, {});
    assert.equal(d.json.state, 'DESTROY_SCHEDULED');
    s.advance(31 * 24 * 3600_000);
    const pending = await s.call('GET', `/v1/${key.name}/cryptoKeyVersions/1`);
    assert.equal(pending.json.state, 'PENDING_EXTERNAL_DESTRUCTION');
    const probe = await s.call('POST', '/health/probe', {});
    assert.equal(probe.status, 200, JSON.stringify(probe.json));
    assert.deepEqual(probe.json.externallyDestroyed, [`${key.name}/cryptoKeyVersions/1`]);
    const done = await s.call('GET', `/v1/${key.name}/cryptoKeyVersions/1`);
    assert.equal(done.json.state, 'DESTROYED');
    assert.ok(done.json.destroyEventTime);
    const keyId = path.slice(path.lastIndexOf('/') + 1);
    const atEkm = s.ekm!.ekm.admin.listKeys().find((k) => k.keyId === keyId);
    assert.equal(atEkm?.status, 'DESTROYED', 'the EKM destroyed its key');
    assert.equal(atEkm?.material, undefined);
    const old = await s.call('POST', `/v1/${key.name}:decrypt`, { ciphertext: enc.json.ciphertext });
    assert.equal(old.status, 400, 'the destroyed version cannot decrypt');
  });

  it('a crypto space that does not grant OpenEKM gives GENERATION_FAILED with the reason', async () => {
    await s.ekm!.ekm.admin.createCryptoSpace('space-denied', 'serviceAccount:someone-else@example.com');
    const conn = await connection('coordinated-denied', {
      serviceResolvers: [resolver(hostOf(s.ekm!.ekm.httpsUrl))],
      keyManagementMode: 'CLOUD_KMS',
      cryptoSpacePath: 'v0/cryptospaces/space-denied',
    });
    const key = await vpcKey('coord-denied', conn.name, {}, false);
    assert.equal(key.primary.state, 'GENERATION_FAILED', JSON.stringify(key));
    assert.match(key.primary.generationFailureReason, /EXTERNAL_PERMISSION_DENIED/);
    const enc = await s.call('POST', `/v1/${key.name}:encrypt`, { plaintext: b64('x') });
    assert.equal(enc.status, 400);
  });
});
