/**
 * IAM through the real gcloud CLI: add-iam-policy-binding / get-iam-policy / remove-iam-policy-binding on a key
 * ring and a key (gcloud reads the policy, edits it and writes it back with the etag), and their effect on a
 * second principal using its own access-token file. Skipped with OPENEKM_SKIP_GCLOUD=1, as gcloud.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gcloudEnv, runGcloud, startTestStack, type TestStack } from '../helpers/stack.js';

const skip = process.env.OPENEKM_SKIP_GCLOUD === '1';
const ALICE = 'user:alice@example.com';

let s: TestStack;
let work: string;
let ownerFile: string;
let aliceFile: string;

before(async () => {
  if (skip) return;
  s = await startTestStack();
  work = mkdtempSync(join(tmpdir(), 'openekm-iam-gcloud-'));
  ownerFile = join(work, 'owner-token');
  aliceFile = join(work, 'alice-token');
  writeFileSync(ownerFile, await s.token(), { mode: 0o600 });
  writeFileSync(aliceFile, await s.token(ALICE), { mode: 0o600 });
});
after(async () => {
  if (work) rmSync(work, { recursive: true, force: true });
  await s?.stop();
});

function gcloud(
  tokenFile: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = gcloudEnv(s.url, s.project, join(work, 'config'), tokenFile);
  return runGcloud(args, { env, cwd: work });
}

async function ok(tokenFile: string, ...args: string[]): Promise<string> {
  const r = await gcloud(tokenFile, ...args);
  assert.equal(r.code, 0, `gcloud ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

test('gcloud kms … add-iam-policy-binding / get-iam-policy / remove-iam-policy-binding', {
  skip: skip && 'OPENEKM_SKIP_GCLOUD=1',
}, async () => {
  const where = ['--location=global', '--keyring=iamring'];
  const ring = `/v1/projects/${s.project}/locations/global/keyRings/iamring`;
  assert.equal((await s.call('POST', `${ring.replace(/\/iamring$/, '')}?keyRingId=iamring`, {})).status, 200);
  assert.equal(
    (await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=k`, { purpose: 'ENCRYPT_DECRYPT' })).status,
    200,
  );
  writeFileSync(join(work, 'p.txt'), 'hello');
  const encrypt = [
    'kms',
    'encrypt',
    '--key=k',
    ...where,
    '--plaintext-file=p.txt',
    '--ciphertext-file=c.bin',
  ];

  const refused = await gcloud(aliceFile, ...encrypt);
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    /PERMISSION_DENIED|Permission 'cloudkms\.cryptoKeyVersions\.useToEncrypt' denied/,
  );

  await ok(
    ownerFile,
    'kms',
    'keys',
    'add-iam-policy-binding',
    'k',
    ...where,
    `--member=${ALICE}`,
    '--role=roles/cloudkms.cryptoKeyEncrypter',
  );
  const policy = JSON.parse(
    await ok(ownerFile, 'kms', 'keys', 'get-iam-policy', 'k', ...where, '--format=json'),
  );
  assert.deepEqual(policy.bindings, [{ role: 'roles/cloudkms.cryptoKeyEncrypter', members: [ALICE] }]);
  await ok(aliceFile, ...encrypt);

  await ok(
    ownerFile,
    'kms',
    'keys',
    'remove-iam-policy-binding',
    'k',
    ...where,
    `--member=${ALICE}`,
    '--role=roles/cloudkms.cryptoKeyEncrypter',
  );
  assert.notEqual((await gcloud(aliceFile, ...encrypt)).code, 0);
});
