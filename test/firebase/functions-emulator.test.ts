/**
 * The four functions in the Firebase Functions emulator: `firebase emulators:start --only functions --project
 * demo-openekm` from the isolated install (firebase/node_modules; `npm ci --ignore-scripts --no-audit --no-fund
 * --prefix firebase`), serving the BUILT functions (firebase/functions re-exports dist/, rebuilt here when stale)
 * on free loopback ports, against the Firestore emulator of the test run (FIRESTORE_EMULATOR_HOST, set by
 * scripts/run-tests.ts), with the local stack's identity (localGatewayEnv) and the test stack's Firestore project.
 *
 * Key ring, SOFTWARE and EXTERNAL keys are made through keyAdmin; encrypt and decrypt round-trip through their own
 * functions. Requests reach a function as http://127.0.0.1:PORT/demo-openekm/us-central1/<function>/v1/…; the
 * emulator strips the prefix, so the function sees /v1/projects/…:encrypt as in production.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import {
  ensureBuilt,
  type FunctionName,
  firebaseCli,
  type RunningFunctionsEmulator,
  startFunctionsEmulator,
} from '../../firebase/emulators.js';
import { localGatewayEnv } from '../../scripts/lib/local-state.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const BLAND =
  'Decryption failed: the ciphertext is invalid, or it was not produced by this key with this additional authenticated data.';
const b64 = (t: string) => Buffer.from(t).toString('base64');

let s: TestStack;
let emu: RunningFunctionsEmulator | undefined;
let token: string;
let ring: string;

before(async () => {
  // No silent skip: without the isolated install this fails with the command that installs it.
  firebaseCli();
  ensureBuilt();
  s = await startTestStack({ ekm: true });
  token = await s.token();
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  ring = `${loc}/keyRings/fb`;
  emu = await startFunctionsEmulator({
    ephemeralPorts: true,
    env: {
      ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST!, s.stateDir)),
      ...s.ekm!.env,
      OPENEKM_FIRESTORE_PROJECT: s.project,
      OPENEKM_EKM_QUOTA: '{"enabled": false}',
      OPENEKM_LOG_LEVEL: 'info',
    },
  });
});

after(async () => {
  await emu?.stop();
  await s?.stop();
});

async function call(
  name: FunctionName,
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string } = {},
): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  const t = opts.token ?? token;
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  // The first call of each function starts its worker (1.5–3 s, more on a busy machine).
  const res = await fetch(emu!.url(name) + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    assert.fail(
      `${name} ${method} ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 300)}`,
    );
  }
  return { status: res.status, json };
}

test('healthCheck answers /health through the emulator without a token', async () => {
  const r = await call('healthCheck', 'GET', '/health', undefined, { token: '' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.status, 'SERVING');
});

test('keyAdmin creates a key ring and a SOFTWARE key; encrypt and decrypt round-trip through their functions', async () => {
  const created = await call(
    'keyAdmin',
    'POST',
    `${ring.replace(/\/keyRings\/fb$/, '')}/keyRings?keyRingId=fb`,
    {},
  );
  assert.equal(created.status, 200, JSON.stringify(created.json));
  const key = await call('keyAdmin', 'POST', `${ring}/cryptoKeys?cryptoKeyId=soft`, {
    purpose: 'ENCRYPT_DECRYPT',
  });
  assert.equal(key.status, 200, JSON.stringify(key.json));
  assert.equal(key.json.primary.protectionLevel, 'SOFTWARE');
  // Written to the test run's Firestore emulator: the in-process gateway of the test stack reads it.
  assert.equal((await s.call('GET', `${ring}/cryptoKeys/soft`)).status, 200);

  const aad = b64('firebase');
  const enc = await call('encrypt', 'POST', `${ring}/cryptoKeys/soft:encrypt`, {
    plaintext: b64('hello from the emulator'),
    additionalAuthenticatedData: aad,
  });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  assert.equal(enc.json.name, `${ring.slice('/v1/'.length)}/cryptoKeys/soft/cryptoKeyVersions/1`);
  assert.equal(enc.json.protectionLevel, 'SOFTWARE');
  const dec = await call('decrypt', 'POST', `${ring}/cryptoKeys/soft:decrypt`, {
    ciphertext: enc.json.ciphertext,
    additionalAuthenticatedData: aad,
  });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'hello from the emulator');

  // A tampered ciphertext fails with the google.rpc envelope, as does one decrypted without its AAD.
  const tampered = Buffer.from(enc.json.ciphertext, 'base64');
  tampered.writeUInt8(tampered.at(-1)! ^ 1, tampered.length - 1);
  for (const body of [
    { ciphertext: tampered.toString('base64'), additionalAuthenticatedData: aad },
    { ciphertext: enc.json.ciphertext },
  ]) {
    const bad = await call('decrypt', 'POST', `${ring}/cryptoKeys/soft:decrypt`, body);
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.deepEqual(bad.json, { error: { code: 400, message: BLAND, status: 'INVALID_ARGUMENT' } });
  }
  // Each function keeps to its own routes, as on Cloud Functions.
  const wrong = await call('encrypt', 'POST', `${ring}/cryptoKeys/soft:decrypt`, {
    ciphertext: enc.json.ciphertext,
  });
  assert.equal(wrong.status, 404, JSON.stringify(wrong.json));
  assert.equal(wrong.json.error.status, 'NOT_FOUND');
  assert.match(wrong.json.error.message, /This is the encrypt function; .* served by the decrypt function/);
  // And refuses a caller without a token.
  const anonymous = await call(
    'encrypt',
    'POST',
    `${ring}/cryptoKeys/soft:encrypt`,
    { plaintext: b64('x') },
    { token: '' },
  );
  assert.equal(anonymous.status, 401, JSON.stringify(anonymous.json));
  assert.equal(anonymous.json.error.status, 'UNAUTHENTICATED');
});

test('an EXTERNAL key at the reference EKM: encrypt and decrypt from the emulator reach the EKM', async () => {
  await s.ekm!.ekm.admin.createKey('fb-ext');
  const key = await call(
    'keyAdmin',
    'POST',
    `${ring}/cryptoKeys?cryptoKeyId=ext&skipInitialVersionCreation=true`,
    {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    },
  );
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const version = await call('keyAdmin', 'POST', `${ring}/cryptoKeys/ext/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: s.ekm!.keyUri('fb-ext', 'google', 'http') },
  });
  assert.equal(version.status, 200, JSON.stringify(version.json));
  const primary = await call('keyAdmin', 'POST', `${ring}/cryptoKeys/ext:updatePrimaryVersion`, {
    cryptoKeyVersionId: '1',
  });
  assert.equal(primary.status, 200, JSON.stringify(primary.json));

  const enc = await call('encrypt', 'POST', `${ring}/cryptoKeys/ext:encrypt`, { plaintext: b64('external') });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  assert.equal(enc.json.protectionLevel, 'EXTERNAL');
  const dec = await call('decrypt', 'POST', `${ring}/cryptoKeys/ext:decrypt`, {
    ciphertext: enc.json.ciphertext,
  });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'external');
});

test('the functions logged through the emulator, without tokens or plaintext', () => {
  const all = emu!.output.join('\n');
  assert.match(
    all,
    /"operation":"google.cloud.kms.v1.KeyManagementService.Encrypt"/,
    'the encrypt function logged its request',
  );
  assert.ok(!all.includes(token.split('.')[2]!), 'no token signature in the logs');
  assert.ok(!all.includes(b64('hello from the emulator')), 'no plaintext in the logs');
});

test('stopping the emulator leaves none of its processes behind', async () => {
  const pid = emu!.pid;
  await emu!.stop();
  emu = undefined;
  // The CLI ran in its own process group with the function workers it spawned: nothing of that group may still
  // run. (Workers that outlived the CLI are briefly zombies until init reaps them: dead, so not counted.)
  const alive = () =>
    execFileSync('ps', ['-eo', 'pid=,pgid=,stat=,args='], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([, pgid, stat]) => pgid === String(pid) && !stat?.startsWith('Z'))
      .map((f) => f.join(' '));
  const left = alive();
  assert.deepEqual(left, [], `processes of the emulator's group still running:\n${left.join('\n')}`);
});
