/**
 * IAM: policies on key rings and crypto keys (getIamPolicy / setIamPolicy / testIamPermissions), the predefined
 * roles checked on every method, inheritance project → key ring → key, etags, validation, PERMISSION_DENIED that
 * never reveals whether a resource exists, and the scheduled-task operator permission.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { localGatewayEnv } from '../../scripts/lib/local-state.js';
import { Gateway } from '../../shared/api/gateway.js';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertDenied, assertError, callAs, ok, tokenFor, violationField } from './admin-helpers.js';

let s: TestStack;
let loc: string;
let ring: string;
let key: string;
let sibling: string;

const ALICE = 'user:alice@example.com';

const tokenOf = (principal: string) => tokenFor(s, principal);

/** Replaces the policy of `resource` (a /v1/ path) with `bindings`, as the owner. */
async function setPolicy(resource: string, bindings: { role: string; members: string[] }[]): Promise<void> {
  ok(await s.call('POST', `${resource}:setIamPolicy`, { policy: { bindings } }));
}

const as = (principal: string, method: string, path: string, body?: unknown) =>
  callAs(s, principal, method, path, body);

const denied = assertDenied;

before(async () => {
  s = await startTestStack();
  loc = `/v1/projects/${s.project}/locations/global`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=iam`, {}));
  ring = `${loc}/keyRings/iam`;
  ok(await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=k`, { purpose: 'ENCRYPT_DECRYPT' }));
  ok(await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=sibling`, { purpose: 'ENCRYPT_DECRYPT' }));
  key = `${ring}/cryptoKeys/k`;
  sibling = `${ring}/cryptoKeys/sibling`;
});
after(async () => {
  await s?.stop();
});

test('a new resource has an empty policy; the owner sets one and reads it back', async () => {
  const empty = ok(await s.call('GET', `${key}:getIamPolicy`));
  assert.deepEqual(empty, { version: 1, etag: 'ACAB' });
  const set = ok(
    await s.call('POST', `${sibling}:setIamPolicy`, {
      policy: {
        bindings: [
          { role: 'roles/cloudkms.viewer', members: ['user:v@example.com', 'user:v@example.com'] },
          { role: 'roles/cloudkms.viewer', members: ['domain:example.org'] },
        ],
      },
    }),
  );
  assert.equal(set.version, 1);
  assert.deepEqual(set.bindings, [
    { role: 'roles/cloudkms.viewer', members: ['user:v@example.com', 'domain:example.org'] },
  ]);
  assert.ok(set.etag && set.etag !== 'ACAB');
  const got = ok(await s.call('GET', `${sibling}:getIamPolicy?options.requestedPolicyVersion=3`));
  assert.deepEqual(got, set);
  await setPolicy(sibling, []);
  const cleared = ok(await s.call('GET', `${sibling}:getIamPolicy`));
  assert.equal(cleared.bindings, undefined);
});

test('other principals start with nothing: 403 on every method, without revealing existence', async () => {
  const nobody = 'user:nobody@example.com';
  denied(await as(nobody, 'GET', key), 'cloudkms.cryptoKeys.get', key);
  const missing = `${ring}/cryptoKeys/does-not-exist`;
  denied(await as(nobody, 'GET', missing), 'cloudkms.cryptoKeys.get', missing);
  const missingRing = `${loc}/keyRings/nope`;
  denied(await as(nobody, 'GET', missingRing), 'cloudkms.keyRings.get', missingRing);
  denied(await as(nobody, 'GET', `${loc}/keyRings`), 'cloudkms.keyRings.list', loc);
  denied(await as(nobody, 'POST', `${loc}/keyRings?keyRingId=x`, {}), 'cloudkms.keyRings.create', loc);
  denied(
    await as(nobody, 'POST', `${key}:encrypt`, { plaintext: 'aGk=' }),
    'cloudkms.cryptoKeyVersions.useToEncrypt',
    key,
  );
  denied(
    await as(nobody, 'POST', `${missing}:encrypt`, { plaintext: 'aGk=' }),
    'cloudkms.cryptoKeyVersions.useToEncrypt',
    missing,
  );
  denied(await as(nobody, 'GET', `${key}:getIamPolicy`), 'cloudkms.cryptoKeys.getIamPolicy', key);
  denied(
    await as(nobody, 'POST', `${key}:setIamPolicy`, {
      policy: { bindings: [{ role: 'roles/owner', members: [nobody] }] },
    }),
    'cloudkms.cryptoKeys.setIamPolicy',
    key,
  );
  // Unauthenticated is still 401, not 403.
  assertError(await s.call('GET', key, undefined, { token: '' }), 401, 'UNAUTHENTICATED');
  // The owner sees 404 for a missing resource, as before.
  assertError(await s.call('GET', missing), 404, 'NOT_FOUND');
});

test('role × method: viewer, encrypter, decrypter, encrypterDecrypter, admin, owner', async () => {
  const ck = (p: string) => `${ring}/cryptoKeys/${p}`;
  ok(await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=matrix`, { purpose: 'ENCRYPT_DECRYPT' }));
  const m = ck('matrix');
  const principals = {
    viewer: 'user:viewer@example.com',
    enc: 'user:enc@example.com',
    dec: 'user:dec@example.com',
    encdec: 'serviceAccount:app@proj.iam.gserviceaccount.com',
    admin: 'user:admin@example.com',
    owner: 'user:keyowner@example.com',
  };
  await setPolicy(m, [
    { role: 'roles/cloudkms.viewer', members: [principals.viewer] },
    { role: 'roles/cloudkms.cryptoKeyEncrypter', members: [principals.enc] },
    { role: 'roles/cloudkms.cryptoKeyDecrypter', members: [principals.dec] },
    { role: 'roles/cloudkms.cryptoKeyEncrypterDecrypter', members: [principals.encdec] },
    { role: 'roles/cloudkms.admin', members: [principals.admin] },
    { role: 'roles/owner', members: [principals.owner] },
  ]);
  const ct = ok(await s.call('POST', `${m}:encrypt`, { plaintext: 'aGk=' })).ciphertext as string;
  type Who = keyof typeof principals;
  const cases: [string, string, unknown, string, Who[]][] = [
    ['GET', m, undefined, 'cloudkms.cryptoKeys.get', ['viewer', 'admin', 'owner']],
    [
      'GET',
      `${m}/cryptoKeyVersions`,
      undefined,
      'cloudkms.cryptoKeyVersions.list',
      ['viewer', 'admin', 'owner'],
    ],
    [
      'GET',
      `${m}/cryptoKeyVersions/1`,
      undefined,
      'cloudkms.cryptoKeyVersions.get',
      ['viewer', 'admin', 'owner'],
    ],
    [
      'POST',
      `${m}:encrypt`,
      { plaintext: 'aGk=' },
      'cloudkms.cryptoKeyVersions.useToEncrypt',
      ['enc', 'encdec', 'owner'],
    ],
    [
      'POST',
      `${m}:decrypt`,
      { ciphertext: ct },
      'cloudkms.cryptoKeyVersions.useToDecrypt',
      ['dec', 'encdec', 'owner'],
    ],
    [
      'PATCH',
      `${m}?updateMask=labels`,
      { labels: { a: 'b' } },
      'cloudkms.cryptoKeys.update',
      ['admin', 'owner'],
    ],
    ['POST', `${m}/cryptoKeyVersions`, {}, 'cloudkms.cryptoKeyVersions.create', ['admin', 'owner']],
    ['GET', `${m}:getIamPolicy`, undefined, 'cloudkms.cryptoKeys.getIamPolicy', ['admin', 'owner']],
  ];
  for (const [method, path, body, permission, allowed] of cases) {
    for (const who of Object.keys(principals) as Who[]) {
      const res = await as(principals[who], method, path, body);
      const resource = path.replace(/[?:].*$/, '').replace(/\/cryptoKeyVersions$/, '');
      if (allowed.includes(who)) {
        assert.equal(res.status, 200, `${who} ${method} ${path}: ${JSON.stringify(res.json)}`);
      } else {
        denied(res, permission, resource);
      }
    }
  }
  // destroy / restore: admin yes, encrypter no.
  denied(
    await as(principals.encdec, 'POST', `${m}/cryptoKeyVersions/2:destroy`, {}),
    'cloudkms.cryptoKeyVersions.destroy',
    `${m}/cryptoKeyVersions/2`,
  );
  ok(await as(principals.admin, 'POST', `${m}/cryptoKeyVersions/2:destroy`, {}));
  ok(await as(principals.admin, 'POST', `${m}/cryptoKeyVersions/2:restore`, {}));
  // A key-level binding grants nothing on the key ring: listing its keys needs cryptoKeys.list on the ring.
  denied(await as(principals.admin, 'GET', `${ring}/cryptoKeys`), 'cloudkms.cryptoKeys.list', ring);
  denied(
    await as(principals.admin, 'POST', `${ring}/cryptoKeys?cryptoKeyId=new`, {}),
    'cloudkms.cryptoKeys.create',
    ring,
  );
  // The admin manages IAM on the key: it may grant itself encrypt use (as in Cloud KMS).
  ok(await as(principals.admin, 'POST', `${m}:setIamPolicy`, { policy: { bindings: [] } }));
  denied(await as(principals.admin, 'GET', m), 'cloudkms.cryptoKeys.get', m);
});

test('inheritance: a binding on the key ring applies to its keys; one on a key not to its sibling', async () => {
  const bob = 'user:bob@example.com';
  await setPolicy(key, [{ role: 'roles/cloudkms.cryptoKeyEncrypter', members: [bob] }]);
  ok(await as(bob, 'POST', `${key}:encrypt`, { plaintext: 'aGk=' }));
  ok(await as(bob, 'POST', `${key}/cryptoKeyVersions/1:encrypt`, { plaintext: 'aGk=' }));
  denied(
    await as(bob, 'POST', `${sibling}:encrypt`, { plaintext: 'aGk=' }),
    'cloudkms.cryptoKeyVersions.useToEncrypt',
    sibling,
  );
  await setPolicy(key, []);
  const carol = 'user:carol@example.org';
  await setPolicy(ring, [
    { role: 'roles/cloudkms.viewer', members: ['domain:example.org'] },
    { role: 'roles/cloudkms.cryptoKeyEncrypterDecrypter', members: [carol] },
  ]);
  ok(await as(carol, 'POST', `${sibling}:encrypt`, { plaintext: 'aGk=' }));
  ok(await as(carol, 'POST', `${key}:encrypt`, { plaintext: 'aGk=' }));
  const list = ok(await as(carol, 'GET', `${ring}/cryptoKeys`));
  assert.ok(list.cryptoKeys.length >= 2);
  ok(await as('user:dave@example.org', 'GET', ring));
  denied(await as('user:dave@example.com', 'GET', ring), 'cloudkms.keyRings.get', ring);
  // Viewer on the ring is not list on the location.
  denied(await as(carol, 'GET', `${loc}/keyRings`), 'cloudkms.keyRings.list', loc);
  await setPolicy(ring, []);
  denied(
    await as(carol, 'POST', `${key}:encrypt`, { plaintext: 'aGk=' }),
    'cloudkms.cryptoKeyVersions.useToEncrypt',
    key,
  );
});

test('setIamPolicy: read-modify-write with the etag; a stale etag is ABORTED (409)', async () => {
  const first = ok(await s.call('GET', `${key}:getIamPolicy`));
  const a = ok(
    await s.call('POST', `${key}:setIamPolicy`, {
      policy: { etag: first.etag, bindings: [{ role: 'roles/cloudkms.viewer', members: [ALICE] }] },
    }),
  );
  assert.notEqual(a.etag, first.etag);
  const stale = await s.call('POST', `${key}:setIamPolicy`, {
    policy: { etag: first.etag, bindings: [] },
  });
  assertError(stale, 409, 'ABORTED', 'etag', 'getIamPolicy');
  // The policy is unchanged by the refused write.
  assert.deepEqual(ok(await s.call('GET', `${key}:getIamPolicy`)).bindings, a.bindings);
  // The etag is bytes: it may come back in the URL-safe alphabet without padding (as gcloud sends it).
  const urlSafe = Buffer.from(a.etag, 'base64').toString('base64url');
  ok(await s.call('POST', `${key}:setIamPolicy`, { policy: { etag: urlSafe, bindings: [] } }));
  // Concurrent writers with the same etag: exactly one wins.
  const cur = ok(await s.call('GET', `${key}:getIamPolicy`));
  const results = await Promise.all(
    [1, 2, 3].map((i) =>
      s.call('POST', `${key}:setIamPolicy`, {
        policy: {
          etag: cur.etag,
          bindings: [{ role: 'roles/cloudkms.viewer', members: [`user:w${i}@example.com`] }],
        },
      }),
    ),
  );
  assert.deepEqual(results.map((r) => r.status).sort(), [200, 409, 409]);
  await setPolicy(key, []);
});

test('invalid policies are INVALID_ARGUMENT naming the field', async () => {
  const bad = async (policy: unknown, field: string, ...msg: string[]) => {
    const res = await s.call('POST', `${key}:setIamPolicy`, { policy });
    assertError(res, 400, 'INVALID_ARGUMENT', ...msg);
    assert.equal(violationField(res), field);
  };
  await bad(
    { bindings: [{ role: 'roles/cloudkms.wizard', members: [ALICE] }] },
    'policy.bindings[0].role',
    'roles/cloudkms.admin',
  );
  await bad(
    { bindings: [{ role: 'roles/cloudkms.viewer', members: ['alice@example.com'] }] },
    'policy.bindings[0].members[0]',
    'user:{email}',
  );
  await bad({ bindings: [{ role: 'roles/cloudkms.viewer', members: [] }] }, 'policy.bindings[0].members');
  await bad({ version: 2, bindings: [] }, 'policy.version', 'use 1 or 3');
  await bad(
    {
      version: 1,
      bindings: [{ role: 'roles/cloudkms.viewer', members: [ALICE], condition: { expression: 'true' } }],
    },
    'policy.version',
    'version 3',
  );
  await bad(
    { bindings: [{ role: 'roles/cloudkms.viewer', members: [ALICE], extra: 1 }] },
    'policy.bindings[0].extra',
  );
  assertError(await s.call('POST', `${key}:setIamPolicy`, {}), 400, 'INVALID_ARGUMENT', 'policy');
  assertError(
    await s.call('GET', `${key}:getIamPolicy?options.requestedPolicyVersion=2`),
    400,
    'INVALID_ARGUMENT',
    '1 or 3',
  );
  // Version 3 with a condition is stored and needs version 3 to read; a condition that no longer holds grants
  // nothing (docs/iam.md).
  const v3 = ok(
    await s.call('POST', `${sibling}:setIamPolicy`, {
      policy: {
        version: 3,
        bindings: [
          {
            role: 'roles/cloudkms.cryptoKeyEncrypter',
            members: ['user:cond@example.com'],
            condition: {
              expression: 'request.time < timestamp("2020-01-01T00:00:00Z")',
              title: 'until 2020',
            },
          },
        ],
      },
    }),
  );
  assert.equal(v3.version, 3);
  assertError(
    await s.call('GET', `${sibling}:getIamPolicy`),
    400,
    'INVALID_ARGUMENT',
    'requestedPolicyVersion=3',
  );
  assert.equal(
    ok(await s.call('GET', `${sibling}:getIamPolicy?options.requestedPolicyVersion=3`)).version,
    3,
  );
  denied(
    await as('user:cond@example.com', 'POST', `${sibling}:encrypt`, { plaintext: 'aGk=' }),
    'cloudkms.cryptoKeyVersions.useToEncrypt',
    sibling,
  );
  await setPolicy(sibling, []);
  // Policies on missing resources: the owner learns they are missing.
  assertError(await s.call('GET', `${ring}/cryptoKeys/none:getIamPolicy`), 404, 'NOT_FOUND');
  assertError(await s.call('POST', `${ring}/cryptoKeys/none:setIamPolicy`, { policy: {} }), 404, 'NOT_FOUND');
});

test('testIamPermissions returns the subset held, and reveals nothing to a caller who holds nothing', async () => {
  const asked = [
    'cloudkms.cryptoKeys.get',
    'cloudkms.cryptoKeyVersions.useToEncrypt',
    'cloudkms.cryptoKeyVersions.useToDecrypt',
    'cloudkms.cryptoKeys.setIamPolicy',
  ];
  await setPolicy(key, [{ role: 'roles/cloudkms.cryptoKeyEncrypter', members: [ALICE] }]);
  await setPolicy(ring, [{ role: 'roles/cloudkms.viewer', members: [ALICE] }]);
  const held = ok(await as(ALICE, 'POST', `${key}:testIamPermissions`, { permissions: asked }));
  assert.deepEqual(held.permissions, ['cloudkms.cryptoKeys.get', 'cloudkms.cryptoKeyVersions.useToEncrypt']);
  assert.deepEqual(
    ok(await s.call('POST', `${key}:testIamPermissions`, { permissions: asked })).permissions,
    asked,
  );
  const none = ok(
    await as('user:nobody@example.com', 'POST', `${key}:testIamPermissions`, { permissions: asked }),
  );
  assert.deepEqual(none, {});
  const missing = ok(
    await as('user:nobody@example.com', 'POST', `${ring}/cryptoKeys/nope:testIamPermissions`, {
      permissions: asked,
    }),
  );
  assert.deepEqual(missing, {});
  assertError(
    await s.call('POST', `${ring}/cryptoKeys/nope:testIamPermissions`, { permissions: asked }),
    404,
    'NOT_FOUND',
  );
  const wild = await s.call('POST', `${key}:testIamPermissions`, { permissions: ['cloudkms.*'] });
  assertError(wild, 400, 'INVALID_ARGUMENT', 'no wildcards');
  await setPolicy(key, []);
  await setPolicy(ring, []);
});

test('the scheduled tasks need the operator permission', async () => {
  const res = await as(ALICE, 'POST', '/health/tasks:run', {});
  assertError(res, 403, 'PERMISSION_DENIED', 'openekm.tasks.run', 'OPENEKM_OPERATORS');
  ok(await s.call('POST', '/health/tasks:run', {}));
});

test('project owners come from configuration: OPENEKM_PROJECT_OWNERS owns one project, not another', async () => {
  const env = {
    ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST!, s.stateDir)),
    OPENEKM_FIRESTORE_PROJECT: s.project,
    OPENEKM_DEFAULT_OWNERS: '[]',
    OPENEKM_PROJECT_OWNERS: JSON.stringify({ [s.project]: ['domain:owners.example.com'] }),
  };
  const g = new Gateway({ config: loadConfig(env), logger: createLogger('error', () => undefined) });
  const call = async (principal: string, method: string, path: string) => {
    const res = await g.handle('keyAdmin', {
      method,
      path,
      query: new URLSearchParams(),
      headers: { authorization: `Bearer ${await tokenOf(principal)}` },
    });
    return res.status;
  };
  try {
    assert.equal(await call('user:ana@owners.example.com', 'GET', key), 200);
    assert.equal(await call('user:ana@owners.example.com', 'GET', `${loc}/keyRings`), 200);
    assert.equal(
      await call(
        'user:ana@owners.example.com',
        'GET',
        `/v1/projects/other-project/locations/global/keyRings`,
      ),
      403,
    );
    // Without OPENEKM_DEFAULT_OWNERS the local owner owns nothing on this instance.
    assert.equal(await call('user:owner@openekm.local', 'GET', key), 403);
    const tasks = await g.handle('healthCheck', {
      method: 'POST',
      path: '/health/tasks:run',
      query: new URLSearchParams(),
      headers: { authorization: `Bearer ${await tokenOf('user:ana@owners.example.com')}` },
    });
    assert.equal(tasks.status, 403, 'a project owner is not an operator');
  } finally {
    await g.close();
  }
});

test('bootstrap configuration is validated with clear errors', () => {
  const base = {
    OPENEKM_ROOT_KEYS: `r:${Buffer.alloc(32).toString('base64')}`,
    OPENEKM_TRUSTED_ISSUERS: '[{"issuer":"i","audiences":["a"],"jwks":{"keys":[]}}]',
  };
  assert.throws(
    () => loadConfig({ ...base, OPENEKM_DEFAULT_OWNERS: 'alice' }),
    /OPENEKM_DEFAULT_OWNERS is not valid JSON/,
  );
  assert.throws(
    () => loadConfig({ ...base, OPENEKM_DEFAULT_OWNERS: '["alice@example.com"]' }),
    /OPENEKM_DEFAULT_OWNERS is invalid: .*user:\{email\}/,
  );
  assert.throws(
    () => loadConfig({ ...base, OPENEKM_PROJECT_OWNERS: '["user:a@b.com"]' }),
    /OPENEKM_PROJECT_OWNERS is invalid: give a JSON object/,
  );
  assert.throws(
    () => loadConfig({ ...base, OPENEKM_PROJECT_OWNERS: '{"p": "user:a@b.com"}' }),
    /OPENEKM_PROJECT_OWNERS\["p"\] is invalid/,
  );
  assert.throws(() => loadConfig({ ...base, OPENEKM_OPERATORS: '[1]' }), /OPENEKM_OPERATORS is invalid/);
  const c = loadConfig({ ...base, OPENEKM_OPERATORS: '["serviceAccount:sched@p.iam.gserviceaccount.com"]' });
  assert.deepEqual(c.operators, ['serviceAccount:sched@p.iam.gserviceaccount.com']);
  assert.deepEqual(c.defaultOwners, []);
  assert.deepEqual(c.projectOwners, {});
});

test('the audit entry records the IAM decision, granted or not', async () => {
  const denied403 = await as('user:auditee@example.com', 'GET', key, undefined);
  assert.equal(denied403.status, 403);
  ok(await s.call('GET', key, undefined, { headers: { 'x-request-id': 'iam-audit-granted' } }));
  const entries = s.logs
    .map((l) => JSON.parse(l))
    .filter((e) => e.protoPayload?.methodName?.endsWith('GetCryptoKey'));
  const name = key.slice('/v1/'.length);
  const decisions = entries.flatMap((e) => e.protoPayload.authorizationInfo ?? []);
  assert.ok(decisions.some((d: { granted: boolean; resource: string }) => !d.granted && d.resource === name));
  assert.ok(decisions.some((d: { granted: boolean; resource: string }) => d.granted && d.resource === name));
  assert.ok(decisions.every((d: { permission: string }) => d.permission === 'cloudkms.cryptoKeys.get'));
});
