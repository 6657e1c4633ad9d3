/**
 * The real gcloud CLI (`gcloud kms …`) against the one-base-URL local server, configured as docs/clients
 * describes: a throw-away CLOUDSDK_CONFIG, CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS, and an access-token file.
 * gcloud checks what it gets back (names, verified CRC32C flags, checksums of ciphertext and plaintext), so
 * a passing encrypt/decrypt here means the integrity fields are right. Eight gcloud calls (≈ 2 s each).
 *
 * gcloud must be installed (it is part of the machine image). When it is missing the test fails and says so —
 * unless OPENEKM_SKIP_GCLOUD=1 is set, which skips it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gcloudEnv, runGcloud, startTestStack, type TestStack } from '../helpers/stack.js';

const skip = process.env.OPENEKM_SKIP_GCLOUD === '1';

function gcloudInstalled(): boolean {
  try {
    execFileSync('gcloud', ['--version'], {
      stdio: 'ignore',
      timeout: 30_000,
      env: { ...process.env, CLOUDSDK_CORE_DISABLE_PROMPTS: '1' },
    });
    return true;
  } catch {
    return false;
  }
}

let s: TestStack;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  if (skip) return;
  s = await startTestStack({
    env: { OPENEKM_DEFAULT_OWNERS: JSON.stringify(['user:gcloud@example.com']) },
  });
  work = mkdtempSync(join(tmpdir(), 'openekm-gcloud-'));
  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, await s.token('user:gcloud@example.com'), { mode: 0o600 });
  env = gcloudEnv(s.url, s.project, join(work, 'config'), tokenFile);
});
after(async () => {
  if (work) rmSync(work, { recursive: true, force: true });
  await s?.stop();
});

/** Runs gcloud without blocking this process (which serves the requests). */
function gcloud(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runGcloud(args, { env, cwd: work });
}

async function ok(...args: string[]): Promise<string> {
  const r = await gcloud(...args);
  assert.equal(r.code, 0, `gcloud ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

test('gcloud kms: key ring, key, encrypt/decrypt files with AAD, list and disable versions', {
  skip: skip && 'OPENEKM_SKIP_GCLOUD=1',
}, async () => {
  assert.ok(
    gcloudInstalled(),
    'gcloud is not installed (or not on PATH): install the Google Cloud CLI, or set OPENEKM_SKIP_GCLOUD=1 to skip this test.',
  );
  const where = ['--location=us-east1', '--keyring=gring'];
  await ok('kms', 'keyrings', 'create', 'gring', '--location=us-east1');
  await ok('kms', 'keys', 'create', 'gkey', ...where, '--purpose=encryption', '--protection-level=software');

  // Bytes that exercise both base64 alphabets; gcloud sends plaintextCrc32c and additionalAuthenticatedDataCrc32c
  // and refuses answers whose name, verified flags or checksums are wrong.
  const plaintext = Buffer.concat([
    Buffer.from('gcloud round trip '),
    Buffer.from([0xfb, 0xff, 0xbf, 0x00, 0xfe]),
  ]);
  writeFileSync(join(work, 'plain.bin'), plaintext);
  writeFileSync(join(work, 'aad.bin'), 'gcloud aad');
  const key = ['--key=gkey', ...where];
  await ok(
    'kms',
    'encrypt',
    ...key,
    '--plaintext-file=plain.bin',
    '--ciphertext-file=cipher.bin',
    '--additional-authenticated-data-file=aad.bin',
  );
  const ciphertext = readFileSync(join(work, 'cipher.bin'));
  assert.equal(ciphertext[0], 1, 'the OpenEKM ciphertext format, version 1');
  // gcloud sends the ciphertext in URL-safe base64 with padding.
  await ok(
    'kms',
    'decrypt',
    ...key,
    '--ciphertext-file=cipher.bin',
    '--plaintext-file=out.bin',
    '--additional-authenticated-data-file=aad.bin',
  );
  assert.ok(readFileSync(join(work, 'out.bin')).equals(plaintext), 'gcloud decrypt gives back the plaintext');

  // Wrong AAD: gcloud reports the server's bland INVALID_ARGUMENT.
  writeFileSync(join(work, 'other-aad.bin'), 'other aad');
  const wrong = await gcloud(
    'kms',
    'decrypt',
    ...key,
    '--ciphertext-file=cipher.bin',
    '--plaintext-file=bad.bin',
    '--additional-authenticated-data-file=other-aad.bin',
  );
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /INVALID_ARGUMENT: Decryption failed/, wrong.stderr);

  const versions = JSON.parse(await ok('kms', 'keys', 'versions', 'list', ...key, '--format=json'));
  assert.equal(versions.length, 1);
  assert.equal(
    versions[0].name,
    `projects/${s.project}/locations/us-east1/keyRings/gring/cryptoKeys/gkey/cryptoKeyVersions/1`,
  );
  assert.equal(versions[0].state, 'ENABLED');
  assert.equal(versions[0].protectionLevel, 'SOFTWARE');

  const disabled = JSON.parse(await ok('kms', 'keys', 'versions', 'disable', '1', ...key, '--format=json'));
  assert.equal(disabled.state, 'DISABLED');

  // Encrypting with the disabled primary: gcloud prints the FAILED_PRECONDITION and its violation.
  const refused = await gcloud(
    'kms',
    'encrypt',
    ...key,
    '--plaintext-file=plain.bin',
    '--ciphertext-file=cipher2.bin',
  );
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    /FAILED_PRECONDITION: .*cryptoKeyVersions\/1 is not enabled, current state is: DISABLED\./,
    refused.stderr,
  );
  assert.match(refused.stderr, /KEY_DISABLED/, refused.stderr);

  // Every request gcloud made was answered by the server without a 5xx.
  assert.deepEqual(
    s.logs.filter((l) => /"status":5\d\d/.test(l)),
    [],
  );
  assert.ok(s.logs.some((l) => l.includes('"principal":"user:gcloud@example.com"')));
});
