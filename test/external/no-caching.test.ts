/**
 * Nothing of an external key is cached: revoking OpenEKM's grant at the EKM (admin API or the real CLI) stops the
 * very next encrypt and the very next decrypt, and disables the version; disabling the EKM key stops them too
 * but leaves the version enabled. Restoring access (and re-enabling the version) makes both work again.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { assertEkmError, b64, ekmCallsDuring, externalKey, gatewayLines, keyRing } from './ext-helpers.js';

let s: TestStack;
let ring: string;
const aad = b64('no-cache');

before(async () => {
  s = await startTestStack({ ekm: true, ekmTimeoutMs: 2000 });
  ring = await keyRing(s, 'nocache');
  GATEWAY = s.ekm!.ekm.admin.defaultPrincipal;
});
after(() => s.stop());

/** The EKM identity of the stack's project: keys created at the reference EKM are granted to it. */
let GATEWAY = '';

async function encrypt(key: string) {
  return s.call('POST', `${key}:encrypt`, {
    plaintext: b64('fresh every time'),
    additionalAuthenticatedData: aad,
  });
}
async function decrypt(key: string, ciphertext: string) {
  return s.call('POST', `${key}:decrypt`, { ciphertext, additionalAuthenticatedData: aad });
}
async function state(version: string): Promise<string> {
  const got = await s.call('GET', `/v1/${version}`);
  assert.equal(got.status, 200);
  return got.json.state;
}
async function enable(version: string) {
  const res = await s.call('PATCH', `/v1/${version}?updateMask=state`, { state: 'ENABLED' });
  assert.equal(res.status, 200, JSON.stringify(res.json));
}
async function bothWork(key: string, ciphertext: string) {
  const enc = await encrypt(key);
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  const dec = await decrypt(key, ciphertext);
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'fresh every time');
}
function disabledWarnings(version: string) {
  return gatewayLines(s).filter(
    (l) => l.severity === 'WARNING' && l.version === version && /^Disabled /.test(l.message),
  );
}

for (const protocol of ['google', 'xks'] as const) {
  describe(protocol, () => {
    const principal = () => (protocol === 'google' ? GATEWAY : 'xks:*');

    test('after revoke the very next decrypt, then the very next encrypt, fail and disable the version; re-grant and re-enable restore both', async () => {
      const keyId = `revoke-${protocol}`;
      await s.ekm!.ekm.admin.createKey(keyId);
      const uri = s.ekm!.keyUri(keyId, protocol);
      const { key, version } = await externalKey(s, ring, keyId, uri);
      const first = await encrypt(key);
      assert.equal(first.status, 200);
      const ciphertext = first.json.ciphertext as string;
      await bothWork(key, ciphertext);

      // Decrypt first.
      await s.ekm!.ekm.admin.revoke(keyId, principal());
      const d = await ekmCallsDuring(s, keyId, async () =>
        assertEkmError(await decrypt(key, ciphertext), 'EXTERNAL_PERMISSION_DENIED', version, uri),
      );
      assert.equal(d.calls.length, 1, 'the decrypt asked the EKM, once');
      assert.equal(d.calls[0]!.status, 403);
      assert.equal(await state(version), 'DISABLED');
      assert.equal(disabledWarnings(version).length, 1, 'one warning says why the version was disabled');
      // While disabled, nothing reaches the EKM.
      const blocked = await ekmCallsDuring(s, keyId, async () => {
        const res = await encrypt(key);
        assert.equal(res.status, 400);
        assert.equal(res.json.error.details[0].violations[0].type, 'KEY_DISABLED');
      });
      assert.equal(blocked.calls.length, 0);

      // Re-grant alone is not enough: the version stays disabled until enabled.
      await s.ekm!.ekm.admin.grant(keyId, principal());
      assert.equal((await encrypt(key)).status, 400);
      await enable(version);
      await bothWork(key, ciphertext);

      // Then encrypt first.
      await s.ekm!.ekm.admin.revoke(keyId, principal());
      const e = await ekmCallsDuring(s, keyId, async () =>
        assertEkmError(await encrypt(key), 'EXTERNAL_PERMISSION_DENIED', version, uri),
      );
      assert.equal(e.calls.length, 1);
      assert.equal(await state(version), 'DISABLED');
      assert.equal(disabledWarnings(version).length, 2);
      await s.ekm!.ekm.admin.grant(keyId, principal());
      await enable(version);
      await bothWork(key, ciphertext);
    });

    test('a disabled EKM key stops the next encrypt and decrypt without disabling the version', async () => {
      const keyId = `keyoff-${protocol}`;
      await s.ekm!.ekm.admin.createKey(keyId);
      const uri = s.ekm!.keyUri(keyId, protocol);
      const { key, version } = await externalKey(s, ring, keyId, uri);
      const first = await encrypt(key);
      const ciphertext = first.json.ciphertext as string;
      await bothWork(key, ciphertext);

      await s.ekm!.ekm.admin.setEnabled(keyId, false);
      assertEkmError(await encrypt(key), 'EXTERNAL_PERMISSION_DENIED', version, uri);
      assertEkmError(await decrypt(key, ciphertext), 'EXTERNAL_PERMISSION_DENIED', version, uri);
      assert.equal(await state(version), 'ENABLED', 'a disabled key is not an identity refusal');
      assert.equal(disabledWarnings(version).length, 0);

      await s.ekm!.ekm.admin.setEnabled(keyId, true);
      await bothWork(key, ciphertext);
    });
  });
}

test('the real CLI: `ekm access revoke` stops the very next request', async () => {
  const keyId = 'cli-revoke';
  await s.ekm!.ekm.admin.createKey(keyId);
  const uri = s.ekm!.keyUri(keyId, 'google');
  const { key, version } = await externalKey(s, ring, keyId, uri);
  const ciphertext = (await encrypt(key)).json.ciphertext as string;
  await bothWork(key, ciphertext);

  const { stdout } = await promisify(execFile)(
    'npm',
    ['run', '--silent', 'ekm', '--', 'access', 'revoke', keyId],
    { env: { ...process.env, OPENEKM_EKM_DATA_DIR: join(s.stateDir, 'ekm') }, timeout: 60_000 },
  );
  assert.ok(!stdout.includes(GATEWAY) || /grants?/i.test(stdout), stdout);
  assert.ok(!s.ekm!.ekm.admin.showKey(keyId).grants.includes(GATEWAY), 'the CLI changed the EKM state');

  assertEkmError(await decrypt(key, ciphertext), 'EXTERNAL_PERMISSION_DENIED', version, uri);
  assert.equal(await state(version), 'DISABLED');
  await s.ekm!.ekm.admin.grant(keyId);
  await enable(version);
  await bothWork(key, ciphertext);
});
