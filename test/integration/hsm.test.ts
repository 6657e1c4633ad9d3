/**
 * HSM keys against a real SoftHSM2 token (in a temporary directory) and the real Firestore emulator: keys made
 * in the token, non-extractable (its attributes read back through PKCS#11 by the test itself), encrypt/decrypt
 * inside the token in the documented ciphertext layout, tampering refused blandly, MACs and signatures made in the
 * token (signatures checked by node:crypto against the public key the gateway returns), random bytes from the
 * token, destruction removing the token objects, sessions re-established after the token closed them, and token
 * failures (a key deleted behind OpenEKM's back, a wrong PIN, a token that is not there) answered with clear
 * errors instead of hangs; symmetric and HMAC key import into the token (checked against the original bytes with
 * node:crypto), re-import, and asymmetric import refused.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  constants,
  createDecipheriv,
  createHash,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  publicDecrypt,
  randomBytes,
  verify as verifySignature,
} from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
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
import { opensslWrap } from '../helpers/key-wrap.js';
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
const crc = (b: Buffer) => String(crc32c(b) >>> 0);

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

/** The token's objects with that CKA_ID, of one class (secret keys unless told), or of any class (null). */
function tokenKeys(ckaIdHex: string, cls: number | null = pkcs11js.CKO_SECRET_KEY): Buffer[] {
  lib.C_FindObjectsInit(session, [
    ...(cls === null ? [] : [{ type: pkcs11js.CKA_CLASS, value: cls }]),
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

// --- generateRandomBytes ------------------------------------------------------------------------------------

test('generateRandomBytes at HSM returns lengthBytes bytes from the token with their CRC32C; other levels and lengths are refused', {
  skip,
}, async () => {
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  const gen = (body: unknown) => s.call('POST', `${loc}:generateRandomBytes`, body);
  for (const length of [8, 32, 1024, '64']) {
    const r = await gen({ lengthBytes: length, protectionLevel: 'HSM' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const data = Buffer.from(r.json.data, 'base64');
    assert.equal(data.length, Number(length));
    assert.equal(r.json.dataCrc32c, crc(data));
    assert.deepEqual(Object.keys(r.json).sort(), ['data', 'dataCrc32c']);
  }
  // Randomness sanity (each check fails for a constant, repeating or biased source): 64 answers all differ, and
  // the bits of 64 KiB are balanced (expected 262144 ones, standard deviation 362; the bound is 10 of them).
  const many = await Promise.all(
    Array.from({ length: 64 }, () => gen({ lengthBytes: 1024, protectionLevel: 'HSM' })),
  );
  const blobs = many.map((r) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return Buffer.from(r.json.data, 'base64');
  });
  assert.equal(new Set(blobs.map((b) => b.toString('hex'))).size, 64);
  const all = Buffer.concat(blobs);
  let ones = 0;
  const byteCounts = new Array(256).fill(0);
  for (const byte of all) {
    byteCounts[byte]++;
    for (let v = byte; v; v &= v - 1) ones++;
  }
  assert.ok(Math.abs(ones - all.length * 4) < 3620, `${ones} one bits in ${all.length * 8}`);
  // Every byte value occurs (expected 256 times each; a missing value has odds below 1e-100).
  assert.equal(byteCounts.filter((c) => c === 0).length, 0);
  // No byte position is the same in all 64 answers (odds 256^-63 for a random one): a fixed or padded byte fails.
  for (let i = 0; i < 1024; i++) {
    assert.ok(
      blobs.some((b) => b[i] !== blobs[0]?.[i]),
      `byte ${i} is ${blobs[0]?.[i]} in every answer`,
    );
  }

  const refused: Array<[unknown, number, string, RegExp]> = [
    [{ lengthBytes: 7, protectionLevel: 'HSM' }, 400, 'INVALID_ARGUMENT', /8 to 1024/],
    [{ lengthBytes: 1025, protectionLevel: 'HSM' }, 400, 'INVALID_ARGUMENT', /8 to 1024/],
    [{ protectionLevel: 'HSM' }, 400, 'INVALID_ARGUMENT', /8 to 1024/],
    [{ lengthBytes: 16.5, protectionLevel: 'HSM' }, 400, 'INVALID_ARGUMENT', /8 to 1024/],
    [{ lengthBytes: 16, protectionLevel: 'SOFTWARE' }, 501, 'UNIMPLEMENTED', /only at protection level HSM/],
    [{ lengthBytes: 16, protectionLevel: 'EXTERNAL' }, 501, 'UNIMPLEMENTED', /only at protection level HSM/],
    [{ lengthBytes: 16 }, 501, 'UNIMPLEMENTED', /an unspecified level/],
    [{ lengthBytes: 16, protectionLevel: 'NO_SUCH' }, 400, 'INVALID_ARGUMENT', /protectionLevel/],
    [{ lengthBytes: 16, protectionLevel: 'HSM', extra: 1 }, 400, 'INVALID_ARGUMENT', /extra/],
  ];
  for (const [body, status, code, pattern] of refused) {
    const r = await gen(body);
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.status, code);
    assert.match(r.json.error.message, pattern);
  }
  const badLocation = await s.call(
    'POST',
    `/v1/projects/${s.project}/locations/us-east1/keyRings/hsm:generateRandomBytes`,
    { lengthBytes: 16, protectionLevel: 'HSM' },
  );
  assert.notEqual(badLocation.status, 200);
});

// --- MAC keys -------------------------------------------------------------------------------------------------

async function hsmKeyOf(
  id: string,
  purpose: string,
  algorithm: string,
  body: Record<string, unknown> = {},
): Promise<string> {
  const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}`, {
    purpose,
    versionTemplate: { protectionLevel: 'HSM', algorithm },
    ...body,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.versionTemplate.protectionLevel, 'HSM');
  assert.equal(r.json.versionTemplate.algorithm, algorithm);
  return `${ring}/cryptoKeys/${id}/cryptoKeyVersions/1`;
}

function attributes(handle: Buffer, types: number[]): Buffer[] {
  return lib
    .C_GetAttributeValue(
      session,
      handle,
      types.map((type) => ({ type })),
    )
    .map((a) => a.value as Buffer);
}

test('HSM MAC keys: a generic secret in the token (sign/verify only, never extractable); HMACs made and checked there', {
  skip,
}, async () => {
  const v = await hsmKeyOf('mac256', 'MAC', 'HMAC_SHA256');
  const doc = await stored(v);
  assert.equal(doc.material, undefined);
  const [handle] = tokenKeys(doc.hsmKey.ckaId);
  assert.ok(handle, 'the MAC key is not in the token');
  const [keyType, len, sensitive, extractable, sign, verify, encrypt, derive, neverExtractable] = attributes(
    handle,
    [
      pkcs11js.CKA_KEY_TYPE,
      pkcs11js.CKA_VALUE_LEN,
      pkcs11js.CKA_SENSITIVE,
      pkcs11js.CKA_EXTRACTABLE,
      pkcs11js.CKA_SIGN,
      pkcs11js.CKA_VERIFY,
      pkcs11js.CKA_ENCRYPT,
      pkcs11js.CKA_DERIVE,
      pkcs11js.CKA_NEVER_EXTRACTABLE,
    ],
  ) as Buffer[];
  assert.equal(keyType?.readUInt32LE(0), pkcs11js.CKK_GENERIC_SECRET);
  assert.equal(len?.readUInt32LE(0), 32);
  assert.deepEqual(
    [sensitive, extractable, sign, verify, encrypt, derive, neverExtractable].map((b) => b?.[0]),
    [1, 0, 1, 1, 0, 0, 1],
  );
  assert.throws(
    () => lib.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_VALUE }]),
    /CKR_ATTRIBUTE_SENSITIVE/,
  );

  const data = Buffer.from('message to authenticate');
  const signed = await s.call('POST', `${v}:macSign`, { data: b64(data), dataCrc32c: crc(data) });
  assert.equal(signed.status, 200, JSON.stringify(signed.json));
  const mac = Buffer.from(signed.json.mac, 'base64');
  assert.equal(mac.length, 32);
  assert.deepEqual(signed.json, {
    name: v.slice('/v1/'.length),
    mac: signed.json.mac,
    macCrc32c: crc(mac),
    verifiedDataCrc32c: true,
    protectionLevel: 'HSM',
  });
  // HMAC is deterministic: the same data gives the same tag; other data another.
  const again = await s.call('POST', `${v}:macSign`, { data: b64(data) });
  assert.equal(again.json.mac, signed.json.mac);
  assert.equal(again.json.verifiedDataCrc32c, false);
  const other = await s.call('POST', `${v}:macSign`, { data: b64('message to authenticatf') });
  assert.notEqual(other.json.mac, signed.json.mac);
  // Another HSM MAC key gives another tag for the same data.
  const v2 = await hsmKeyOf('mac256b', 'MAC', 'HMAC_SHA256');
  const foreign = await s.call('POST', `${v2}:macSign`, { data: b64(data) });
  assert.equal(foreign.status, 200);
  assert.notEqual(foreign.json.mac, signed.json.mac);

  const check = async (d: Buffer, m: Buffer, extra: Record<string, unknown> = {}) => {
    const r = await s.call('POST', `${v}:macVerify`, { data: b64(d), mac: b64(m), ...extra });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.protectionLevel, 'HSM');
    assert.equal(r.json.verifiedSuccessIntegrity, r.json.success);
    return r.json;
  };
  const good = await check(data, mac, { dataCrc32c: crc(data), macCrc32c: crc(mac) });
  assert.deepEqual(good, {
    name: v.slice('/v1/'.length),
    success: true,
    verifiedDataCrc32c: true,
    verifiedMacCrc32c: true,
    verifiedSuccessIntegrity: true,
    protectionLevel: 'HSM',
  });
  const flipped = Buffer.from(mac);
  flipped[5] = (flipped[5] as number) ^ 0x80;
  assert.equal((await check(data, flipped)).success, false, 'a tampered tag');
  assert.equal((await check(Buffer.from('message to authenticatf'), mac)).success, false, 'tampered data');
  assert.equal((await check(data, mac.subarray(0, 31))).success, false, 'a truncated tag');
  assert.equal((await check(data, Buffer.concat([mac, Buffer.from([0])]))).success, false, 'a longer tag');
  assert.equal(
    (await check(data, Buffer.from(foreign.json.mac, 'base64'))).success,
    false,
    "another key's tag",
  );
  // The other key verifies its own tag, and not this key's.
  const own = await s.call('POST', `${v2}:macVerify`, { data: b64(data), mac: foreign.json.mac });
  assert.equal(own.json.success, true);
  const notOwn = await s.call('POST', `${v2}:macVerify`, { data: b64(data), mac: b64(mac) });
  assert.equal(notOwn.json.success, false);
  // Checksums and limits as for SOFTWARE keys.
  const badCrc = await s.call('POST', `${v}:macSign`, { data: b64(data), dataCrc32c: '1' });
  assert.equal(badCrc.status, 400);
  assert.equal(badCrc.json.error.status, 'INVALID_ARGUMENT');
  const big = await s.call('POST', `${v}:macSign`, { data: b64(Buffer.alloc(64 * 1024 + 1)) });
  assert.equal(big.status, 400);
  assert.match(big.json.error.message, /too large/);
  // Empty data is MACed too.
  const empty = await s.call('POST', `${v}:macSign`, {});
  assert.equal(empty.status, 200, JSON.stringify(empty.json));
  assert.equal((await check(Buffer.alloc(0), Buffer.from(empty.json.mac, 'base64'))).success, true);
});

test('every HSM HMAC algorithm makes tags of its hash length that verify only for their data', {
  skip,
}, async () => {
  const sizes: Record<string, number> = {
    HMAC_SHA1: 20,
    HMAC_SHA224: 28,
    HMAC_SHA256: 32,
    HMAC_SHA384: 48,
    HMAC_SHA512: 64,
  };
  const tags = new Set<string>();
  for (const [algorithm, size] of Object.entries(sizes)) {
    const v = await hsmKeyOf(`m-${algorithm.toLowerCase().replace('_', '-')}`, 'MAC', algorithm);
    const [handle] = tokenKeys((await stored(v)).hsmKey.ckaId);
    assert.equal(attributes(handle as Buffer, [pkcs11js.CKA_VALUE_LEN])[0]?.readUInt32LE(0), size, algorithm);
    const r = await s.call('POST', `${v}:macSign`, { data: b64('same data') });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const mac = Buffer.from(r.json.mac, 'base64');
    assert.equal(mac.length, size, algorithm);
    tags.add(r.json.mac);
    const ok = await s.call('POST', `${v}:macVerify`, { data: b64('same data'), mac: r.json.mac });
    assert.equal(ok.json.success, true, algorithm);
    const bad = await s.call('POST', `${v}:macVerify`, { data: b64('same datA'), mac: r.json.mac });
    assert.equal(bad.json.success, false, algorithm);
  }
  assert.equal(tags.size, 5);
});

// --- Asymmetric signing ---------------------------------------------------------------------------------------

const SIGNERS: Array<{
  algorithm: string;
  hash: 'sha256' | 'sha384' | 'sha512';
  check: (pem: string) => void;
  verify: (pem: string, data: Buffer, signature: Buffer) => boolean;
}> = [
  ...(
    [
      ['EC_SIGN_P256_SHA256', 'sha256', 'prime256v1'],
      ['EC_SIGN_P384_SHA384', 'sha384', 'secp384r1'],
      ['EC_SIGN_SECP256K1_SHA256', 'sha256', 'secp256k1'],
    ] as const
  ).map(([algorithm, hash, curve]) => ({
    algorithm,
    hash,
    check: (pem: string) => assert.equal(createPublicKey(pem).asymmetricKeyDetails?.namedCurve, curve),
    // DER-encoded ECDSA, as Cloud KMS returns it (node:crypto's default dsaEncoding).
    verify: (pem: string, data: Buffer, signature: Buffer) =>
      verifySignature(hash, data, { key: pem, dsaEncoding: 'der' }, signature),
  })),
  ...(
    [
      ['RSA_SIGN_PKCS1_2048_SHA256', 'sha256', 2048, false],
      ['RSA_SIGN_PSS_2048_SHA256', 'sha256', 2048, true],
      ['RSA_SIGN_PSS_3072_SHA256', 'sha256', 3072, true],
      ['RSA_SIGN_PKCS1_4096_SHA512', 'sha512', 4096, false],
      ['RSA_SIGN_PSS_4096_SHA512', 'sha512', 4096, true],
    ] as const
  ).map(([algorithm, hash, bits, isPss]) => ({
    algorithm,
    hash,
    check: (pem: string) => {
      const details = createPublicKey(pem).asymmetricKeyDetails;
      assert.equal(details?.modulusLength, bits);
      assert.equal(details?.publicExponent, 65537n);
    },
    verify: (pem: string, data: Buffer, signature: Buffer) =>
      signature.length === bits / 8 &&
      verifySignature(
        hash,
        data,
        isPss
          ? { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bits === 4096 ? 64 : 32 }
          : { key: pem, padding: constants.RSA_PKCS1_PADDING },
        signature,
      ),
  })),
];

for (const signer of SIGNERS) {
  test(`HSM ${signer.algorithm}: key pair in the token, public key from it, signatures (of data and of digests) verify with node:crypto`, {
    skip,
  }, async () => {
    const id = `s-${signer.algorithm.toLowerCase().replaceAll('_', '-')}`;
    const v = await hsmKeyOf(id, 'ASYMMETRIC_SIGN', signer.algorithm);
    const doc = await stored(v);
    assert.equal(doc.material, undefined);
    // One private and one public object under the version's CKA_ID; the private one sealed in the token.
    const [priv] = tokenKeys(doc.hsmKey.ckaId, pkcs11js.CKO_PRIVATE_KEY);
    assert.ok(priv, 'no private key object');
    assert.equal(tokenKeys(doc.hsmKey.ckaId, pkcs11js.CKO_PUBLIC_KEY).length, 1);
    assert.equal(tokenKeys(doc.hsmKey.ckaId, null).length, 2);
    const [sensitive, extractable, sign, decrypt, neverExtractable] = attributes(priv, [
      pkcs11js.CKA_SENSITIVE,
      pkcs11js.CKA_EXTRACTABLE,
      pkcs11js.CKA_SIGN,
      pkcs11js.CKA_DECRYPT,
      pkcs11js.CKA_NEVER_EXTRACTABLE,
    ]);
    assert.deepEqual(
      [sensitive, extractable, sign, decrypt, neverExtractable].map((b) => b?.[0]),
      [1, 0, 1, 0, 1],
    );

    const pk = await s.call('GET', `${v}/publicKey`);
    assert.equal(pk.status, 200, JSON.stringify(pk.json));
    assert.equal(pk.json.algorithm, signer.algorithm);
    assert.equal(pk.json.protectionLevel, 'HSM');
    assert.equal(pk.json.pemCrc32c, crc(Buffer.from(pk.json.pem)));
    signer.check(pk.json.pem);
    const der = await s.call('GET', `${v}/publicKey?publicKeyFormat=DER`);
    assert.equal(der.status, 200, JSON.stringify(der.json));
    assert.deepEqual(
      Buffer.from(der.json.publicKey.data, 'base64'),
      createPublicKey(pk.json.pem).export({ type: 'spki', format: 'der' }),
    );

    const data = randomBytes(300);
    const byData = await s.call('POST', `${v}:asymmetricSign`, { data: b64(data), dataCrc32c: crc(data) });
    assert.equal(byData.status, 200, JSON.stringify(byData.json));
    const sig1 = Buffer.from(byData.json.signature, 'base64');
    assert.equal(byData.json.signatureCrc32c, crc(sig1));
    assert.equal(byData.json.verifiedDataCrc32c, true);
    assert.equal(byData.json.verifiedDigestCrc32c, false);
    assert.equal(byData.json.protectionLevel, 'HSM');
    assert.equal(signer.verify(pk.json.pem, data, sig1), true, 'signature of data');

    const digest = createHash(signer.hash).update(data).digest();
    const byDigest = await s.call('POST', `${v}:asymmetricSign`, {
      digest: { [signer.hash]: b64(digest) },
      digestCrc32c: crc(digest),
    });
    assert.equal(byDigest.status, 200, JSON.stringify(byDigest.json));
    assert.equal(byDigest.json.verifiedDigestCrc32c, true);
    const sig2 = Buffer.from(byDigest.json.signature, 'base64');
    assert.equal(signer.verify(pk.json.pem, data, sig2), true, 'signature of a digest');
    // A signature does not verify for other data, or under another key's public key.
    assert.equal(signer.verify(pk.json.pem, Buffer.concat([data, Buffer.from('x')]), sig2), false);
    // Digest checks as for SOFTWARE keys.
    const wrongLength = await s.call('POST', `${v}:asymmetricSign`, {
      digest: { [signer.hash]: b64(digest.subarray(1)) },
    });
    assert.equal(wrongLength.status, 400);
    assert.equal(wrongLength.json.error.status, 'INVALID_ARGUMENT');
  });
}

test('HSM RSA_SIGN_RAW_PKCS1_2048 pads and signs the data itself in the token', { skip }, async () => {
  const v = await hsmKeyOf('raw-pkcs1', 'ASYMMETRIC_SIGN', 'RSA_SIGN_RAW_PKCS1_2048');
  const pem = (await s.call('GET', `${v}/publicKey`)).json.pem as string;
  const data = randomBytes(200);
  const r = await s.call('POST', `${v}:asymmetricSign`, { data: b64(data) });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const sig = Buffer.from(r.json.signature, 'base64');
  assert.equal(sig.length, 256);
  assert.deepEqual(publicDecrypt({ key: pem, padding: constants.RSA_PKCS1_PADDING }, sig), data);
  const tooLong = await s.call('POST', `${v}:asymmetricSign`, { data: b64(randomBytes(246)) });
  assert.equal(tooLong.status, 400);
  assert.match(tooLong.json.error.message, /at most 245 bytes/);
});

test('HSM EC_SIGN_ED25519 signs the message itself in the token (CKM_EDDSA); node:crypto verifies it', {
  skip,
}, async () => {
  const v = await hsmKeyOf('ed25519', 'ASYMMETRIC_SIGN', 'EC_SIGN_ED25519');
  const doc = await stored(v);
  const [priv] = tokenKeys(doc.hsmKey.ckaId, pkcs11js.CKO_PRIVATE_KEY);
  assert.ok(priv);
  assert.deepEqual(
    attributes(priv, [pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE]).map((b) => b[0]),
    [1, 0],
  );
  const pk = await s.call('GET', `${v}/publicKey`);
  assert.equal(pk.status, 200, JSON.stringify(pk.json));
  assert.equal(createPublicKey(pk.json.pem).asymmetricKeyType, 'ed25519');
  const data = randomBytes(500);
  const r = await s.call('POST', `${v}:asymmetricSign`, { data: b64(data), dataCrc32c: crc(data) });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const sig = Buffer.from(r.json.signature, 'base64');
  assert.equal(sig.length, 64);
  assert.equal(r.json.protectionLevel, 'HSM');
  assert.equal(verifySignature(null, data, pk.json.pem, sig), true);
  assert.equal(verifySignature(null, Buffer.concat([data, Buffer.from('!')]), pk.json.pem, sig), false);
  // Ed25519 signs messages, not digests, as for SOFTWARE keys.
  const digest = await s.call('POST', `${v}:asymmetricSign`, {
    digest: { sha256: b64(createHash('sha256').update(data).digest()) },
  });
  assert.equal(digest.status, 400);
  assert.match(digest.json.error.message, /signs the message itself/);
});

test('HSM signing keys: different keys have different public keys; versions and destruction cover both token objects', {
  skip,
}, async () => {
  const v1 = await hsmKeyOf('sign-life', 'ASYMMETRIC_SIGN', 'EC_SIGN_P256_SHA256', {
    destroyScheduledDuration: '86400s',
  });
  const key = v1.slice(0, v1.lastIndexOf('/cryptoKeyVersions/'));
  const v2r = await s.call('POST', `${key}/cryptoKeyVersions`, {});
  assert.equal(v2r.status, 200, JSON.stringify(v2r.json));
  assert.equal(v2r.json.protectionLevel, 'HSM');
  const v2 = `/v1/${v2r.json.name}`;
  const pem1 = (await s.call('GET', `${v1}/publicKey`)).json.pem as string;
  const pem2 = (await s.call('GET', `${v2}/publicKey`)).json.pem as string;
  assert.notEqual(pem1, pem2);
  const data = Buffer.from('signed by version 2');
  const sig = Buffer.from(
    (await s.call('POST', `${v2}:asymmetricSign`, { data: b64(data) })).json.signature,
    'base64',
  );
  assert.equal(verifySignature('sha256', data, pem2, sig), true);
  assert.equal(verifySignature('sha256', data, pem1, sig), false);
  // Many at once through the session pool, each signature over its own message.
  const messages = Array.from({ length: 16 }, (_, i) => Buffer.from(`message ${i}`));
  const signed = await Promise.all(
    messages.map((m) => s.call('POST', `${v1}:asymmetricSign`, { data: b64(m) })),
  );
  signed.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const ok = verifySignature(
      'sha256',
      messages[i] as Buffer,
      pem1,
      Buffer.from(r.json.signature, 'base64'),
    );
    assert.equal(ok, true, `signature ${i}`);
  });
  const d2 = await stored(v2);
  assert.equal(tokenKeys(d2.hsmKey.ckaId, null).length, 2);
  assert.equal((await s.call('POST', `${v2}:destroy`, {})).status, 200);
  s.advance(DAY + 60_000);
  assert.equal((await s.call('GET', v2)).json.state, 'DESTROYED');
  assert.equal(tokenKeys(d2.hsmKey.ckaId, null).length, 0, 'both objects of the pair must be destroyed');
  assert.equal(tokenKeys((await stored(v1)).hsmKey.ckaId, null).length, 2, 'version 1 keeps its pair');
  assert.equal((await s.call('POST', `${v1}:asymmetricSign`, { data: b64(data) })).status, 200);
});

test('a signing key pair deleted from the token behind OpenEKM: getPublicKey and asymmetricSign are FAILED_PRECONDITION', {
  skip,
}, async () => {
  const v = await hsmKeyOf('sign-vanished', 'ASYMMETRIC_SIGN', 'EC_SIGN_P256_SHA256');
  const doc = await stored(v);
  for (const h of tokenKeys(doc.hsmKey.ckaId, null)) lib.C_DestroyObject(session, h);
  for (const [method, path, body] of [
    ['GET', `${v}/publicKey`, undefined],
    ['POST', `${v}:asymmetricSign`, { data: b64('x') }],
  ] as const) {
    const r = await s.call(method, path, body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error.status, 'FAILED_PRECONDITION');
    assert.match(r.json.error.message, /missing from token "openekm-gateway"/);
  }
});

test('algorithms HSM keys do not offer are refused with 501 naming the algorithm at HSM; nothing is written', {
  skip,
}, async () => {
  for (const [purpose, algorithm] of [
    ['ASYMMETRIC_DECRYPT', 'RSA_DECRYPT_OAEP_2048_SHA256'],
    ['RAW_ENCRYPT_DECRYPT', 'AES_256_GCM'],
  ] as const) {
    const id = `no-${algorithm.toLowerCase().replaceAll('_', '-')}`;
    const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}`, {
      purpose,
      versionTemplate: { protectionLevel: 'HSM', algorithm },
    });
    assert.equal(r.status, 501, JSON.stringify(r.json));
    assert.equal(r.json.error.status, 'UNIMPLEMENTED');
    assert.match(r.json.error.message, new RegExp(`Algorithm ${algorithm} at protection level HSM`));
    assert.equal((await s.call('GET', `${ring}/cryptoKeys/${id}`)).status, 404);
  }
});

// --- Key import into the token ----------------------------------------------------------------------------------

/** How many objects OpenEKM's user sees in the token. */
function tokenObjectCount(): number {
  lib.C_FindObjectsInit(session, []);
  try {
    return lib.C_FindObjects(session, 100_000).length;
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** An ACTIVE HSM import job (its RSA wrapping key is made like a SOFTWARE job's, outside the token). */
async function hsmImportJob(id: string): Promise<{ name: string; pem: string }> {
  const r = await s.call('POST', `${ring}/importJobs?importJobId=${id}`, {
    importMethod: 'RSA_OAEP_3072_SHA256_AES_256',
    protectionLevel: 'HSM',
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.protectionLevel, 'HSM');
  assert.equal(r.json.state, 'ACTIVE');
  assert.match(r.json.publicKey.pem, /^-----BEGIN PUBLIC KEY-----/);
  return { name: r.json.name, pem: r.json.publicKey.pem };
}

/** An import-only HSM key without versions. */
async function hsmImportKey(id: string, purpose: string, algorithm: string): Promise<string> {
  const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}&skipInitialVersionCreation=true`, {
    purpose,
    importOnly: true,
    destroyScheduledDuration: '86400s',
    versionTemplate: { protectionLevel: 'HSM', algorithm },
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return `${ring}/cryptoKeys/${id}`;
}

async function importWrapped(
  key: string,
  job: { name: string; pem: string },
  algorithm: string,
  material: Buffer,
) {
  return s.call('POST', `${key}/cryptoKeyVersions:import`, {
    algorithm,
    importJob: job.name,
    wrappedKey: b64(opensslWrap(dir, job.pem, 'RSA_OAEP_3072_SHA256_AES_256', material)),
  });
}

test('an AES key imported at HSM lives in the token (sensitive, never extractable) and encrypts there with the imported bytes', {
  skip,
}, async () => {
  const job = await hsmImportJob('hsm-job-aes');
  const key = await hsmImportKey('imp-aes', 'ENCRYPT_DECRYPT', 'GOOGLE_SYMMETRIC_ENCRYPTION');
  const material = randomBytes(32);
  const r = await importWrapped(key, job, 'GOOGLE_SYMMETRIC_ENCRYPTION', material);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const v = r.json;
  assert.equal(v.state, 'ENABLED');
  assert.equal(v.protectionLevel, 'HSM');
  assert.equal(v.algorithm, 'GOOGLE_SYMMETRIC_ENCRYPTION');
  assert.equal(v.importJob, job.name);
  assert.equal(v.reimportEligible, true);
  assert.ok(v.importTime);
  assert.equal(v.generateTime, undefined);
  // Stored like a generated HSM version: a token reference, no material.
  const doc = await stored(`/v1/${v.name}`);
  assert.equal(doc.material, undefined);
  assert.match(doc.hsmKey.ckaId, /^[0-9a-f]{32}$/);
  const [handle] = tokenKeys(doc.hsmKey.ckaId);
  assert.ok(handle, 'the imported key is not in the token');
  const [keyType, len, sensitive, extractable, enc, dec, sign, wrap, token, priv, neverExtractable] =
    attributes(handle, [
      pkcs11js.CKA_KEY_TYPE,
      pkcs11js.CKA_VALUE_LEN,
      pkcs11js.CKA_SENSITIVE,
      pkcs11js.CKA_EXTRACTABLE,
      pkcs11js.CKA_ENCRYPT,
      pkcs11js.CKA_DECRYPT,
      pkcs11js.CKA_SIGN,
      pkcs11js.CKA_WRAP,
      pkcs11js.CKA_TOKEN,
      pkcs11js.CKA_PRIVATE,
      pkcs11js.CKA_NEVER_EXTRACTABLE,
    ]);
  assert.equal(keyType?.readUInt32LE(0), pkcs11js.CKK_AES);
  assert.equal(len?.readUInt32LE(0), 32);
  assert.deepEqual(
    [sensitive, extractable, enc, dec, sign, wrap, token, priv].map((b) => b?.[0]),
    [1, 0, 1, 1, 0, 0, 1, 1],
  );
  // Made from a value, not in the token: the token says so (docs/key-import.md).
  assert.equal(neverExtractable?.[0], 0);
  assert.throws(() => lib.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_VALUE }]));

  // The first imported version of an import-only key is its primary: encrypt through OpenEKM, open with the
  // original bytes by the documented layout (a wrong key in the token fails the tag check here).
  const aad = Buffer.from('imported-aad');
  const text = Buffer.from('sealed by the imported key in the token');
  const e = await s.call('POST', `${key}:encrypt`, {
    plaintext: b64(text),
    additionalAuthenticatedData: b64(aad),
  });
  assert.equal(e.status, 200, JSON.stringify(e.json));
  assert.equal(e.json.name, v.name);
  assert.equal(e.json.protectionLevel, 'HSM');
  const ct = Buffer.from(e.json.ciphertext, 'base64');
  assert.deepEqual([ct[0], ct[1], ct.readUInt32BE(2), ct.readUInt16BE(6)], [1, 2, 1, 0]);
  const name = Buffer.from(v.name, 'utf8');
  const nameLen = Buffer.alloc(4);
  nameLen.writeUInt32BE(name.length, 0);
  const d = createDecipheriv('aes-256-gcm', material, ct.subarray(8, 20));
  d.setAAD(Buffer.concat([ct.subarray(0, 8), nameLen, name, aad]));
  d.setAuthTag(ct.subarray(ct.length - 16));
  assert.deepEqual(Buffer.concat([d.update(ct.subarray(20, ct.length - 16)), d.final()]), text);
  // And OpenEKM decrypts it in the token.
  const back = await s.call('POST', `${key}:decrypt`, {
    ciphertext: e.json.ciphertext,
    additionalAuthenticatedData: b64(aad),
  });
  assert.equal(back.status, 200, JSON.stringify(back.json));
  assert.deepEqual(Buffer.from(back.json.plaintext, 'base64'), text);

  // Material of the wrong length: IMPORT_FAILED, and no token object is made for it.
  const before = tokenObjectCount();
  const bad = await importWrapped(key, job, 'GOOGLE_SYMMETRIC_ENCRYPTION', randomBytes(24));
  assert.equal(bad.status, 200, JSON.stringify(bad.json));
  assert.equal(bad.json.state, 'IMPORT_FAILED');
  assert.match(bad.json.importFailureReason, /32 raw bytes/);
  assert.equal((await stored(`/v1/${bad.json.name}`)).hsmKey, undefined);
  assert.equal(tokenObjectCount(), before);
});

test('an HMAC key imported at HSM MACs in the token with the imported bytes (sign/verify only)', {
  skip,
}, async () => {
  const job = await hsmImportJob('hsm-job-mac');
  const key = await hsmImportKey('imp-mac', 'MAC', 'HMAC_SHA256');
  const material = randomBytes(32);
  const r = await importWrapped(key, job, 'HMAC_SHA256', material);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.state, 'ENABLED');
  assert.equal(r.json.protectionLevel, 'HSM');
  const doc = await stored(`/v1/${r.json.name}`);
  const [handle] = tokenKeys(doc.hsmKey.ckaId);
  assert.ok(handle, 'the imported MAC key is not in the token');
  const [keyType, sensitive, extractable, sign, verify, enc] = attributes(handle, [
    pkcs11js.CKA_KEY_TYPE,
    pkcs11js.CKA_SENSITIVE,
    pkcs11js.CKA_EXTRACTABLE,
    pkcs11js.CKA_SIGN,
    pkcs11js.CKA_VERIFY,
    pkcs11js.CKA_ENCRYPT,
  ]);
  assert.equal(keyType?.readUInt32LE(0), pkcs11js.CKK_GENERIC_SECRET);
  assert.deepEqual(
    [sensitive, extractable, sign, verify, enc].map((b) => b?.[0]),
    [1, 0, 1, 1, 0],
  );
  const data = Buffer.from('mac me in the token');
  const m = await s.call('POST', `/v1/${r.json.name}:macSign`, { data: b64(data) });
  assert.equal(m.status, 200, JSON.stringify(m.json));
  assert.equal(m.json.protectionLevel, 'HSM');
  assert.deepEqual(Buffer.from(m.json.mac, 'base64'), createHmac('sha256', material).update(data).digest());
  const ok1 = await s.call('POST', `/v1/${r.json.name}:macVerify`, {
    data: b64(data),
    mac: m.json.mac,
  });
  assert.equal(ok1.json.success, true, JSON.stringify(ok1.json));
});

test('re-import at HSM: the same bytes make a new token object; other bytes are IMPORT_FAILED and leave none', {
  skip,
}, async () => {
  const job = await hsmImportJob('hsm-job-re');
  const key = await hsmImportKey('imp-re', 'MAC', 'HMAC_SHA256');
  const material = randomBytes(32);
  const first = await importWrapped(key, job, 'HMAC_SHA256', material);
  assert.equal(first.status, 200, JSON.stringify(first.json));
  const path = `/v1/${first.json.name}`;
  const oldId = (await stored(path)).hsmKey.ckaId;
  // Refused inside the write (the version is ENABLED) after the material went into the token: the new token
  // object is destroyed again.
  const count = tokenObjectCount();
  const early = await s.call('POST', `${key}/cryptoKeyVersions:import`, {
    algorithm: 'HMAC_SHA256',
    importJob: job.name,
    cryptoKeyVersion: first.json.name,
    wrappedKey: b64(opensslWrap(dir, job.pem, 'RSA_OAEP_3072_SHA256_AES_256', material)),
  });
  assert.equal(early.status, 400, JSON.stringify(early.json));
  assert.equal(early.json.error.status, 'FAILED_PRECONDITION');
  assert.match(early.json.error.message, /ENABLED/);
  assert.equal(tokenObjectCount(), count, 'a refused import left its token object behind');
  const del = await s.call('POST', `${path}:destroy`, {});
  assert.equal(del.status, 200, JSON.stringify(del.json));
  s.advance(DAY + 60_000);
  const got = await s.call('GET', path);
  assert.equal(got.json.state, 'DESTROYED', JSON.stringify(got.json));
  assert.equal(tokenKeys(oldId).length, 0);
  const reimport = (m: Buffer) =>
    s.call('POST', `${key}/cryptoKeyVersions:import`, {
      algorithm: 'HMAC_SHA256',
      importJob: job.name,
      cryptoKeyVersion: first.json.name,
      wrappedKey: b64(opensslWrap(dir, job.pem, 'RSA_OAEP_3072_SHA256_AES_256', m)),
    });
  const before = tokenObjectCount();
  const wrong = await reimport(randomBytes(32));
  assert.equal(wrong.status, 200, JSON.stringify(wrong.json));
  assert.equal(wrong.json.state, 'IMPORT_FAILED');
  assert.match(wrong.json.importFailureReason, /not the material first imported/);
  assert.equal(tokenObjectCount(), before, 'a refused re-import left a token object');
  const right = await reimport(material);
  assert.equal(right.status, 200, JSON.stringify(right.json));
  assert.equal(right.json.state, 'ENABLED');
  const newId = (await stored(path)).hsmKey.ckaId;
  assert.notEqual(newId, oldId);
  assert.equal(tokenKeys(newId).length, 1);
  const data = Buffer.from('after re-import');
  const m = await s.call('POST', `${path}:macSign`, { data: b64(data) });
  assert.deepEqual(Buffer.from(m.json.mac, 'base64'), createHmac('sha256', material).update(data).digest());
});

test('asymmetric keys cannot be imported at HSM: 501 naming the algorithm, no version; HSM_SINGLE_TENANT jobs are 501', {
  skip,
}, async () => {
  const job = await hsmImportJob('hsm-job-ec');
  const key = await hsmImportKey('imp-ec', 'ASYMMETRIC_SIGN', 'EC_SIGN_P256_SHA256');
  const pkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'der',
  });
  const r = await importWrapped(key, job, 'EC_SIGN_P256_SHA256', pkcs8);
  assert.equal(r.status, 501, JSON.stringify(r.json));
  assert.equal(r.json.error.status, 'UNIMPLEMENTED');
  assert.match(r.json.error.message, /EC_SIGN_P256_SHA256/);
  assert.match(r.json.error.message, /HSM/);
  const list = await s.call('GET', `${key}/cryptoKeyVersions`);
  assert.equal(list.json.totalSize ?? 0, 0, JSON.stringify(list.json));
  assert.deepEqual(list.json.cryptoKeyVersions ?? [], []);
  const st = await s.call('POST', `${ring}/importJobs?importJobId=st`, {
    importMethod: 'RSA_OAEP_3072_SHA256',
    protectionLevel: 'HSM_SINGLE_TENANT',
  });
  assert.equal(st.status, 501, JSON.stringify(st.json));
  // A SOFTWARE job does not import into an HSM key.
  const sw = await s.call('POST', `${ring}/importJobs?importJobId=sw-for-hsm`, {
    importMethod: 'RSA_OAEP_3072_SHA256_AES_256',
    protectionLevel: 'SOFTWARE',
  });
  const mac = await hsmImportKey('imp-mismatch', 'MAC', 'HMAC_SHA256');
  const mm = await importWrapped(
    mac,
    { name: sw.json.name, pem: sw.json.publicKey.pem },
    'HMAC_SHA256',
    randomBytes(32),
  );
  assert.equal(mm.status, 400, JSON.stringify(mm.json));
  assert.equal(mm.json.error.status, 'FAILED_PRECONDITION');
});
