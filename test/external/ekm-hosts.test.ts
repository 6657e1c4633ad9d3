/**
 * Server-side request forgery through EKM connections: the EKM host allow-list (OPENEKM_EKM_ALLOWED_HOSTS, here
 * its default: public addresses only) refuses loopback, link-local, private and metadata hosts in every numeric
 * form, and the transport refuses a name that resolves to such an address (DNS rebinding) before anything is sent.
 * verifyConnectivity needs more than the viewer role; the health report shows a domain and a fixed message, and
 * anonymous viewers of a public status page see no project's connections.
 */
import assert from 'node:assert/strict';
import type { LookupFunction } from 'node:net';
import { after, before, test } from 'node:test';
import { hostOf, serverCertDer } from '../helpers/ekm-replicas.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ekmRequests } from './ext-helpers.js';

let s: TestStack;
let der: string;
let loc: string;
let ekmPort: number;

/** Every name resolves to the reference EKM's loopback address: what a rebinding DNS answer would do. */
const rebinding: LookupFunction = ((_host: string, options: { all?: boolean }, callback: any) =>
  options?.all
    ? callback(null, [{ address: '127.0.0.1', family: 4 }])
    : callback(null, '127.0.0.1', 4)) as unknown as LookupFunction;

before(async () => {
  s = await startTestStack({
    ekm: true,
    // No declared endpoints and the default allow-list: loopback is not allowed.
    ekmEndpoints: () => [],
    ekmTransport: { lookup: rebinding },
    env: {
      OPENEKM_EKM_ALLOWED_HOSTS: '',
      OPENEKM_STATUS_PUBLIC: 'true',
      OPENEKM_EKM_CONNECTION_TIMEOUT_MS: '2000',
    },
  });
  der = serverCertDer(s);
  loc = `/v1/projects/${s.project}/locations/us-east1`;
  ekmPort = Number(hostOf(s.ekm!.ekm.httpsUrl).split(':')[1]);
});
after(() => s?.stop());

const create = (id: string, hostname: string) =>
  s.call('POST', `${loc}/ekmConnections?ekmConnectionId=${id}`, {
    serviceResolvers: [{ hostname, serverCertificates: [{ rawDer: der }] }],
  });

test('loopback, link-local, private and metadata hosts are refused in every form', async () => {
  const forms = [
    '169.254.169.254',
    `127.0.0.1:${ekmPort}`,
    '0x7f000001',
    '2130706433',
    '127.1',
    '0177.0.0.1',
    '0x7f.1',
    '10.0.0.5:8443',
    '192.168.1.1',
    '172.16.0.1',
    '100.64.0.1',
    '0.0.0.0',
    'metadata.google.internal',
    'metadata',
    'localhost:9',
    '[::1]:443',
    '[::ffff:127.0.0.1]',
  ];
  let i = 0;
  for (const hostname of forms) {
    const res = await create(`bad-${i++}`, hostname);
    assert.equal(res.status, 400, `${hostname}: ${JSON.stringify(res.json)}`);
    assert.equal(res.json.error.status, 'INVALID_ARGUMENT', hostname);
    assert.match(res.json.error.message, /hostname/, hostname);
  }
  const list = await s.call('GET', `${loc}/ekmConnections`);
  assert.deepEqual(list.json.ekmConnections ?? [], [], 'nothing was created');
});

test('a public name stored canonically; resolving to loopback at connect time is refused before any request', async () => {
  const res = await create('rebind', `ekm.example.com:${ekmPort}`);
  assert.equal(res.status, 200, JSON.stringify(res.json));
  assert.equal(res.json.serviceResolvers[0].hostname, `ekm.example.com:${ekmPort}`);
  const before = ekmRequests(s).length;
  const verify = await s.call('GET', `/v1/${res.json.name}:verifyConnectivity`);
  assert.equal(verify.status, 400, JSON.stringify(verify.json));
  assert.equal(verify.json.error.status, 'FAILED_PRECONDITION');
  assert.equal(verify.json.error.details[0].violations[1].type, 'EXTERNAL_KEY_HOST_NOT_WHITELISTED');
  assert.ok(!JSON.stringify(verify.json).includes('127.0.0.1'), 'the address is not echoed');
  assert.equal(ekmRequests(s).length, before, 'nothing reached the server listening there');
});

test('verifyConnectivity needs cloudkms.ekmConnections.verifyConnectivity: a viewer may read but not verify', async () => {
  const conn = `/v1/projects/${s.project}/locations/us-east1/ekmConnections/rebind`;
  const policy = await s.call('POST', `${conn}:setIamPolicy`, {
    policy: { bindings: [{ role: 'roles/cloudkms.viewer', members: ['user:viewer@example.com'] }] },
  });
  assert.equal(policy.status, 200, JSON.stringify(policy.json));
  const token = await s.token('user:viewer@example.com');
  assert.equal((await s.call('GET', conn, undefined, { token })).status, 200);
  const verify = await s.call('GET', `${conn}:verifyConnectivity`, undefined, { token });
  assert.equal(verify.status, 403, JSON.stringify(verify.json));
  assert.match(verify.json.error.message, /cloudkms\.ekmConnections\.verifyConnectivity/);
});

test('the health report shows a domain and a fixed message; anonymous viewers see no project connection', async () => {
  const probe = await s.call('POST', '/health/probe', {});
  assert.equal(probe.status, 200, JSON.stringify(probe.json));
  const report = await s.call('GET', '/health/ekm');
  assert.equal(report.status, 200, JSON.stringify(report.json));
  const target = report.json.targets.find((t: any) => t.kind === 'connection');
  assert.ok(target, JSON.stringify(report.json));
  assert.equal(target.lastFailure.domain, 'EXTERNAL_KEY_HOST_NOT_WHITELISTED');
  assert.match(target.lastFailure.message, /OPENEKM_EKM_ALLOWED_HOSTS/);
  assert.ok(!target.lastFailure.message.includes('127.0.0.1'), target.lastFailure.message);
  const anonymous = await s.call('GET', '/health/ekm', undefined, { token: '' });
  assert.equal(anonymous.status, 200, JSON.stringify(anonymous.json));
  assert.deepEqual(
    anonymous.json.targets.filter((t: any) => t.kind === 'connection'),
    [],
    'a project connection is not shown to anonymous viewers',
  );
  const page = await s.call('GET', '/health/status', undefined, { token: '' });
  assert.ok(!JSON.stringify(page.json).includes('ekm.example.com'), 'nor on the status page');
});
