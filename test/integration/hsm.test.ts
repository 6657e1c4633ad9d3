/**
 * HSM keys against a real SoftHSM2 token (in a temporary directory) and the real Firestore emulator: keys made
 * in the token, non-extractable (its attributes read back through PKCS#11 by the test itself), encrypt/decrypt
 * inside the token in the documented ciphertext layout, tampering refused blandly, destruction removing the
 * token object, sessions re-established after the token closed them, and token failures (a key deleted behind
 * OpenEKM's back, a wrong PIN, a token that is not there) answered with clear errors instead of hangs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pkcs11js from 'pkcs11js';
import {
  ensureLocalHsm,
  findSoftHsm,
  LOCAL_HSM_TOKEN,
  localGatewayEnv,
} from '../../scripts/lib/local-state.js';
import { Gateway } from '../../shared/api/gateway.js';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const modulePath = findSoftHsm();
const skip = modulePath
  ? false
  : 'SoftHSM2 is not installed (libsofthsm2.so not found): run apt-get install softhsm2';
if (skip) {
  process.stderr.write(`\n!!! HSM TESTS SKIPPED: ${skip}\n\n`);
}

const BLAND =
  'Decryption failed: the ciphertext is invalid, or it was not produced by this key with this additional authenticated data.';
const OTHER_TOKEN = 'openekm-other';
const DAY = 86_400_000;
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

let dir: string;
let hsmEnv: Record<string, string>;
let s: TestStack;
let ring: string;
/** The test's own PKCS#11 view of the token, independent of OpenEKM's code. */
let lib: pkcs11js.PKCS11;
let slot: Buffer;
let session: Buffer;

function openOwnSession(pin: string): void {
  session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (err) {
    if (!/CKR_USER_ALREADY_LOGGED_IN/.test((err as Error).message)) throw err;
  }
}

function tokenKeys(ckaIdHex: string): Buffer[] {
  lib.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_ID, value: Buffer.from(ckaIdHex, 'hex') },
  ]);
  try {
    return lib.C_FindObjects(session, 10);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'openekm-hsm-'));
  hsmEnv = ensureLocalHsm(dir) as Record<string, string>;
  assert.ok(hsmEnv, 'ensureLocalHsm made no token although SoftHSM2 is installed');
  // A second token for the wrong-PIN case: login state is per token and process, so it must not be the first.
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', OTHER_TOKEN, '--so-pin', '12345678', '--pin', '87654321'],
    { env: { ...process.env, SOFTHSM2_CONF: hsmEnv.SOFTHSM2_CONF }, stdio: 'ignore' },
  );
  // SoftHSM reads its configuration once per process, at the first C_Initialize.
  process.env.SOFTHSM2_CONF = hsmEnv.SOFTHSM2_CONF;
  lib = new pkcs11js.PKCS11();
  lib.load(modulePath as string);
  lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  const found = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trim() === LOCAL_HSM_TOKEN);
  assert.ok(found, 'the local token is not in the slot list');
  slot = found;
  openOwnSession(loadConfig({ ...minimalEnv(), ...hsmEnv }).hsm?.pin as string);
  s = await startTestStack({ env: hsmEnv });
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  assert.equal((await s.call('POST', `${loc}/keyRings?keyRingId=hsm`, {})).status, 200);
  ring = `${loc}/keyRings/hsm`;
});

after(async () => {
  if (skip) return;
  await s?.stop();
  try {
    lib.C_CloseAllSessions(slot);
  } catch {
    // closed already
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Just enough environment for loadConfig to read the HSM settings. */
function minimalEnv(): Record<string, string> {
  return {
    OPENEKM_ROOT_KEYS: `t:${randomBytes(32).toString('base64')}`,
    OPENEKM_TRUSTED_ISSUERS: JSON.stringify([{ issuer: 'https://i', audiences: ['a'], jwks: { keys: [] } }]),
  };
}

async function hsmKey(id: string, body: Record<string, unknown> = {}): Promise<string> {
  const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}`, {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'HSM' },
    ...body,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.primary.protectionLevel, 'HSM');
  return `${ring}/cryptoKeys/${id}`;
}

async function stored(versionPath: string): Promise<Record<string, any>> {
  const doc = await s.gateway.deps.store.get<Record<string, any>>(versionPath.slice('/v1/'.length));
  assert.ok(doc, `${versionPath} is not in the store`);
  return doc;
}

async function roundTrip(key: string, text: string): Promise<void> {
  const enc = await s.call('POST', `${key}:encrypt`, { plaintext: b64(text) });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  const dec = await s.call('POST', `${key}:decrypt`, { ciphertext: enc.json.ciphertext });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), text);
}

test('an HSM key is created with its key in the token: protectionLevel HSM everywhere, no attestation, no material stored', {
  skip,
}, async () => {
  const key = await hsmKey('k1');
  const got = await s.call('GET', key);
  assert.equal(got.json.versionTemplate.protectionLevel, 'HSM');
  assert.equal(got.json.versionTemplate.algorithm, 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const v = await s.call('GET', `${key}/cryptoKeyVersions/1`);
  assert.equal(v.status, 200);
  assert.equal(v.json.protectionLevel, 'HSM');
  assert.equal(v.json.state, 'ENABLED');
  // SoftHSM makes no attestation, and none is invented: the field is absent, as for any version without one.
  assert.equal('attestation' in v.json, false);
  assert.equal('hsmKey' in v.json, false);
  const list = await s.call('GET', `${key}/cryptoKeyVersions?view=FULL`);
  assert.equal(list.json.cryptoKeyVersions[0].protectionLevel, 'HSM');
  assert.equal('attestation' in list.json.cryptoKeyVersions[0], false);
  const doc = await stored(`${key}/cryptoKeyVersions/1`);
  assert.equal(doc.material, undefined, 'an HSM version must not hold key material');
  assert.match(doc.hsmKey.ckaId, /^[0-9a-f]{32}$/);
  assert.equal(tokenKeys(doc.hsmKey.ckaId).length, 1);
});

test('the token key is AES-256, sensitive, never extractable, and its value cannot be read', {
  skip,
}, async () => {
  const key = await hsmKey('attrs');
  const doc = await stored(`${key}/cryptoKeyVersions/1`);
  const [handle] = tokenKeys(doc.hsmKey.ckaId);
  assert.ok(handle);
  const attrs = lib.C_GetAttributeValue(session, handle, [
    { type: pkcs11js.CKA_TOKEN },
    { type: pkcs11js.CKA_SENSITIVE },
    { type: pkcs11js.CKA_EXTRACTABLE },
    { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
    { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
    { type: pkcs11js.CKA_KEY_TYPE },
    { type: pkcs11js.CKA_VALUE_LEN },
    { type: pkcs11js.CKA_LABEL },
  ]);
  const value = (i: number) => attrs[i]?.value as Buffer;
  const bool = (i: number) => value(i)[0] === 1;
  assert.equal(bool(0), true, 'CKA_TOKEN');
  assert.equal(bool(1), true, 'CKA_SENSITIVE');
  assert.equal(bool(2), false, 'CKA_EXTRACTABLE');
  assert.equal(bool(3), true, 'CKA_ALWAYS_SENSITIVE');
  assert.equal(bool(4), true, 'CKA_NEVER_EXTRACTABLE');
  assert.equal(value(5).readUInt32LE(0), pkcs11js.CKK_AES);
  assert.equal(value(6).readUInt32LE(0), 32);
  assert.equal(value(7).toString(), doc.hsmKey.label);
  assert.throws(
    () => lib.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_VALUE }]),
    /CKR_ATTRIBUTE_SENSITIVE/,
  );
});

test('encrypt and decrypt run in the token, with AAD, in the documented ciphertext layout', {
  skip,
}, async () => {
  const key = await hsmKey('crypt');
  const plaintext = randomBytes(1000);
  const aad = Buffer.from('context-1');
  const enc = await s.call('POST', `${key}:encrypt`, {
    plaintext: b64(plaintext),
    additionalAuthenticatedData: b64(aad),
  });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  assert.equal(enc.json.protectionLevel, 'HSM');
  assert.equal(enc.json.name, `${key.slice('/v1/'.length)}/cryptoKeyVersions/1`);
  const ct = Buffer.from(enc.json.ciphertext, 'base64');
  // format 1 ‖ level 2 (HSM) ‖ version 1 ‖ L = 0 ‖ IV 12 ‖ ciphertext ‖ tag 16
  assert.equal(ct[0], 1);
  assert.equal(ct[1], 2);
  assert.equal(ct.readUInt32BE(2), 1);
  assert.equal(ct.readUInt16BE(6), 0);
  assert.equal(ct.length, 8 + 12 + plaintext.length + 16);
  // The plaintext does not appear in the ciphertext.
  assert.equal(ct.includes(plaintext.subarray(0, 32)), false);
  const dec = await s.call('POST', `${key}:decrypt`, {
    ciphertext: enc.json.ciphertext,
    additionalAuthenticatedData: b64(aad),
  });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.deepEqual(Buffer.from(dec.json.plaintext, 'base64'), plaintext);
  assert.equal(dec.json.protectionLevel, 'HSM');
  assert.equal(dec.json.usedPrimary, true);
  // Two encryptions of the same plaintext differ (fresh IV each time).
  const again = await s.call('POST', `${key}:encrypt`, {
    plaintext: b64(plaintext),
    additionalAuthenticatedData: b64(aad),
  });
  assert.notEqual(again.json.ciphertext, enc.json.ciphertext);
  // Many at once through the session pool.
  const many = await Promise.all(
    Array.from({ length: 24 }, (_, i) => roundTrip(key, `message ${i} ${'x'.repeat(i * 40)}`)),
  );
  assert.equal(many.length, 24);
});

test('a tampered, re-targeted or wrong-AAD ciphertext gets the bland INVALID_ARGUMENT', {
  skip,
}, async () => {
  const key = await hsmKey('tamper');
  const other = await hsmKey('tamper-other');
  const enc = await s.call('POST', `${key}:encrypt`, {
    plaintext: b64('secret'),
    additionalAuthenticatedData: b64('aad'),
  });
  const ct = Buffer.from(enc.json.ciphertext, 'base64');
  const flip = (i: number) => {
    const c = Buffer.from(ct);
    c[i] = (c[i] as number) ^ 0x01;
    return b64(c);
  };
  const cases: Array<[string, Record<string, unknown>]> = [
    ['data byte', { ciphertext: flip(8 + 12 + 2), additionalAuthenticatedData: b64('aad') }],
    ['tag byte', { ciphertext: flip(ct.length - 1), additionalAuthenticatedData: b64('aad') }],
    ['IV byte', { ciphertext: flip(8), additionalAuthenticatedData: b64('aad') }],
    ['level byte', { ciphertext: flip(1), additionalAuthenticatedData: b64('aad') }],
    ['wrong AAD', { ciphertext: enc.json.ciphertext, additionalAuthenticatedData: b64('aae') }],
    ['no AAD', { ciphertext: enc.json.ciphertext }],
    ['truncated', { ciphertext: b64(ct.subarray(0, 30)), additionalAuthenticatedData: b64('aad') }],
  ];
  for (const [what, body] of cases) {
    const r = await s.call('POST', `${key}:decrypt`, body);
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.status, 'INVALID_ARGUMENT', what);
    assert.equal(r.json.error.message, BLAND, what);
  }
  // Another HSM key of the same token cannot open it either.
  const moved = await s.call('POST', `${other}:decrypt`, {
    ciphertext: enc.json.ciphertext,
    additionalAuthenticatedData: b64('aad'),
  });
  assert.equal(moved.status, 400);
  assert.equal(moved.json.error.message, BLAND);
});

test('new versions get their own token keys; destroying a version destroys its token object', {
  skip,
}, async () => {
  const key = await hsmKey('doomed', { destroyScheduledDuration: '86400s' });
  const v2 = await s.call('POST', `${key}/cryptoKeyVersions`, {});
  assert.equal(v2.status, 200, JSON.stringify(v2.json));
  assert.equal(v2.json.protectionLevel, 'HSM');
  const [d1, d2] = await Promise.all([
    stored(`${key}/cryptoKeyVersions/1`),
    stored(`${key}/cryptoKeyVersions/2`),
  ]);
  assert.notEqual(d1.hsmKey.ckaId, d2.hsmKey.ckaId);
  const enc = await s.call('POST', `${key}/cryptoKeyVersions/2:encrypt`, { plaintext: b64('v2 data') });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  const destroy = await s.call('POST', `${key}/cryptoKeyVersions/2:destroy`, {});
  assert.equal(destroy.status, 200, JSON.stringify(destroy.json));
  assert.equal(destroy.json.state, 'DESTROY_SCHEDULED');
  assert.equal(tokenKeys(d2.hsmKey.ckaId).length, 1, 'the key must stay until the destroy time');
  s.advance(DAY + 60_000);
  const gone = await s.call('GET', `${key}/cryptoKeyVersions/2`);
  assert.equal(gone.json.state, 'DESTROYED');
  assert.equal(tokenKeys(d2.hsmKey.ckaId).length, 0, 'the token object must be destroyed');
  assert.equal(tokenKeys(d1.hsmKey.ckaId).length, 1, 'version 1 keeps its key');
  const dec = await s.call('POST', `${key}:decrypt`, { ciphertext: enc.json.ciphertext });
  assert.equal(dec.status, 400);
  assert.equal(dec.json.error.status, 'FAILED_PRECONDITION');
  assert.match(dec.json.error.message, /DESTROYED/);
  await roundTrip(key, 'version 1 still works');
});

test('sessions are re-established after the token closed them', { skip }, async () => {
  const key = await hsmKey('sessions');
  await roundTrip(key, 'before');
  // Closes every session of this process on the token, OpenEKM's included, and logs the user out.
  lib.C_CloseAllSessions(slot);
  await roundTrip(key, 'after');
  await Promise.all(Array.from({ length: 8 }, (_, i) => roundTrip(key, `after ${i}`)));
  openOwnSession(loadConfig({ ...minimalEnv(), ...hsmEnv }).hsm?.pin as string);
});

test('a key deleted from the token behind OpenEKM is FAILED_PRECONDITION, not a hang or a 500', {
  skip,
}, async () => {
  const key = await hsmKey('vanished');
  const doc = await stored(`${key}/cryptoKeyVersions/1`);
  const enc = await s.call('POST', `${key}:encrypt`, { plaintext: b64('x') });
  assert.equal(enc.status, 200);
  for (const h of tokenKeys(doc.hsmKey.ckaId)) lib.C_DestroyObject(session, h);
  for (const path of [`${key}:encrypt`, `${key}:decrypt`]) {
    const body = path.endsWith(':encrypt') ? { plaintext: b64('x') } : { ciphertext: enc.json.ciphertext };
    const r = await s.call('POST', path, body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error.status, 'FAILED_PRECONDITION');
    assert.match(r.json.error.message, /missing from token "openekm-gateway"/);
    assert.equal(r.json.error.details[0].violations[0].type, 'HSM_KEY_MISSING');
  }
});

test('a wrong PIN is FAILED_PRECONDITION naming the PIN setting; a missing token is UNAVAILABLE; nothing is written', {
  skip,
}, async () => {
  // Gateways beside the stack's, on the same Firestore project and token issuer, with broken HSM settings.
  const base = {
    ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST as string, s.stateDir)),
    ...hsmEnv,
    OPENEKM_FIRESTORE_PROJECT: s.project,
    OPENEKM_HSM_PIN_FILE: '',
  };
  const quiet = createLogger('error', () => undefined);
  const wrongPin = new Gateway({
    config: loadConfig({ ...base, OPENEKM_HSM_TOKEN_LABEL: OTHER_TOKEN, OPENEKM_HSM_PIN: 'not-the-pin' }),
    logger: quiet,
  });
  const absent = new Gateway({
    config: loadConfig({ ...base, OPENEKM_HSM_TOKEN_LABEL: 'no-such-token', OPENEKM_HSM_PIN: 'whatever' }),
    logger: quiet,
  });
  const token = await s.token();
  try {
    for (const [gateway, id, status, code, pattern] of [
      [
        wrongPin,
        'pin',
        400,
        'FAILED_PRECONDITION',
        /refused OpenEKM's login \(CKR_PIN_INCORRECT\).*OPENEKM_HSM_PIN_FILE/,
      ],
      [absent, 'absent', 503, 'UNAVAILABLE', /token "no-such-token" is not available/],
    ] as const) {
      const path = `${ring}/cryptoKeys?cryptoKeyId=${id}`;
      const out = await gateway.handle('keyAdmin', {
        method: 'POST',
        path: path.slice(0, path.indexOf('?')),
        query: new URLSearchParams(path.slice(path.indexOf('?') + 1)),
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: Buffer.from(
          JSON.stringify({ purpose: 'ENCRYPT_DECRYPT', versionTemplate: { protectionLevel: 'HSM' } }),
        ),
      });
      const json = JSON.parse(out.body);
      assert.equal(out.status, status, out.body);
      assert.equal(json.error.status, code);
      assert.match(json.error.message, pattern);
      assert.doesNotMatch(out.body, /not-the-pin|whatever/);
      assert.equal((await s.call('GET', `${ring}/cryptoKeys/${id}`)).status, 404, 'nothing may be written');
    }
  } finally {
    await wrongPin.close();
    await absent.close();
  }
  // The shared token is still fine for everyone else.
  await roundTrip(await hsmKey('still-fine'), 'ok');
});

test('a token that stops answering costs the request its timeout, not a hang; the pool recovers', {
  skip,
}, async (t) => {
  const python = spawnSync('python3', ['--version']).status === 0;
  if (!python) {
    process.stderr.write('\n!!! HSM hang test SKIPPED: python3 is needed to hold SoftHSM2 file locks\n\n');
    t.skip('python3 is not installed');
    return;
  }
  const key = await hsmKey('hang');
  const enc = await s.call('POST', `${key}:encrypt`, { plaintext: b64('before') });
  assert.equal(enc.status, 200);
  const quick = new Gateway({
    config: loadConfig({
      ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST as string, s.stateDir)),
      ...hsmEnv,
      OPENEKM_FIRESTORE_PROJECT: s.project,
      OPENEKM_HSM_TIMEOUT_MS: '1000',
    }),
    logger: createLogger('error', () => undefined),
  });
  const token = await s.token();
  const call = async (fn: 'encrypt' | 'decrypt', body: unknown, headers: Record<string, string> = {}) => {
    const out = await quick.handle(fn, {
      method: 'POST',
      path: `${key}:${fn}`,
      query: new URLSearchParams(),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: Buffer.from(JSON.stringify(body)),
    });
    return { status: out.status, json: JSON.parse(out.body) };
  };
  assert.equal((await call('encrypt', { plaintext: b64('warm') })).status, 200);
  // SoftHSM2 waits (F_SETLKW) for the lock on its token files: a held lock is a token that does not answer.
  const tokens = join(dir, 'hsm', 'tokens');
  const generations = readdirSync(tokens).map((d) => join(tokens, d, 'generation'));
  const locker = spawn(
    'python3',
    [
      '-c',
      'import fcntl,sys\nfs=[open(p,"r+") for p in sys.argv[1:]]\nfor f in fs: fcntl.lockf(f, fcntl.LOCK_EX)\nprint("locked", flush=True)\nsys.stdin.read()',
      ...generations,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  try {
    await new Promise((resolve) => locker.stdout.once('data', resolve));
    const hung = await call('decrypt', { ciphertext: enc.json.ciphertext });
    assert.equal(hung.status, 503, JSON.stringify(hung.json));
    assert.equal(hung.json.error.status, 'UNAVAILABLE');
    assert.match(hung.json.error.message, /did not answer within 1000 ms/);
    // The request deadline bounds the wait too.
    const deadline = await call('encrypt', { plaintext: b64('x') }, { 'x-server-timeout': '0.3' });
    assert.equal(deadline.status, 504, JSON.stringify(deadline.json));
    assert.equal(deadline.json.error.status, 'DEADLINE_EXCEEDED');
  } finally {
    locker.stdin.end();
    await new Promise((resolve) => locker.once('exit', resolve));
  }
  // Once the token answers again, fresh sessions serve (the threads released from the lock may take longer than
  // the 1 s timeout to catch up on a busy machine, so a few attempts are allowed).
  let back = await call('decrypt', { ciphertext: enc.json.ciphertext });
  for (let i = 0; i < 10 && back.status === 503; i++) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    back = await call('decrypt', { ciphertext: enc.json.ciphertext });
  }
  assert.equal(back.status, 200, JSON.stringify(back.json));
  assert.equal(Buffer.from(back.json.plaintext, 'base64').toString(), 'before');
  await quick.close();
  await roundTrip(key, 'after the hang');
});

test('HSM configuration errors name the setting to fix', { skip }, () => {
  const base = { ...minimalEnv() };
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ OPENEKM_HSM_TOKEN_LABEL: 'x' }, /OPENEKM_HSM_MODULE is not/],
    [{ OPENEKM_HSM_MODULE: '/nonexistent/lib.so' }, /does not exist/],
    [{ ...hsmEnv, OPENEKM_HSM_SLOT: '0' }, /exactly one of OPENEKM_HSM_TOKEN_LABEL/],
    [{ ...hsmEnv, OPENEKM_HSM_PIN: '1234' }, /exactly one of OPENEKM_HSM_PIN_FILE/],
    [{ ...hsmEnv, OPENEKM_HSM_PIN_FILE: join(dir, 'nope') }, /OPENEKM_HSM_PIN_FILE cannot be read/],
    [{ ...hsmEnv, OPENEKM_HSM_SESSIONS: '0' }, /OPENEKM_HSM_SESSIONS/],
  ];
  for (const [env, pattern] of cases) assert.throws(() => loadConfig({ ...base, ...env }), pattern);
  const ok = loadConfig({ ...base, ...hsmEnv });
  assert.equal(ok.hsm?.tokenLabel, LOCAL_HSM_TOKEN);
  assert.equal(ok.hsm?.sessions, 2);
  assert.equal(loadConfig(base).hsm, undefined);
});
