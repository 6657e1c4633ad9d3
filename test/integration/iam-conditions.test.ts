/**
 * IAM conditions and group members against the real stack: a time-bound binding that grants until its time and
 * then stops, a resource.name.startsWith binding on a key ring that grants on one key and not its sibling,
 * resource.type, group membership from OPENEKM_GROUPS (in bindings, project owners and operators), Google's
 * version 3 rules, refusal of unsupported CEL at setIamPolicy, and denials that never reveal existence.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { localGatewayEnv } from '../../scripts/lib/local-state.js';
import { Authorizer, iamConfigOf } from '../../shared/access/iam.js';
import { RUN_TASKS } from '../../shared/access/roles.js';
import { loadConfig } from '../../shared/config.js';
import { ConfigError, RpcError } from '../../shared/errors.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertDenied, assertError, callAs, ok, violationField } from './admin-helpers.js';

let s: TestStack;
let ring: string;
let keyA: string;
let keyB: string;

const GROUPS = {
  'kms-team@example.com': ['user:member@example.com', 'serviceAccount:ci@p.iam.gserviceaccount.com'],
  'other-team@example.com': ['user:other@example.com'],
};
const ENCRYPTER = 'roles/cloudkms.cryptoKeyEncrypter';
const USE_TO_ENCRYPT = 'cloudkms.cryptoKeyVersions.useToEncrypt';

const as = (principal: string, method: string, path: string, body?: unknown) =>
  callAs(s, principal, method, path, body);

function encrypt(principal: string, key: string) {
  return as(principal, 'POST', `${key}:encrypt`, { plaintext: 'aGk=' });
}

const denied = assertDenied;

type Bindings = { role: string; members: string[]; condition?: { expression: string; title?: string } }[];

/** Replaces the policy of `resource` as the owner; version 3 when a binding has a condition. */
async function setPolicy(resource: string, bindings: Bindings): Promise<any> {
  const version = bindings.some((b) => b.condition) ? 3 : 1;
  return ok(await s.call('POST', `${resource}:setIamPolicy`, { policy: { version, bindings } }));
}

before(async () => {
  s = await startTestStack({ env: { OPENEKM_GROUPS: JSON.stringify(GROUPS) } });
  const loc = `/v1/projects/${s.project}/locations/global`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=cond`, {}));
  ring = `${loc}/keyRings/cond`;
  ok(await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=a`, { purpose: 'ENCRYPT_DECRYPT' }));
  ok(await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=b`, { purpose: 'ENCRYPT_DECRYPT' }));
  keyA = `${ring}/cryptoKeys/a`;
  keyB = `${ring}/cryptoKeys/b`;
});
after(async () => {
  await s?.stop();
});

test('a time-bound binding grants until its time, then stops (real clock through the gateway)', async () => {
  const until = new Date(Date.now() + 4000).toISOString();
  await setPolicy(keyA, [
    {
      role: ENCRYPTER,
      members: ['user:temp@example.com'],
      condition: { expression: `request.time < timestamp("${until}")`, title: 'four seconds' },
    },
    {
      role: ENCRYPTER,
      members: ['user:later@example.com'],
      condition: {
        expression: `request.time >= timestamp("${new Date(Date.now() + 3_600_000).toISOString()}")`,
      },
    },
  ]);
  ok(await encrypt('user:temp@example.com', keyA));
  denied(await encrypt('user:later@example.com', keyA), USE_TO_ENCRYPT, keyA);
  await sleep(Date.parse(until) - Date.now() + 300);
  denied(await encrypt('user:temp@example.com', keyA), USE_TO_ENCRYPT, keyA);
  await setPolicy(keyA, []);
});

test('request.time is the clock the authorizer is given: the stack clock moves a grant past its end', async () => {
  // The gateway's own Authorizer reads the system clock (shared/api/app.ts does not hand it Deps.now); one built
  // with the stack's clock, reading the same cached policies, shows request.time following Deps.now.
  const authorizer = new Authorizer(
    iamConfigOf(s.gateway.deps.config),
    s.gateway.deps.cache,
    s.gateway.deps.now,
  );
  const until = new Date(s.gateway.deps.now().getTime() + 3_600_000).toISOString();
  await setPolicy(keyA, [
    {
      role: ENCRYPTER,
      members: ['user:clock@example.com'],
      condition: { expression: `request.time < timestamp("${until}")` },
    },
  ]);
  const caller = { principal: 'user:clock@example.com', issuer: '' };
  const name = keyA.replace(/^\/v1\//, '');
  assert.deepEqual([...(await authorizer.held(caller, name, [USE_TO_ENCRYPT]))], [USE_TO_ENCRYPT]);
  s.advance(3_600_000);
  try {
    assert.deepEqual([...(await authorizer.held(caller, name, [USE_TO_ENCRYPT]))], []);
    await assert.rejects(
      Promise.resolve(authorizer.authorize(caller, USE_TO_ENCRYPT, name)),
      (err: unknown) => err instanceof RpcError && err.code === 'PERMISSION_DENIED',
    );
  } finally {
    s.advance(-3_600_000);
    await setPolicy(keyA, []);
  }
});

test('resource.name.startsWith on a key ring grants on one key, not its sibling; resource.type narrows roles', async () => {
  const name = (p: string) => p.replace(/^\/v1\//, '');
  await setPolicy(ring, [
    {
      role: ENCRYPTER,
      members: ['user:prefix@example.com'],
      condition: { expression: `resource.name.startsWith("${name(keyA)}")`, title: 'key a only' },
    },
    {
      role: 'roles/cloudkms.viewer',
      members: ['user:prefix@example.com'],
      condition: { expression: 'resource.type == "cloudkms.googleapis.com/CryptoKey"' },
    },
  ]);
  ok(await encrypt('user:prefix@example.com', keyA));
  ok(await encrypt('user:prefix@example.com', `${keyA}/cryptoKeyVersions/1`));
  denied(await encrypt('user:prefix@example.com', keyB), USE_TO_ENCRYPT, keyB);
  // Viewer on keys only: each key may be read, the key ring may not, and listing (checked on the ring) is refused.
  assert.equal(ok(await as('user:prefix@example.com', 'GET', keyB)).name, name(keyB));
  denied(await as('user:prefix@example.com', 'GET', ring), 'cloudkms.keyRings.get', ring);
  denied(await as('user:prefix@example.com', 'GET', `${ring}/cryptoKeys`), 'cloudkms.cryptoKeys.list', ring);
  denied(
    await as('user:prefix@example.com', 'GET', `${keyA}/cryptoKeyVersions/1`),
    'cloudkms.cryptoKeyVersions.get',
    `${keyA}/cryptoKeyVersions/1`,
  );
  // testIamPermissions answers by the same rule.
  const asked = { permissions: [USE_TO_ENCRYPT, 'cloudkms.cryptoKeys.get'] };
  assert.deepEqual(ok(await as('user:prefix@example.com', 'POST', `${keyA}:testIamPermissions`, asked)), {
    permissions: [USE_TO_ENCRYPT, 'cloudkms.cryptoKeys.get'],
  });
  assert.deepEqual(ok(await as('user:prefix@example.com', 'POST', `${keyB}:testIamPermissions`, asked)), {
    permissions: ['cloudkms.cryptoKeys.get'],
  });
  assert.deepEqual(ok(await as('user:prefix@example.com', 'POST', `${ring}:testIamPermissions`, asked)), {});
  await setPolicy(ring, []);
});

test('a denial through a condition that does not hold reveals nothing about existence', async () => {
  await setPolicy(ring, [
    {
      role: 'roles/cloudkms.viewer',
      members: ['user:peek@example.com'],
      condition: { expression: `resource.name == "${keyA.replace(/^\/v1\//, '')}"` },
    },
  ]);
  const missing = `${ring}/cryptoKeys/missing`;
  const onExisting = await as('user:peek@example.com', 'GET', keyB);
  const onMissing = await as('user:peek@example.com', 'GET', missing);
  denied(onExisting, 'cloudkms.cryptoKeys.get', keyB);
  denied(onMissing, 'cloudkms.cryptoKeys.get', missing);
  assert.equal(
    onExisting.json.error.message.replace('/cryptoKeys/b', '/cryptoKeys/X'),
    onMissing.json.error.message.replace('/cryptoKeys/missing', '/cryptoKeys/X'),
  );
  assert.deepEqual(onExisting.json.error.details, onMissing.json.error.details);
  assert.deepEqual(
    ok(
      await as('user:peek@example.com', 'POST', `${missing}:testIamPermissions`, {
        permissions: ['cloudkms.cryptoKeys.get'],
      }),
    ),
    {},
  );
  ok(await as('user:peek@example.com', 'GET', keyA));
  await setPolicy(ring, []);
});

test('group: members grant to the principals OPENEKM_GROUPS lists, and to no one else', async () => {
  await setPolicy(keyB, [{ role: ENCRYPTER, members: ['group:KMS-Team@Example.com'] }]);
  ok(await encrypt('user:member@example.com', keyB));
  ok(await encrypt('user:Member@Example.com', keyB));
  ok(await encrypt('serviceAccount:ci@p.iam.gserviceaccount.com', keyB));
  denied(await encrypt('user:other@example.com', keyB), USE_TO_ENCRYPT, keyB);
  denied(await encrypt('user:outsider@example.com', keyB), USE_TO_ENCRYPT, keyB);
  denied(await encrypt('user:member@example.com', keyA), USE_TO_ENCRYPT, keyA);
  // A group configuration does not know grants nothing.
  await setPolicy(keyB, [{ role: ENCRYPTER, members: ['group:unknown@example.com'] }]);
  denied(await encrypt('user:member@example.com', keyB), USE_TO_ENCRYPT, keyB);
  // Groups and conditions together.
  await setPolicy(keyB, [
    {
      role: ENCRYPTER,
      members: ['group:other-team@example.com'],
      condition: { expression: 'resource.type == "cloudkms.googleapis.com/CryptoKeyVersion"' },
    },
  ]);
  denied(await encrypt('user:other@example.com', keyB), USE_TO_ENCRYPT, keyB);
  ok(await encrypt('user:other@example.com', `${keyB}/cryptoKeyVersions/1`));
  await setPolicy(keyB, []);
});

test('group: members in the owner and operator lists: checked synchronously, from configuration alone', async () => {
  const authorizer = new Authorizer(
    {
      projectOwners: { 'owned-project': ['group:owners@example.com'] },
      defaultOwners: [],
      operators: ['group:ops@example.com'],
      groups: {
        'owners@example.com': ['user:po@example.com'],
        'ops@example.com': ['serviceAccount:sched@p.iam.gserviceaccount.com'],
      },
    },
    s.gateway.deps.cache,
  );
  const po = { principal: 'user:po@example.com', issuer: '' };
  const nobody = { principal: 'user:nobody@example.com', issuer: '' };
  const sched = { principal: 'serviceAccount:sched@p.iam.gserviceaccount.com', issuer: '' };
  const ringName = 'projects/owned-project/locations/global/keyRings/r';
  assert.equal(
    authorizer.authorize(po, 'cloudkms.keyRings.create', 'projects/owned-project/locations/global'),
    undefined,
  );
  assert.equal(authorizer.authorize(po, USE_TO_ENCRYPT, `${ringName}/cryptoKeys/k`), undefined);
  const refused = authorizer.authorize(nobody, 'cloudkms.keyRings.get', ringName);
  assert.ok(refused instanceof Promise);
  await assert.rejects(
    refused,
    (err: unknown) => err instanceof RpcError && err.code === 'PERMISSION_DENIED',
  );
  const other = authorizer.authorize(
    po,
    'cloudkms.keyRings.get',
    'projects/someone-else/locations/global/keyRings/r',
  );
  assert.ok(other instanceof Promise);
  await assert.rejects(other);
  assert.equal(await authorizer.authorize(sched, RUN_TASKS, ''), undefined);
  await assert.rejects(Promise.resolve(authorizer.authorize(po, RUN_TASKS, '')), /OPENEKM_OPERATORS/);
});

test('OPENEKM_GROUPS is validated with messages that say what to fix', async () => {
  const base = await localGatewayEnv('127.0.0.1:1', s.stateDir);
  const load = (groups: string) => () => loadConfig({ ...base, OPENEKM_GROUPS: groups });
  assert.throws(
    load('team'),
    (e: unknown) => e instanceof ConfigError && /OPENEKM_GROUPS is not valid JSON/.test(e.message),
  );
  assert.throws(
    load('["user:a@b.com"]'),
    /OPENEKM_GROUPS is invalid: give a JSON object group email → members/,
  );
  assert.throws(load('{"group:t@example.com": []}'), /the key must be the group's email without "group:"/);
  assert.throws(
    load('{"t@example.com": "user:a@b.com"}'),
    /OPENEKM_GROUPS\["t@example.com"\] must be a JSON array/,
  );
  assert.throws(load('{"t@example.com": ["group:u@example.com"]}'), /groups cannot contain groups/);
  assert.throws(
    load('{"t@example.com": ["domain:example.com"]}'),
    /user:\{email\} and serviceAccount:\{email\} members only/,
  );
  assert.throws(load('{"t@example.com": ["alice@example.com"]}'), /OPENEKM_GROUPS\["t@example.com"\]\[0\]/);
  assert.throws(load('{"T@example.com": [], "t@example.com": []}'), /listed twice/);
  assert.deepEqual(loadConfig({ ...base, OPENEKM_GROUPS: '{"Team@Example.com": ["user:a@b.com"]}' }).groups, {
    'team@example.com': ['user:a@b.com'],
  });
  assert.deepEqual(loadConfig(base).groups, {});
});

test('version 3 rules: conditions need version 3 to set and to read; a policy without them is version 1', async () => {
  const cond = { expression: 'resource.service == "cloudkms.googleapis.com"', title: 't', description: 'd' };
  const binding = { role: ENCRYPTER, members: ['user:v3@example.com'], condition: cond };
  // Setting a condition without version 3.
  for (const version of [undefined, 1]) {
    const res = await s.call('POST', `${keyB}:setIamPolicy`, { policy: { version, bindings: [binding] } });
    assertError(res, 400, 'INVALID_ARGUMENT', 'needs policy.version 3');
    assert.equal(violationField(res), 'policy.version');
  }
  const set = ok(
    await s.call('POST', `${keyB}:setIamPolicy`, { policy: { version: 3, bindings: [binding] } }),
  );
  assert.equal(set.version, 3);
  assert.deepEqual(set.bindings, [binding]);
  ok(await encrypt('user:v3@example.com', keyB));
  // Reading it: version 3 only.
  for (const q of ['', '?options.requestedPolicyVersion=1', '?options.requestedPolicyVersion=0']) {
    const res = await s.call('GET', `${keyB}:getIamPolicy${q}`);
    assertError(res, 400, 'INVALID_ARGUMENT', 'requestedPolicyVersion=3');
  }
  assert.deepEqual(ok(await s.call('GET', `${keyB}:getIamPolicy?options.requestedPolicyVersion=3`)), set);
  // Rewriting it with its etag but version 1 (a client unaware of conditions) is refused; nothing changes.
  const v1 = await s.call('POST', `${keyB}:setIamPolicy`, {
    policy: { version: 1, etag: set.etag, bindings: [] },
  });
  assertError(v1, 400, 'INVALID_ARGUMENT', 'set it with "version": 3');
  assert.equal(violationField(v1), 'policy.version');
  assert.equal(
    ok(await s.call('GET', `${keyB}:getIamPolicy?options.requestedPolicyVersion=3`)).etag,
    set.etag,
  );
  // With version 3 and the etag it may be changed; version 3 without conditions is answered as version 1.
  const plain = ok(
    await s.call('POST', `${keyB}:setIamPolicy`, {
      policy: {
        version: 3,
        etag: set.etag,
        bindings: [{ role: ENCRYPTER, members: ['user:v1@example.com'] }],
      },
    }),
  );
  assert.equal(plain.version, 1);
  assert.equal(ok(await s.call('GET', `${keyB}:getIamPolicy`)).version, 1);
  denied(await encrypt('user:v3@example.com', keyB), USE_TO_ENCRYPT, keyB);
  // Without an etag a version 1 policy overwrites a conditional one (Google IAM's documented behaviour).
  await setPolicy(keyB, [binding]);
  ok(await s.call('POST', `${keyB}:setIamPolicy`, { policy: { bindings: [] } }));
  assert.deepEqual(ok(await s.call('GET', `${keyB}:getIamPolicy`)).bindings, undefined);
});

test('setIamPolicy refuses CEL it cannot evaluate, naming the construct, and stores nothing', async () => {
  const before = ok(await s.call('GET', `${keyA}:getIamPolicy?options.requestedPolicyVersion=3`));
  const cases: [string, string][] = [
    ['request.time.getHours("Europe/Berlin") < 17', 'request.time.getHours() is not supported'],
    ['resource.name.extract("keyRings/{r}/") == "cond"', 'resource.name.extract() is not supported'],
    ['request.auth.claims.email == "x@example.com"', 'request.auth is not supported'],
    ['resource.type == "cloudkms.googleapis.com/Key"', 'is not a Cloud KMS resource type'],
    ['resource.name.startsWith("//cloudkms.googleapis.com/projects/")', 'can never match'],
    ['request.time < "2030-01-01T00:00:00Z"', '< compares a timestamp with a string'],
  ];
  for (const [expression, message] of cases) {
    const res = await s.call('POST', `${keyA}:setIamPolicy`, {
      policy: {
        version: 3,
        bindings: [
          { role: 'roles/cloudkms.viewer', members: ['user:x@example.com'] },
          { role: ENCRYPTER, members: ['user:x@example.com'], condition: { expression } },
        ],
      },
    });
    assertError(
      res,
      400,
      'INVALID_ARGUMENT',
      message,
      'policy.bindings[1].condition.expression',
      /\(at character \d+\)/,
    );
    assert.equal(violationField(res), 'policy.bindings[1].condition.expression');
  }
  assert.deepEqual(ok(await s.call('GET', `${keyA}:getIamPolicy?options.requestedPolicyVersion=3`)), before);
  denied(await as('user:x@example.com', 'GET', keyA), 'cloudkms.cryptoKeys.get', keyA);
});
