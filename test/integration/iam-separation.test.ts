/**
 * OPENEKM_IAM_SEPARATION_OF_DUTIES: an operator forbids granting a role whose permissions the granter does not
 * hold itself on the resource. An admin then cannot hand itself (or anyone) use of keys; an owner still grants
 * anything; keeping a grant that is already there, or removing one, needs nothing more. Without the option an
 * admin can, as in Cloud KMS (test/integration/caller-limits.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ADMIN, assertError, grant, keyWithAdmin, ok, tokenFor } from './admin-helpers.js';

const USER = 'user:alice@example.com';
const ENCRYPTER = 'roles/cloudkms.cryptoKeyEncrypterDecrypter';

describe('OPENEKM_IAM_SEPARATION_OF_DUTIES=true', () => {
  let s: TestStack;
  before(async () => {
    s = await startTestStack({ env: { OPENEKM_IAM_SEPARATION_OF_DUTIES: 'true' } });
  });
  after(() => s.stop());

  test('an admin cannot grant itself (or anyone) a role it does not hold, and nothing is written', async () => {
    const key = await keyWithAdmin(s, 'separated');
    for (const member of [ADMIN, USER]) {
      const refused = await grant(s, key, ADMIN, [
        { role: 'roles/cloudkms.admin', members: [ADMIN] },
        { role: ENCRYPTER, members: [member] },
      ]);
      assertError(
        refused,
        403,
        'PERMISSION_DENIED',
        /Separation of duties.*roles\/cloudkms\.cryptoKeyEncrypterDecrypter/,
      );
      assert.match(refused.json.error.message, /cloudkms\.cryptoKeyVersions\.useToEncrypt/);
    }
    const roleOwner = await grant(s, key, ADMIN, [
      { role: 'roles/cloudkms.admin', members: [ADMIN] },
      { role: 'roles/owner', members: [ADMIN] },
    ]);
    assertError(roleOwner, 403, 'PERMISSION_DENIED', /cannot grant roles\/owner/);
    const policy = ok(await s.call('GET', `${key}:getIamPolicy`));
    assert.deepEqual(policy.bindings, [{ role: 'roles/cloudkms.admin', members: [ADMIN] }]);
    assertError(
      await s.call('POST', `${key}:encrypt`, { plaintext: 'aGk=' }, { token: await tokenFor(s, ADMIN) }),
      403,
      'PERMISSION_DENIED',
    );
  });

  test('an admin may still grant what it holds, keep existing grants and remove them', async () => {
    const key = await keyWithAdmin(s, 'admin-grants');
    // The owner (holds everything) grants alice use.
    ok(
      await grant(s, key, 'user:owner@openekm.local', [
        { role: 'roles/cloudkms.admin', members: [ADMIN] },
        { role: ENCRYPTER, members: [USER] },
      ]),
    );
    // The admin adds an importer (a role whose permissions it holds) and keeps alice's grant it could not give itself.
    ok(
      await grant(s, key, ADMIN, [
        { role: 'roles/cloudkms.admin', members: [ADMIN, 'user:bob@example.com'] },
        { role: 'roles/cloudkms.importer', members: ['user:carol@example.com'] },
        { role: ENCRYPTER, members: [USER] },
      ]),
    );
    // And removes it.
    const after = ok(
      await grant(s, key, ADMIN, [
        { role: 'roles/cloudkms.admin', members: [ADMIN, 'user:bob@example.com'] },
      ]),
    );
    assert.deepEqual(
      after.bindings.map((b: { role: string }) => b.role),
      ['roles/cloudkms.admin'],
    );
  });
});
