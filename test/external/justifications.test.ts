/**
 * Key Access Justifications on EXTERNAL keys: the caller states a reason in X-OpenEKM-Access-Reason (name or
 * number, default CUSTOMER_INITIATED_ACCESS); the key's keyAccessJustificationsPolicy is enforced before any EKM
 * call; the reason reaches Google-protocol EKMs, whose own allow-list may refuse it. Also the XKS request
 * metadata: the caller's principal, Encrypt/Decrypt, our request id and the version's resource name.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertEkmError, b64, ekmCallsDuring, externalKey, keyRing } from './ext-helpers.js';

let s: TestStack;
let ring: string;
const REASON = 'X-OpenEKM-Access-Reason';

before(async () => {
  s = await startTestStack({ ekm: true, ekmTimeoutMs: 2000 });
  ring = await keyRing(s, 'kaj');
});
after(() => s.stop());

function encrypt(key: string, headers: Record<string, string> = {}, token?: string) {
  return s.call(
    'POST',
    `${key}:encrypt`,
    { plaintext: b64('why do you ask') },
    token === undefined ? { headers } : { headers, token },
  );
}
function decrypt(key: string, ciphertext: string, headers: Record<string, string> = {}, token?: string) {
  return s.call(
    'POST',
    `${key}:decrypt`,
    { ciphertext },
    token === undefined ? { headers } : { headers, token },
  );
}

for (const protocol of ['google', 'xks'] as const) {
  test(`${protocol}: the key's keyAccessJustificationsPolicy is enforced before the EKM is called`, async () => {
    const keyId = `kaj-policy-${protocol}`;
    await s.ekm!.ekm.admin.createKey(keyId);
    const { key, version } = await externalKey(s, ring, keyId, s.ekm!.keyUri(keyId, protocol), {
      keyAccessJustificationsPolicy: { allowedAccessReasons: ['CUSTOMER_INITIATED_SUPPORT'] },
    });
    const refused = await ekmCallsDuring(s, keyId, async () => {
      const cases: Array<Record<string, string>> = [
        {},
        { [REASON]: 'GOOGLE_INITIATED_REVIEW' },
        { [REASON]: '5' },
      ];
      for (const headers of cases) {
        const res = await encrypt(key, headers);
        assert.equal(res.status, 400, JSON.stringify(res.json));
        assert.equal(res.json.error.status, 'FAILED_PRECONDITION');
        assert.equal(res.json.error.details[0].violations[0].type, 'KEY_ACCESS_JUSTIFICATION');
        assert.equal(res.json.error.details[0].violations[0].subject, version);
        assert.match(res.json.error.message, /X-OpenEKM-Access-Reason/);
      }
    });
    assert.equal(refused.calls.length, 0, 'no refused request reached the EKM');

    const allowed = await ekmCallsDuring(s, keyId, async () => {
      const byName = await encrypt(key, { [REASON]: 'CUSTOMER_INITIATED_SUPPORT' });
      assert.equal(byName.status, 200, JSON.stringify(byName.json));
      const byNumber = await encrypt(key, { [REASON]: '1' });
      assert.equal(byNumber.status, 200, JSON.stringify(byNumber.json));
      const dec = await decrypt(key, byName.json.ciphertext, { [REASON]: 'CUSTOMER_INITIATED_SUPPORT' });
      assert.equal(dec.status, 200, JSON.stringify(dec.json));
      const decRefused = await decrypt(key, byName.json.ciphertext);
      assert.equal(decRefused.status, 400);
      assert.equal(decRefused.json.error.details[0].violations[0].type, 'KEY_ACCESS_JUSTIFICATION');
    });
    assert.equal(
      allowed.calls.length,
      3,
      'three allowed requests, three EKM calls; the refused decrypt none',
    );
    if (protocol === 'google') {
      assert.deepEqual(
        allowed.calls.map((c) => c.justification),
        ['CUSTOMER_INITIATED_SUPPORT', 'CUSTOMER_INITIATED_SUPPORT', 'CUSTOMER_INITIATED_SUPPORT'],
      );
    }
  });
}

describe('google: the stated reason reaches the EKM', () => {
  const keyId = 'kaj-ekm';
  let key: string;
  let version: string;
  let uri: string;

  before(async () => {
    await s.ekm!.ekm.admin.createKey(keyId);
    uri = s.ekm!.keyUri(keyId, 'google');
    ({ key, version } = await externalKey(s, ring, keyId, uri));
  });

  test('by default CUSTOMER_INITIATED_ACCESS; a stated name or number is sent as its name', async () => {
    const { calls } = await ekmCallsDuring(s, keyId, async () => {
      assert.equal((await encrypt(key)).status, 200);
      assert.equal((await encrypt(key, { [REASON]: 'GOOGLE_RESPONSE_TO_PRODUCTION_ALERT' })).status, 200);
      assert.equal((await encrypt(key, { [REASON]: '11' })).status, 200);
      assert.equal((await encrypt(key, { [REASON]: 'THIRD_PARTY_DATA_REQUEST' })).status, 200);
      assert.equal((await encrypt(key, { [REASON]: '0' })).status, 200);
    });
    assert.deepEqual(
      calls.map((c) => c.justification),
      [
        'CUSTOMER_INITIATED_ACCESS',
        'GOOGLE_RESPONSE_TO_PRODUCTION_ALERT',
        'CUSTOMER_AUTHORIZED_WORKFLOW_SERVICING',
        'THIRD_PARTY_DATA_REQUEST',
        'CUSTOMER_INITIATED_ACCESS',
      ],
    );
    assert.ok(calls.every((c) => c.resource === version && c.healthCheck === undefined));
  });

  test('an invalid header value is a 400 before anything else', async () => {
    for (const bad of ['NOT_A_REASON', '12', '-1', 'CUSTOMER_INITIATED_ACCESS,GOOGLE_INITIATED_REVIEW']) {
      const { calls } = await ekmCallsDuring(s, keyId, async () => {
        const res = await encrypt(key, { [REASON]: bad });
        assert.equal(res.status, 400, `${bad}: ${JSON.stringify(res.json)}`);
        assert.equal(res.json.error.status, 'INVALID_ARGUMENT');
        assert.match(res.json.error.message, /x-openekm-access-reason/i);
      });
      assert.equal(calls.length, 0);
    }
  });

  test("the EKM's own allow-list refusing the reason is EXTERNAL_PERMISSION_DENIED, and does not disable the version", async () => {
    const ok = await encrypt(key);
    assert.equal(ok.status, 200);
    await s.ekm!.ekm.admin.setJustifications(keyId, 'CUSTOMER_INITIATED_ACCESS', {
      allowMissing: false,
      allowUnknown: false,
    });
    const { calls } = await ekmCallsDuring(s, keyId, async () => {
      assertEkmError(
        await encrypt(key, { [REASON]: 'GOOGLE_INITIATED_SERVICE' }),
        'EXTERNAL_PERMISSION_DENIED',
        version,
        uri,
      );
      assertEkmError(
        await decrypt(key, ok.json.ciphertext, { [REASON]: '2' }),
        'EXTERNAL_PERMISSION_DENIED',
        version,
        uri,
      );
    });
    assert.deepEqual(
      calls.map((c) => [c.justification, c.status]),
      [
        ['GOOGLE_INITIATED_SERVICE', 403],
        ['GOOGLE_INITIATED_SERVICE', 403],
      ],
    );
    // A reason the caller chose is refused per request: the version stays usable for allowed reasons.
    const got = await s.call('GET', `/v1/${version}`);
    assert.equal(got.json.state, 'ENABLED');
    assert.equal((await decrypt(key, ok.json.ciphertext)).status, 200);
  });
});

test('xks: requestMetadata carries the caller, the operation, our request id and the version name', async () => {
  const keyId = 'xks-metadata';
  await s.ekm!.ekm.admin.createKey(keyId);
  const { key, version } = await externalKey(s, ring, keyId, s.ekm!.keyUri(keyId, 'xks'));
  const alice = await s.token('user:alice@example.com');
  const grant = await s.call('POST', `${key}:setIamPolicy`, {
    policy: {
      bindings: [{ role: 'roles/cloudkms.cryptoKeyEncrypter', members: ['user:alice@example.com'] }],
    },
  });
  assert.equal(grant.status, 200, JSON.stringify(grant.json));
  const { calls } = await ekmCallsDuring(s, keyId, async () => {
    const enc = await encrypt(key, { 'X-Request-Id': 'req-xks-enc-1' }, alice);
    assert.equal(enc.status, 200, JSON.stringify(enc.json));
    assert.equal(enc.headers.get('x-request-id'), 'req-xks-enc-1');
    const dec = await decrypt(key, enc.json.ciphertext, { 'X-Request-Id': 'req-xks-dec-1' });
    assert.equal(dec.status, 200, JSON.stringify(dec.json));
  });
  assert.equal(calls.length, 2);
  const [enc, dec] = calls;
  assert.equal(enc!.operation, 'encrypt');
  assert.equal(enc!.kmsOperation, 'Encrypt');
  assert.equal(enc!.kmsRequestId, 'req-xks-enc-1');
  assert.equal(enc!.kmsKeyArn, version);
  assert.equal(enc!.awsPrincipalArn, 'user:alice@example.com');
  assert.equal(dec!.operation, 'decrypt');
  assert.equal(dec!.kmsOperation, 'Decrypt');
  assert.equal(dec!.kmsRequestId, 'req-xks-dec-1');
  assert.equal(dec!.kmsKeyArn, version);
  assert.equal(dec!.awsPrincipalArn, 'user:owner@openekm.local');
  // Without X-Request-Id the gateway makes one, and the EKM gets that same id.
  const more = await ekmCallsDuring(s, keyId, async () => {
    const res = await encrypt(key);
    assert.equal(res.status, 200);
    const id = res.headers.get('x-request-id');
    assert.ok(id && id.length >= 16);
    assert.equal(ekmLast(s, keyId).kmsRequestId, id);
  });
  assert.equal(more.calls.length, 1);
  // Never plaintext in the EKM's log.
  assert.ok(!s.ekmLogs.join('\n').includes(b64('why do you ask')));
});

function ekmLast(st: TestStack, keyId: string) {
  const lines = st.ekmLogs.map((l) => JSON.parse(l)).filter((l) => l.keyId === keyId && l.msg === 'request');
  return lines[lines.length - 1];
}
