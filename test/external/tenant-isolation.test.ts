/**
 * One deployment, two projects: the owner of one project must not use or destroy another project's keys at the
 * EKM. Each project has its own identity at the EKM; a coordinated (CLOUD_KMS) version is bound to the replicas
 * and crypto space that generated it, and a key path the EKM answers outside the crypto space is refused. Also how
 * partner refusals are classified (by error code, never by message words) and the bound on EKM answers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { localEkmIdentity } from '../../scripts/lib/local-ekm.js';
import { hostOf, serverCertDer } from '../helpers/ekm-replicas.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertEkmError, b64, ekmRequests, externalKey, keyRing } from './ext-helpers.js';

let s: TestStack;
let der: string;
let victimRing: string;
/** The attacker's project, served by the same deployment and owned by the same local owner here. */
const attacker = `attacker-${randomBytes(4).toString('hex')}`;
let attackerRing: string;

/** An EKM the attacker runs: answers createKey with whatever key path the test sets, over the EKM's own cert. */
let hostile: Server;
let hostileHost: string;
let answerPath = '';

before(async () => {
  s = await startTestStack({
    ekm: true,
    ekmTimeoutMs: 2000,
    // XKS has no per-call identity beyond the endpoint's credential: the XKS endpoints serve the victim only.
    ekmEndpoints: (declared, _ekm, project) =>
      declared.map((e) => (e.protocol === 'aws-xks-v1' ? { ...e, projects: [project] } : e)),
    env: { OPENEKM_EKM_CONNECTION_TIMEOUT_MS: '2000' },
  });
  der = serverCertDer(s);
  victimRing = await keyRing(s, 'victim');
  const res = await s.call('POST', `/v1/projects/${attacker}/locations/us-east1/keyRings?keyRingId=evil`, {});
  assert.equal(res.status, 200, JSON.stringify(res.json));
  attackerRing = `/v1/projects/${attacker}/locations/us-east1/keyRings/evil`;
  const tls = join(s.stateDir, 'ekm', 'tls');
  hostile = createServer(
    { cert: readFileSync(join(tls, 'server.pem')), key: readFileSync(join(tls, 'server.key')) },
    (req, res) => {
      req.resume();
      req.on('end', () => {
        const url = req.url ?? '';
        const body = url.endsWith(':createKey')
          ? { keyPath: answerPath }
          : url.endsWith(':checkCryptoSpacePermissions')
            ? { permissions: ['createKey', 'destroyKey', 'wrap', 'unwrap'] }
            : {};
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    },
  );
  await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
  const address = hostile.address();
  hostileHost = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
after(async () => {
  hostile?.closeAllConnections();
  await new Promise((resolve) => hostile?.close(resolve));
  await s.stop();
});

const resolver = (host: string) => ({ hostname: host, serverCertificates: [{ rawDer: der }] });

async function connection(project: string, id: string, host: string, space: string) {
  const res = await s.call(
    'POST',
    `/v1/projects/${project}/locations/us-east1/ekmConnections?ekmConnectionId=${id}`,
    {
      serviceResolvers: [resolver(host)],
      keyManagementMode: 'CLOUD_KMS',
      cryptoSpacePath: space,
    },
  );
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json.name as string;
}

async function coordinatedKey(ring: string, id: string, conn: string) {
  const res = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}`, {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'EXTERNAL_VPC', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    cryptoKeyBackend: conn,
    destroyScheduledDuration: '86400s',
  });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json as { name: string; primary: Record<string, any> };
}

test("each project has its own EKM identity: a project cannot use another project's EKM key", async () => {
  const keyId = 'victim-external';
  await s.ekm!.ekm.admin.createKey(keyId);
  const uri = s.ekm!.keyUri(keyId, 'google');
  const victim = await externalKey(s, victimRing, 'ext', uri);
  const enc = await s.call('POST', `/v1/${victim.key.replace(/^\/v1\//, '')}:encrypt`, {
    plaintext: b64('b'),
  });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));

  // The attacker names the victim's key URI on a key of its own project: the EKM refuses its identity.
  const key = await s.call(
    'POST',
    `${attackerRing}/cryptoKeys?cryptoKeyId=stolen&skipInitialVersionCreation=true`,
    {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    },
  );
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const before = ekmRequests(s, keyId).length;
  const v = await s.call('POST', `${attackerRing}/cryptoKeys/stolen/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: uri },
  });
  assertEkmError(v, 'EXTERNAL_PERMISSION_DENIED', `${attackerRing.slice(4)}/cryptoKeys/stolen`, uri);
  const calls = ekmRequests(s, keyId).slice(before);
  assert.equal(calls.length, 1, JSON.stringify(calls));
  assert.equal(
    calls[0]!.principal,
    localEkmIdentity(attacker),
    'the call carried the attacker project identity',
  );
  assert.equal(calls[0]!.outcome, 'PERMISSION_DENIED');
});

test("XKS: an endpoint that serves named projects refuses another project's key URI before calling", async () => {
  const keyId = 'victim-xks';
  await s.ekm!.ekm.admin.createKey(keyId);
  const uri = s.ekm!.keyUri(keyId, 'xks');
  const victim = await externalKey(s, victimRing, 'xks', uri);
  const enc = await s.call('POST', `/v1/${victim.key.replace(/^\/v1\//, '')}:encrypt`, {
    plaintext: b64('b'),
  });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  const key = await s.call(
    'POST',
    `${attackerRing}/cryptoKeys?cryptoKeyId=stolen-xks&skipInitialVersionCreation=true`,
    {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    },
  );
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const before = ekmRequests(s, keyId).length;
  const v = await s.call('POST', `${attackerRing}/cryptoKeys/stolen-xks/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: uri },
  });
  assertEkmError(
    v,
    'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
    `${attackerRing.slice(4)}/cryptoKeys/stolen-xks`,
    uri,
  );
  assert.equal(ekmRequests(s, keyId).length, before, 'nothing reached the EKM');
});

test("a coordinated version cannot reach another project's key: path outside the crypto space, changed hosts", async () => {
  // The victim: a coordinated key generated in its own crypto space at the real EKM.
  await s.ekm!.ekm.admin.createCryptoSpace('space-victim', localEkmIdentity(s.project));
  const victimConn = await connection(
    s.project,
    'victim-conn',
    hostOf(s.ekm!.ekm.httpsUrl),
    'v0/cryptospaces/space-victim',
  );
  const victimKey = await coordinatedKey(victimRing, 'victim-coord', victimConn);
  assert.equal(victimKey.primary.state, 'ENABLED', JSON.stringify(victimKey));
  const victimPath = victimKey.primary.externalProtectionLevelOptions.ekmConnectionKeyPath as string;
  const victimKeyId = victimPath.slice(victimPath.lastIndexOf('/') + 1);
  const enc = await s.call('POST', `/v1/${victimKey.name}:encrypt`, { plaintext: b64('victim data') });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  answerPath = victimPath;

  // 1. The attacker's EKM answers the victim's key path for the attacker's own crypto space: refused.
  const outside = await connection(attacker, 'evil-1', hostileHost, 'v0/cryptospaces/space-attacker');
  const refused = await coordinatedKey(attackerRing, 'evil-1', outside);
  assert.equal(refused.primary.state, 'GENERATION_FAILED', JSON.stringify(refused));
  assert.match(refused.primary.generationFailureReason, /UNEXPECTED_RESPONSE/);
  assert.equal(refused.primary.externalProtectionLevelOptions, undefined);

  // 2. The attacker claims the victim's crypto space: the path lies inside it, so the version is generated — but
  // it is bound to the attacker's EKM. Pointing the connection at the real EKM afterwards gains nothing.
  const inside = await connection(attacker, 'evil-2', hostileHost, 'v0/cryptospaces/space-victim');
  const bound = await coordinatedKey(attackerRing, 'evil-2', inside);
  assert.equal(bound.primary.state, 'ENABLED', JSON.stringify(bound));
  const patched = await s.call('PATCH', `/v1/${inside}?updateMask=serviceResolvers`, {
    serviceResolvers: [resolver(hostOf(s.ekm!.ekm.httpsUrl))],
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  const calls = ekmRequests(s, victimKeyId).length;
  const use = await s.call('POST', `/v1/${bound.name}:encrypt`, { plaintext: b64('x') });
  assert.equal(use.status, 400, JSON.stringify(use.json));
  assert.equal(
    use.json.error.details[0].violations[1].type,
    'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
    JSON.stringify(use.json),
  );
  const d = await s.call('POST', `/v1/${bound.name}/cryptoKeyVersions/1:destroy`, {});
  assert.equal(d.json.state, 'DESTROY_SCHEDULED', JSON.stringify(d.json));
  s.advance(25 * 3600_000);
  const probe = await s.call('POST', '/health/probe', {});
  assert.equal(probe.status, 200, JSON.stringify(probe.json));
  const after = await s.call('GET', `/v1/${bound.name}/cryptoKeyVersions/1`);
  assert.equal(after.json.state, 'EXTERNAL_DESTRUCTION_FAILED', JSON.stringify(after.json));
  assert.match(after.json.externalDestructionFailureReason, /not destroyed: none of the replicas/);
  assert.equal(ekmRequests(s, victimKeyId).length, calls, "nothing reached the victim's key at the EKM");

  // The victim's key is intact.
  assert.equal(s.ekm!.ekm.admin.showKey(victimKeyId).status, 'ENABLED');
  const dec = await s.call('POST', `/v1/${victimKey.name}:decrypt`, { ciphertext: enc.json.ciphertext });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'victim data');
});

test('a refusal of OpenEKM identity disables the version whatever words its message holds', async () => {
  // The EKM's message names the key, and this key's id holds the word "justification".
  const keyId = 'justification-ledger';
  await s.ekm!.ekm.admin.createKey(keyId);
  const uri = s.ekm!.keyUri(keyId, 'google');
  const { key, version } = await externalKey(s, victimRing, 'ledger', uri);
  await s.ekm!.ekm.admin.revoke(keyId, localEkmIdentity(s.project));
  const res = await s.call('POST', `/v1/${key.replace(/^\/v1\//, '')}:encrypt`, { plaintext: b64('x') });
  assertEkmError(res, 'EXTERNAL_PERMISSION_DENIED', version, uri);
  const got = await s.call('GET', `/v1/${version}`);
  assert.equal(
    got.json.state,
    'DISABLED',
    'refused by error code (PERMISSION_DENIED, ErrorInfo ACCESS_DENIED)',
  );
});

test("a partner's justification refusal never disables the version", async () => {
  const keyId = 'kaj-refuses';
  await s.ekm!.ekm.admin.createKey(keyId);
  const uri = s.ekm!.keyUri(keyId, 'google');
  const { key, version } = await externalKey(s, victimRing, 'kaj', uri);
  await s.ekm!.ekm.admin.setJustifications(keyId, 'CUSTOMER_INITIATED_SUPPORT', {
    allowMissing: false,
    allowUnknown: false,
  });
  const res = await s.call('POST', `/v1/${key.replace(/^\/v1\//, '')}:encrypt`, { plaintext: b64('x') });
  assertEkmError(res, 'EXTERNAL_PERMISSION_DENIED', version, uri);
  const got = await s.call('GET', `/v1/${version}`);
  assert.equal(got.json.state, 'ENABLED');
});

test('an EKM answer larger than 64 KiB is refused as UNEXPECTED_RESPONSE', async () => {
  const keyId = 'oversize';
  await s.ekm!.ekm.admin.createKey(keyId);
  const uri = s.ekm!.keyUri(keyId, 'google');
  const { key, version } = await externalKey(s, victimRing, 'big', uri);
  await s.ekm!.ekm.admin.setFault({ target: keyId, kind: 'oversize', rate: 1 });
  try {
    const res = await s.call('POST', `/v1/${key.replace(/^\/v1\//, '')}:encrypt`, { plaintext: b64('x') });
    assertEkmError(res, 'UNEXPECTED_RESPONSE', version, uri);
  } finally {
    await s.ekm!.ekm.admin.clearFaults();
  }
  const got = await s.call('GET', `/v1/${version}`);
  assert.equal(got.json.state, 'ENABLED');
});
