/**
 * What a caller may do to the rules it is judged by:
 *
 * - roles/cloudkms.admin holds setIamPolicy, as in Cloud KMS: by default an admin can grant itself use of a key
 *   (docs/iam.md says so). With OPENEKM_IAM_SEPARATION_OF_DUTIES an operator forbids granting a role whose
 *   permissions the granter does not hold itself; an owner still grants anything, and keeping a grant that is
 *   already there (or removing one) needs nothing more.
 * - Only principals in OPENEKM_ACCESS_REASON_PRINCIPALS may state an access reason other than the default
 *   CUSTOMER_INITIATED_ACCESS (X-OpenEKM-Access-Reason); anyone else asking for one is refused before any key is
 *   used, and the same request without the header works.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN, assertError, grant, keyWithAdmin, ok, tokenFor } from './admin-helpers.js';

const USER = 'user:alice@example.com';
const ENCRYPTER = 'roles/cloudkms.cryptoKeyEncrypterDecrypter';

describe('one gateway, separation of duties off (the default)', () => {
  let s: TestStack;
  let key: string;
  const REASON = 'x-openekm-access-reason';
  before(async () => {
    // The local stack lets its owner state reasons (OPENEKM_ACCESS_REASON_PRINCIPALS); here also a group.
    s = await startTestStack({
      env: {
        OPENEKM_GROUPS: JSON.stringify({ 'justifiers@example.com': ['user:jo@example.com'] }),
        OPENEKM_ACCESS_REASON_PRINCIPALS: JSON.stringify([
          'user:owner@openekm.local',
          'group:justifiers@example.com',
        ]),
      },
    });
    key = await keyWithAdmin(s, 'reasons');
    ok(
      await s.call('POST', `${key}:setIamPolicy`, {
        policy: { bindings: [{ role: ENCRYPTER, members: [USER, 'user:jo@example.com'] }] },
      }),
    );
  });
  after(() => s.stop());

  test('roles/cloudkms.admin holds setIamPolicy, as in Cloud KMS: an admin can grant itself use and encrypt', async () => {
    const key = await keyWithAdmin(s, 'google-like');
    const token = await tokenFor(s, ADMIN);
    assertError(
      await s.call('POST', `${key}:encrypt`, { plaintext: 'aGk=' }, { token }),
      403,
      'PERMISSION_DENIED',
    );
    ok(
      await grant(s, key, ADMIN, [
        { role: 'roles/cloudkms.admin', members: [ADMIN] },
        { role: ENCRYPTER, members: [ADMIN] },
      ]),
    );
    ok(await s.call('POST', `${key}:encrypt`, { plaintext: 'aGk=' }, { token }));
  });

  test('a caller not listed is refused a non-default reason, and may send the default or none', async () => {
    const token = await tokenFor(s, USER);
    for (const reason of ['GOOGLE_INITIATED_REVIEW', '4', 'THIRD_PARTY_DATA_REQUEST']) {
      const refused = await s.call(
        'POST',
        `${key}:encrypt`,
        { plaintext: 'aGk=' },
        { token, headers: { [REASON]: reason } },
      );
      assertError(refused, 403, 'PERMISSION_DENIED', /OPENEKM_ACCESS_REASON_PRINCIPALS/);
      assert.match(refused.json.error.message, /without the header/);
    }
    for (const headers of [
      {},
      { [REASON]: 'CUSTOMER_INITIATED_ACCESS' },
      { [REASON]: '0' },
      { [REASON]: '5' },
    ] as Record<string, string>[]) {
      ok(await s.call('POST', `${key}:encrypt`, { plaintext: 'aGk=' }, { token, headers }));
    }
  });

  test('listed principals (directly or through a group) may state a reason', async () => {
    ok(
      await s.call(
        'POST',
        `${key}:encrypt`,
        { plaintext: 'aGk=' },
        { headers: { [REASON]: 'GOOGLE_INITIATED_REVIEW' } },
      ),
    );
    const jo = await tokenFor(s, 'user:jo@example.com');
    ok(
      await s.call(
        'POST',
        `${key}:encrypt`,
        { plaintext: 'aGk=' },
        { token: jo, headers: { [REASON]: 'GOOGLE_INITIATED_REVIEW' } },
      ),
    );
  });
});
