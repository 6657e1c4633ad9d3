import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '@openekm/reference-ekm/cli';
import {
  b64,
  createIssuer,
  GATEWAY,
  post,
  startTestEkm,
  type TestEkm,
  testDirs,
  xksPost,
} from './helpers.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

/** The CLI in-process (same code as the binary, without a tsx start-up per call). */
async function inProcess(
  env: Record<string, string>,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    env: { ...process.env, ...env },
    stdout: (line) => {
      stdout += `${line}\n`;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}

function run(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: repo, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('admin CLI against a running EKM', () => {
  const dirs = testDirs('cli');
  const dataDir = dirs.dataDir('ekm');
  const env = { OPENEKM_EKM_DATA_DIR: dataDir };
  const ekmCli = (...args: string[]) => inProcess(env, args);
  let t: TestEkm;
  let token: string;

  before(async () => {
    const issuer = await createIssuer(dirs.root);
    t = await startTestEkm({ dataDir, trustedIssuers: [issuer.trustedIssuer] });
    token = await issuer.sign({ email: GATEWAY }, { aud: t.ekm.httpsUrl });
  });
  after(async () => {
    await t?.ekm.stop();
    dirs.cleanup();
  });

  const wrap = (keyId: string) =>
    post(
      `${t.ekm.googleEkmHttpBaseUrl}/keys/${keyId}:wrap`,
      {
        plaintext: b64('dek'),
        additionalContext: { accessReasonContext: { reason: 'CUSTOMER_INITIATED_ACCESS' } },
      },
      { authorization: `Bearer ${token}` },
    );

  test('npm run --silent ekm -- keys create prints the Google EKM URI as the only stdout line', async () => {
    const res = await run('npm', ['run', '--silent', 'ekm', '--', 'keys', 'create', 'cli-key'], env);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, `${t.ekm.httpsUrl}/v0/keys/cli-key\n`);
    assert.equal(
      (await wrap('cli-key')).status,
      200,
      'granted to the local gateway at creation, usable at once',
    );
    const list = await ekmCli('keys', 'list');
    assert.match(list.stdout, /^cli-key\tENABLED\tENCRYPT,DECRYPT\tgateway@openekm\.local,xks:\*$/m);
  });

  test('--usage is recorded; a bad usage is refused with status 2', async () => {
    assert.equal((await ekmCli('keys', 'create', 'enc-only', '--usage', 'ENCRYPT')).code, 0);
    const show = await ekmCli('keys', 'show', 'enc-only');
    assert.deepEqual(JSON.parse(show.stdout).usage, ['ENCRYPT']);
    assert.ok(!show.stdout.includes('sealed'), 'no sealed material is shown');
    const bad = await ekmCli('keys', 'create', 'bad', '--usage', 'ENCRYPT,FLY');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown key usage "FLY"/);
  });

  test('access revoke / grant, disable / enable and justifications apply to the running EKM at once', async () => {
    await ekmCli('keys', 'create', 'live');
    assert.equal((await ekmCli('access', 'revoke', 'live')).code, 0);
    assert.equal((await wrap('live')).status, 403);
    assert.equal((await ekmCli('access', 'grant', 'live')).code, 0);
    assert.equal((await wrap('live')).status, 200);
    await ekmCli('keys', 'disable', 'live');
    assert.equal((await wrap('live')).status, 400);
    await ekmCli('keys', 'enable', 'live');
    assert.equal((await wrap('live')).status, 200);
    const set = await ekmCli('justifications', 'set', 'live', 'GOOGLE_INITIATED_REVIEW', '--allow-missing');
    assert.deepEqual(JSON.parse(set.stdout).justifications, {
      allowed: ['GOOGLE_INITIATED_REVIEW'],
      allowMissing: true,
      allowUnknown: false,
    });
    assert.equal((await wrap('live')).status, 403);
    await ekmCli('justifications', 'set', 'live', 'any');
    assert.equal((await wrap('live')).status, 200);
    await ekmCli('keys', 'destroy', 'live');
    assert.equal((await wrap('live')).status, 404);
  });

  test('xks credentials create prints the one-line JSON a partner needs; revoke takes effect', async () => {
    const res = await ekmCli('xks', 'credentials', 'create', '--prefix', 'cli-tenant');
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.split('\n').length, 2, 'one line');
    const cred = JSON.parse(res.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(cred), [
      'endpoint',
      'uriPrefix',
      'region',
      'accessKeyId',
      'secretAccessKey',
    ]);
    assert.equal(cred.endpoint, t.ekm.httpUrl);
    assert.equal(cred.uriPrefix, 'cli-tenant');
    assert.match(cred.accessKeyId!, /^[A-Z2-7]{20,30}$/);
    assert.match(cred.secretAccessKey!, /^[A-Za-z0-9/+=]{43,64}$/);
    const health = () =>
      xksPost(
        `${cred.endpoint}/${cred.uriPrefix}/kms/xks/v1/health`,
        { requestMetadata: { kmsRequestId: 'r', kmsOperation: 'KmsHealthCheck' } },
        {
          accessKeyId: cred.accessKeyId!,
          secretAccessKey: cred.secretAccessKey!,
        },
      );
    assert.equal((await health()).status, 200);
    assert.equal((await ekmCli('xks', 'credentials', 'revoke', cred.accessKeyId!)).code, 0);
    assert.equal((await health()).status, 404, 'the prefix has no credential left');
  });

  test('faults: status, garbage, reset, hang and latency with a deterministic rate; clear restores service', async () => {
    await ekmCli('keys', 'create', 'faulty');
    await ekmCli('faults', 'set', 'faulty', 'status=503');
    const unavailable = await wrap('faulty');
    assert.equal(unavailable.status, 503);
    assert.equal(unavailable.json.status, 'UNAVAILABLE');
    assert.equal((await wrap('cli-key')).status, 200, 'other keys are unaffected');

    await ekmCli('faults', 'set', 'faulty', 'garbage');
    const garbage = await wrap('faulty');
    assert.equal(garbage.status, 200);
    assert.throws(() => JSON.parse(garbage.text));

    await ekmCli('faults', 'set', 'faulty', 'reset');
    await assert.rejects(wrap('faulty'));

    await ekmCli('faults', 'set', 'faulty', 'hang');
    const controller = new AbortController();
    const hung = fetch(`${t.ekm.googleEkmHttpBaseUrl}/keys/faulty:wrap`, {
      method: 'POST',
      body: '{}',
      signal: controller.signal,
    });
    await t.waitForLog((e) => e.keyId === 'faulty' && e.outcome === 'FAULT_HANG');
    controller.abort();
    await assert.rejects(hung, /abort/i);

    await ekmCli('faults', 'set', 'faulty', 'latency=5', 'rate=0.5');
    for (let i = 0; i < 4; i += 1) assert.equal((await wrap('faulty')).status, 200);
    const delayed = t.logs
      .map((l) => JSON.parse(l))
      .filter((e) => e.keyId === 'faulty' && e.fault === 'latency=5');
    assert.equal(delayed.length, 2, 'rate=0.5 delays exactly every second request');

    await ekmCli('faults', 'clear');
    assert.equal((await wrap('faulty')).status, 200);
    const bad = await ekmCli('faults', 'set', 'faulty', 'explode');
    assert.equal(bad.code, 2);
  });
});

describe('CLI configuration errors and production mode', () => {
  const dirs = testDirs('cli-config');
  after(() => dirs.cleanup());
  const cli = (env: Record<string, string>, ...args: string[]) =>
    inProcess({ OPENEKM_EKM_DATA_DIR: dirs.dataDir('ekm'), ...env }, args);

  test('a bad environment value names the variable and exits 2', async () => {
    const res = await run(process.execPath, ['--import', 'tsx', 'reference-ekm/cli.ts', 'keys', 'list'], {
      OPENEKM_EKM_DATA_DIR: dirs.dataDir('ekm'),
      OPENEKM_EKM_BACKEND: 'cloud',
    });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /OPENEKM_EKM_BACKEND=cloud/);
    const issuers = await cli({ OPENEKM_EKM_TRUSTED_ISSUERS: '[{"issuer":"x"}]' }, 'keys', 'list');
    assert.equal(issuers.code, 2);
    assert.match(issuers.stderr, /jwksUrl or jwksFile/);
  });

  test('--help, -h and help print the usage and exit 0; no command or an unknown one exits 2', async () => {
    const spawned = await run(process.execPath, ['--import', 'tsx', 'reference-ekm/cli.ts', '--help'], {});
    assert.equal(spawned.code, 0, spawned.stderr);
    assert.match(spawned.stdout, /^usage: npm run --silent ekm -- <command>\n/);
    assert.equal(spawned.stderr, '');
    for (const args of [['-h'], ['help'], ['keys', 'create', '--help'], ['keys', 'list', '-h']]) {
      const res = await cli({}, ...args);
      assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stdout, /keys create <keyId>/);
    }
    // A flag value that reads "-h" is a value, not a request for help.
    const prefixed = await cli({}, 'keys', 'create', 'k', '--usage', '-h');
    assert.equal(prefixed.code, 2);
    assert.match(prefixed.stderr, /unknown key usage/);
    const none = await cli({});
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^usage:/);
    const unknown = await cli({}, 'keys', 'frobnicate');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^unknown command: keys frobnicate\nusage:/);
  });

  test('fault injection is refused in production mode', async () => {
    const res = await cli({ OPENEKM_EKM_MODE: 'production' }, 'faults', 'set', '*', 'hang');
    assert.equal(res.code, 2);
    assert.match(res.stderr, /refused in production/);
  });
});
