/**
 * Each of the four functions runs alone under the real functions framework, as documented:
 * `npx functions-framework --target=<name> --port=<port> --source=<repo>` on the BUILT output (dist/, from
 * `npm run build`, rebuilt here when any source under functions/ or shared/ is newer than it), with the
 * environment of the local stack (localGatewayEnv) and the test stack's Firestore project.
 *
 * Each serves its own routes, refuses the other functions' routes with a 404 envelope, and answers malformed JSON
 * and oversize bodies with the JSON envelope (functions/platform.ts hooks the framework's Express app for this).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureBuilt } from '../../scripts/lib/build.js';
import { freePort } from '../../scripts/lib/firestore-emulator.js';
import { localGatewayEnv } from '../../scripts/lib/local-state.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const ROOT = resolve(import.meta.dirname, '../..');
const NAMES = ['keyAdmin', 'encrypt', 'decrypt', 'healthCheck'] as const;
type Name = (typeof NAMES)[number];

let s: TestStack;
let token: string;
let loc: string;
const procs = new Map<Name, { child: ChildProcess; url: string; output: string[] }>();

async function waitUntilServing(url: string, name: Name, output: string[]): Promise<void> {
  const deadline = Date.now() + 45_000;
  while (Date.now() < deadline) {
    try {
      await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 150));
    }
  }
  throw new Error(`functions-framework --target=${name} did not start within 45 s:\n${output.join('')}`);
}

before(async () => {
  s = await startTestStack();
  token = await s.token();
  loc = `/v1/projects/${s.project}/locations/us-central1`;
  ensureBuilt(120_000);
  const env = {
    ...process.env,
    ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST!, s.stateDir)),
    OPENEKM_FIRESTORE_PROJECT: s.project,
    OPENEKM_LOG_LEVEL: 'info',
  };
  await Promise.all(
    NAMES.map(async (name) => {
      const port = await freePort();
      const output: string[] = [];
      // Its own process group, so that stopping it stops npx and the framework it started.
      const child = spawn(
        'npx',
        ['functions-framework', `--target=${name}`, `--port=${port}`, `--source=${ROOT}`],
        {
          cwd: ROOT,
          env: { ...env, PORT: String(port) },
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        },
      );
      child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
      child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
      const url = `http://127.0.0.1:${port}`;
      procs.set(name, { child, url, output });
      await waitUntilServing(url, name, output);
    }),
  );
});

after(async () => {
  for (const { child } of procs.values()) {
    if (child.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    }
  }
  await s?.stop();
});

async function call(
  name: Name,
  method: string,
  path: string,
  opts: { body?: string; token?: string; headers?: Record<string, string> } = {},
): Promise<{
  status: number;
  json: { [k: string]: unknown; error?: { code: number; status: string; message: string } };
  contentType: string;
}> {
  const headers: Record<string, string> = { ...opts.headers };
  const t = opts.token ?? token;
  if (t) headers.authorization = `Bearer ${t}`;
  if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(procs.get(name)!.url + path, {
    method,
    headers,
    body: opts.body,
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let json: { [k: string]: unknown };
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(
      `${name} ${method} ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 300)}`,
    );
  }
  return { status: res.status, json, contentType: res.headers.get('content-type') ?? '' };
}

function assertEnvelope(
  r: Awaited<ReturnType<typeof call>>,
  status: number,
  code: string,
  message: RegExp,
): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json.error?.code, status);
  assert.equal(r.json.error?.status, code);
  assert.match(r.json.error?.message ?? '', message);
  assert.match(r.contentType, /^application\/json/);
}

test('keyAdmin alone: creates and reads key rings and keys; refuses crypto and health routes', async () => {
  const ring = await call('keyAdmin', 'POST', `${loc}/keyRings?keyRingId=ff`, { body: '""' });
  assert.equal(ring.status, 200, JSON.stringify(ring.json));
  const key = await call('keyAdmin', 'POST', `${loc}/keyRings/ff/cryptoKeys?cryptoKeyId=k&alt=json`, {
    body: '{"purpose":"ENCRYPT_DECRYPT"}',
  });
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const list = await call('keyAdmin', 'GET', `${loc}/keyRings/ff/cryptoKeys?pageSize=10`);
  assert.equal(list.status, 200, JSON.stringify(list.json));
  assert.equal((list.json.cryptoKeys as unknown[]).length, 1);
  // The test stack's gateway sees what the separate process wrote: same Firestore project.
  assert.equal((await s.call('GET', `${loc}/keyRings/ff/cryptoKeys/k`)).status, 200);

  assertEnvelope(
    await call('keyAdmin', 'POST', `${loc}/keyRings/ff/cryptoKeys/k:encrypt`, {
      body: '{"plaintext":"aGk="}',
    }),
    404,
    'NOT_FOUND',
    /^This is the keyAdmin function; POST .*:encrypt is served by the encrypt function\./,
  );
  assertEnvelope(
    await call('keyAdmin', 'GET', '/health'),
    404,
    'NOT_FOUND',
    /served by the healthCheck function/,
  );
});

test("encrypt and decrypt alone: each serves its own verb and refuses the other's", async () => {
  const keyPath = `${loc}/keyRings/ff/cryptoKeys/k`;
  const enc = await call('encrypt', 'POST', `${keyPath}:encrypt`, {
    body: JSON.stringify({ plaintext: 'c2VwYXJhdGU=' }),
  });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  assert.equal(enc.json.name, `${keyPath.slice(4)}/cryptoKeyVersions/1`);
  const dec = await call('decrypt', 'POST', `${keyPath}:decrypt`, {
    body: JSON.stringify({ ciphertext: enc.json.ciphertext }),
  });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(dec.json.plaintext, 'c2VwYXJhdGU=');

  assertEnvelope(
    await call('encrypt', 'POST', `${keyPath}:decrypt`, {
      body: JSON.stringify({ ciphertext: enc.json.ciphertext }),
    }),
    404,
    'NOT_FOUND',
    /This is the encrypt function; .* served by the decrypt function/,
  );
  assertEnvelope(
    await call('decrypt', 'POST', `${keyPath}:encrypt`, { body: '{"plaintext":"aGk="}' }),
    404,
    'NOT_FOUND',
    /served by the encrypt function/,
  );
  assertEnvelope(
    await call('encrypt', 'GET', `${loc}/keyRings`),
    404,
    'NOT_FOUND',
    /served by the keyAdmin function/,
  );
  assertEnvelope(await call('decrypt', 'GET', '/'), 404, 'NOT_FOUND', /is not part of this API/);
});

test('healthCheck alone: /health and /health/ready without a token; nothing else', async () => {
  const health = await call('healthCheck', 'GET', '/health', { token: '' });
  assert.equal(health.status, 200, JSON.stringify(health.json));
  assert.equal(health.json.status, 'SERVING');
  const ready = await call('healthCheck', 'GET', '/health/ready', { token: '' });
  assert.equal(ready.status, 200, JSON.stringify(ready.json));
  assert.equal(ready.json.firestore, 'reachable');
  assertEnvelope(
    await call('healthCheck', 'GET', `${loc}/keyRings`),
    404,
    'NOT_FOUND',
    /served by the keyAdmin function/,
  );
  assertEnvelope(
    await call('healthCheck', 'POST', '/health/tasks:run', { token: '' }),
    401,
    'UNAUTHENTICATED',
    /missing required/,
  );
});

test('the bare framework answers malformed JSON, odd content types and oversize bodies with the envelope', async () => {
  const keyPath = `${loc}/keyRings/ff/cryptoKeys/k`;
  const bad: [Name, string, string, Record<string, string>, number, string, RegExp][] = [
    [
      'encrypt',
      `${keyPath}:encrypt`,
      '{"plaintext": ',
      {},
      400,
      'INVALID_ARGUMENT',
      /^Invalid JSON payload received/,
    ],
    ['encrypt', `${keyPath}:encrypt`, '[1,2]', {}, 400, 'INVALID_ARGUMENT', /must be a JSON object/],
    [
      'keyAdmin',
      `${loc}/keyRings?keyRingId=bad`,
      '{',
      { 'content-type': 'application/json; charset=utf-8' },
      400,
      'INVALID_ARGUMENT',
      /Invalid JSON payload/,
    ],
    [
      'keyAdmin',
      `${loc}/keyRings?keyRingId=bad`,
      'a=1&b=2',
      { 'content-type': 'application/x-www-form-urlencoded' },
      400,
      'INVALID_ARGUMENT',
      /Invalid JSON payload/,
    ],
    [
      'decrypt',
      `${keyPath}:decrypt`,
      '<xml/>',
      { 'content-type': 'text/xml' },
      400,
      'INVALID_ARGUMENT',
      /Invalid JSON payload/,
    ],
    [
      'decrypt',
      `${keyPath}:decrypt`,
      `{"ciphertext":"${'A'.repeat(1100 * 1024)}"}`,
      {},
      400,
      'INVALID_ARGUMENT',
      /limit is 1048576 bytes/,
    ],
  ];
  for (const [name, path, body, headers, status, code, message] of bad) {
    assertEnvelope(await call(name, 'POST', path, { body, headers }), status, code, message);
  }
  // `""` (the Node client's empty message) and a text/plain JSON body work.
  assert.equal(
    (
      await call('keyAdmin', 'POST', `${loc}/keyRings?keyRingId=plain`, {
        body: '""',
        headers: { 'content-type': 'text/plain' },
      })
    ).status,
    200,
  );
  assert.equal((await call('keyAdmin', 'POST', `${loc}/keyRings?keyRingId=nobody`)).status, 200);
});

test('the separate processes logged requests without tokens or payloads', () => {
  const all = [...procs.values()].flatMap((p) => p.output).join('');
  assert.match(all, /"requestId"/, 'request log lines were written');
  assert.ok(!all.includes(token.split('.')[2]!), 'no token signature in the logs');
  assert.ok(!all.includes('c2VwYXJhdGU='), 'no plaintext in the logs');
  assert.ok(!/"status":5\d\d/.test(all), `no 5xx in the logs:\n${all.slice(0, 2000)}`);
});
