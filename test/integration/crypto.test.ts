/**
 * SOFTWARE encrypt and decrypt through the one base URL, against the real Firestore emulator: keys and versions,
 * AAD, tampering and foreign ciphertexts, size limits, CRC32C integrity (checked independently with
 * @node-rs/crc32), version states, Key Access Justifications, usedPrimary, and root key rotation across gateways.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { localGatewayEnv } from '../../scripts/lib/local-state.js';
import { Gateway } from '../../shared/api/gateway.js';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

type Reply = Awaited<ReturnType<TestStack['call']>>;
interface Detail {
  '@type': string;
  fieldViolations?: { field: string; description: string }[];
  violations?: { type: string; subject: string; description: string }[];
}

let s: TestStack;
let ring: string;
let k1: string;

const BLAND =
  'Decryption failed: the ciphertext is invalid, or it was not produced by this key with this additional authenticated data.';
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const crc = (b: Buffer) => String(crc32c(b) >>> 0);

before(async () => {
  s = await startTestStack();
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  assert.equal((await s.call('POST', `${loc}/keyRings?keyRingId=crypto`, {})).status, 200);
  ring = `${loc}/keyRings/crypto`;
  k1 = await makeKey('k1');
});
after(() => s.stop());

/** Creates a SOFTWARE key (with version 1 unless skipped) and returns its path. */
async function makeKey(id: string, body: Record<string, unknown> = {}, query = ''): Promise<string> {
  const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}${query}`, {
    purpose: 'ENCRYPT_DECRYPT',
    ...body,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return `${ring}/cryptoKeys/${id}`;
}

/** The resource name of a path (without /v1/). */
const nameOf = (path: string) => path.slice('/v1/'.length);

async function encrypt(path: string, body: Record<string, unknown>) {
  return s.call('POST', `${path}:encrypt`, body);
}
async function decrypt(path: string, body: Record<string, unknown>) {
  return s.call('POST', `${path}:decrypt`, body);
}

async function encryptOk(path: string, plaintext: Buffer, aad?: Buffer): Promise<Buffer> {
  const body: Record<string, unknown> = { plaintext: b64(plaintext) };
  if (aad) body.additionalAuthenticatedData = b64(aad);
  const r = await encrypt(path, body);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return Buffer.from(r.json.ciphertext, 'base64');
}

function assertBland(r: Reply): void {
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
  assert.equal(r.json.error.code, 400);
  assert.equal(r.json.error.message, BLAND);
  assert.equal(
    r.json.error.details,
    undefined,
    'the bland error carries no details that could tell failures apart',
  );
}

function assertInvalid(r: Reply, field: string, message: RegExp | string): void {
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
  if (typeof message === 'string') assert.equal(r.json.error.message, message);
  else assert.match(r.json.error.message, message);
  const bad = r.json.error.details?.find(
    (d: Detail) => d['@type'] === 'type.googleapis.com/google.rpc.BadRequest',
  );
  assert.ok(bad, `a BadRequest detail naming ${field}: ${JSON.stringify(r.json)}`);
  assert.equal(bad.fieldViolations[0].field, field);
}

function assertPrecondition(r: Reply, type: string, subject: string, message?: string): void {
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.error.status, 'FAILED_PRECONDITION');
  if (message) assert.equal(r.json.error.message, message);
  const pf = r.json.error.details?.find(
    (d: Detail) => d['@type'] === 'type.googleapis.com/google.rpc.PreconditionFailure',
  );
  assert.ok(pf, `a PreconditionFailure detail: ${JSON.stringify(r.json)}`);
  assert.equal(pf.violations.length, 1);
  assert.equal(pf.violations[0].type, type);
  assert.equal(pf.violations[0].subject, subject);
  assert.ok(pf.violations[0].description.length > 0);
}

test('encrypt on a key uses its primary; encrypt on a version uses that version; both decrypt on the key', async () => {
  const pt = Buffer.from('attack at dawn');
  const onKey = await encrypt(k1, { plaintext: b64(pt) });
  assert.equal(onKey.status, 200, JSON.stringify(onKey.json));
  assert.equal(onKey.json.name, `${nameOf(k1)}/cryptoKeyVersions/1`);
  assert.equal(onKey.json.protectionLevel, 'SOFTWARE');
  assert.equal(onKey.json.verifiedPlaintextCrc32c, false);
  assert.equal(onKey.json.verifiedAdditionalAuthenticatedDataCrc32c, false);
  assert.equal(onKey.json.ciphertextCrc32c, crc(Buffer.from(onKey.json.ciphertext, 'base64')));

  const v2 = await s.call('POST', `${k1}/cryptoKeyVersions`, {});
  assert.equal(v2.status, 200, JSON.stringify(v2.json));
  assert.equal(v2.json.name, `${nameOf(k1)}/cryptoKeyVersions/2`);
  const onVersion = await encrypt(`${k1}/cryptoKeyVersions/2`, { plaintext: b64(pt) });
  assert.equal(onVersion.status, 200, JSON.stringify(onVersion.json));
  assert.equal(onVersion.json.name, `${nameOf(k1)}/cryptoKeyVersions/2`);

  for (const ct of [onKey.json.ciphertext, onVersion.json.ciphertext]) {
    const d = await decrypt(k1, { ciphertext: ct });
    assert.equal(d.status, 200, JSON.stringify(d.json));
    assert.equal(Buffer.from(d.json.plaintext, 'base64').toString(), 'attack at dawn');
    assert.equal(d.json.plaintextCrc32c, crc(pt));
    assert.equal(d.json.protectionLevel, 'SOFTWARE');
  }
  // Two encryptions of the same plaintext never give the same ciphertext.
  assert.notEqual(onKey.json.ciphertext, (await encrypt(k1, { plaintext: b64(pt) })).json.ciphertext);
});

test('decrypt on a version name is refused with a message that says to use the key', async () => {
  const ct = await encryptOk(k1, Buffer.from('x'));
  assertInvalid(
    await decrypt(`${k1}/cryptoKeyVersions/1`, { ciphertext: b64(ct) }),
    'name',
    'Decrypt takes a crypto key name, not a version: the version is read from the ciphertext.',
  );
});

test('encrypt and decrypt on unknown keys and versions answer NOT_FOUND', async () => {
  const r = await encrypt(`${ring}/cryptoKeys/nope`, { plaintext: b64('x') });
  assert.equal(r.status, 404, JSON.stringify(r.json));
  assert.equal(r.json.error.status, 'NOT_FOUND');
  assert.equal(r.json.error.message, `${nameOf(ring)}/cryptoKeys/nope not found.`);
  const v = await encrypt(`${k1}/cryptoKeyVersions/99`, { plaintext: b64('x') });
  assert.equal(v.status, 404, JSON.stringify(v.json));
  assert.equal(v.json.error.message, `${nameOf(k1)}/cryptoKeyVersions/99 not found.`);
  const d = await decrypt(`${ring}/cryptoKeys/nope`, {
    ciphertext: b64(await encryptOk(k1, Buffer.from('x'))),
  });
  assert.equal(d.status, 404, JSON.stringify(d.json));
});

test('plaintext is required', async () => {
  assertInvalid(await encrypt(k1, {}), 'plaintext', 'plaintext is required (base64).');
});

test('AAD round trip, and any other AAD gives the bland error', async () => {
  const aad = Buffer.from('context: invoice 7');
  const ct = await encryptOk(k1, Buffer.from('secret'), aad);
  const ok = await decrypt(k1, { ciphertext: b64(ct), additionalAuthenticatedData: b64(aad) });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal(Buffer.from(ok.json.plaintext, 'base64').toString(), 'secret');
  assertBland(
    await decrypt(k1, { ciphertext: b64(ct), additionalAuthenticatedData: b64('context: invoice 8') }),
  );
  assertBland(await decrypt(k1, { ciphertext: b64(ct) }));
  const noAad = await encryptOk(k1, Buffer.from('secret'));
  assertBland(await decrypt(k1, { ciphertext: b64(noAad), additionalAuthenticatedData: b64(aad) }));
});

test('a ciphertext moved to another key or another version, or tampered anywhere, gives the bland error', async () => {
  const pt = Buffer.from('move me');
  const ct = await encryptOk(k1, pt);
  // Sanity: the untouched ciphertext decrypts, so every failure below is due to the change alone.
  assert.equal((await decrypt(k1, { ciphertext: b64(ct) })).status, 200);

  // Another key whose version 1 has the same number: the header matches, the key material does not.
  const other = await makeKey('other');
  assertBland(await decrypt(other, { ciphertext: b64(ct) }));
  // A ciphertext naming a version the key never had.
  const k2ct = await encryptOk(`${k1}/cryptoKeyVersions/2`, pt);
  assertBland(await decrypt(other, { ciphertext: b64(k2ct) }));
  // Re-labelled as version 2 of the same key (an enabled version with other material).
  const relabelled = Buffer.from(ct);
  relabelled.writeUInt32BE(2, 2);
  assertBland(await decrypt(k1, { ciphertext: b64(relabelled) }));

  const L = ct.readUInt16BE(6);
  const positions: Record<string, number> = {
    'header: format version': 0,
    'header: protection level': 1,
    'header: version number': 5,
    'header: key block length': 7,
    'key block': 8 + 20,
    'key block tag': 8 + L - 1,
    iv: 8 + L + 3,
    data: 8 + L + 12 + 2,
    tag: ct.length - 1,
  };
  for (const [where, i] of Object.entries(positions)) {
    const t = Buffer.from(ct);
    t[i] = t[i]! ^ 0x01;
    const r = await decrypt(k1, { ciphertext: b64(t) });
    assert.equal(
      r.json?.error?.message,
      BLAND,
      `flipping a bit in the ${where} (byte ${i}): ${JSON.stringify(r.json)}`,
    );
    assertBland(r);
  }
});

test('truncated, garbage and empty ciphertexts', async () => {
  const ct = await encryptOk(k1, Buffer.from('truncate me'));
  for (const n of [1, 7, 8, 20, ct.length - 17, ct.length - 1]) {
    assertBland(await decrypt(k1, { ciphertext: b64(ct.subarray(0, n)) }));
  }
  assertBland(await decrypt(k1, { ciphertext: b64(Buffer.concat([ct, Buffer.from([0])])) }));
  assertBland(await decrypt(k1, { ciphertext: b64(randomBytes(200)) }));
  assertBland(await decrypt(k1, { ciphertext: b64(Buffer.alloc(100)) }));
  assertInvalid(await decrypt(k1, { ciphertext: '' }), 'ciphertext', 'ciphertext is required (base64).');
  assertInvalid(await decrypt(k1, {}), 'ciphertext', 'ciphertext is required (base64).');
  assertInvalid(
    await decrypt(k1, { ciphertext: 'not base64!' }),
    'ciphertext',
    /ciphertext.*not valid base64/,
  );
});

test('plaintext and AAD of exactly 64 KiB are accepted; one byte more is refused', async () => {
  const big = randomBytes(64 * 1024);
  const aad = randomBytes(64 * 1024);
  const ct = await encryptOk(k1, big, aad);
  const d = await decrypt(k1, { ciphertext: b64(ct), additionalAuthenticatedData: b64(aad) });
  assert.equal(d.status, 200, JSON.stringify(d.json));
  assert.ok(Buffer.from(d.json.plaintext, 'base64').equals(big));
  assert.equal(d.json.plaintextCrc32c, crc(big));

  const over = randomBytes(64 * 1024 + 1);
  assertInvalid(
    await encrypt(k1, { plaintext: b64(over) }),
    'plaintext',
    /^The plaintext is too large: 65537 bytes, the limit is 65536 bytes\./,
  );
  assertInvalid(
    await encrypt(k1, { plaintext: b64('x'), additionalAuthenticatedData: b64(over) }),
    'additionalAuthenticatedData',
    /^The additionalAuthenticatedData is too large: 65537 bytes, the limit is 65536 bytes\./,
  );
  assertInvalid(
    await decrypt(k1, { ciphertext: b64(ct), additionalAuthenticatedData: b64(over) }),
    'additionalAuthenticatedData',
    /too large: 65537 bytes/,
  );
});

test('CRC32C: supplied checksums are verified and flagged; responses carry the checksum of what they return', async () => {
  const pt = Buffer.from('integrity matters');
  const aad = Buffer.from('aad');
  // gcloud always sends the AAD checksum; "0" is the CRC32C of empty AAD.
  const both = await encrypt(k1, {
    plaintext: b64(pt),
    plaintextCrc32c: crc(pt),
    additionalAuthenticatedDataCrc32c: '0',
  });
  assert.equal(both.status, 200, JSON.stringify(both.json));
  assert.equal(crc(Buffer.alloc(0)), '0');
  assert.equal(both.json.verifiedPlaintextCrc32c, true);
  assert.equal(both.json.verifiedAdditionalAuthenticatedDataCrc32c, true);
  const ct = Buffer.from(both.json.ciphertext, 'base64');
  assert.equal(both.json.ciphertextCrc32c, crc(ct));

  const onlyPt = await encrypt(k1, { plaintext: b64(pt), plaintextCrc32c: Number(crc(pt)) });
  assert.equal(onlyPt.json.verifiedPlaintextCrc32c, true, 'a checksum sent as a JSON number is accepted too');
  assert.equal(onlyPt.json.verifiedAdditionalAuthenticatedDataCrc32c, false);
  const onlyAad = await encrypt(k1, {
    plaintext: b64(pt),
    additionalAuthenticatedData: b64(aad),
    additionalAuthenticatedDataCrc32c: crc(aad),
  });
  assert.equal(onlyAad.json.verifiedPlaintextCrc32c, false);
  assert.equal(onlyAad.json.verifiedAdditionalAuthenticatedDataCrc32c, true);

  const bad = String((Number(crc(pt)) + 1) % 2 ** 32);
  const mismatch = (r: Reply, checksumField: string, dataField: string) =>
    assertInvalid(
      r,
      checksumField,
      `The checksum in field ${checksumField} did not match the data in field ${dataField}.`,
    );
  mismatch(await encrypt(k1, { plaintext: b64(pt), plaintextCrc32c: bad }), 'plaintext_crc32c', 'plaintext');
  mismatch(
    await encrypt(k1, {
      plaintext: b64(pt),
      additionalAuthenticatedData: b64(aad),
      additionalAuthenticatedDataCrc32c: '0',
    }),
    'additional_authenticated_data_crc32c',
    'additional_authenticated_data',
  );
  mismatch(
    await decrypt(k1, { ciphertext: b64(ct), ciphertextCrc32c: '12345' }),
    'ciphertext_crc32c',
    'ciphertext',
  );
  mismatch(
    await decrypt(k1, { ciphertext: b64(ct), additionalAuthenticatedDataCrc32c: crc(aad) }),
    'additional_authenticated_data_crc32c',
    'additional_authenticated_data',
  );
  // gcloud recognises exactly this shape and tells its user the request was corrupted in transit.
  const gcloudRegex = /The checksum in field .* did not match the data in field .*./;
  assert.match(
    (await encrypt(k1, { plaintext: b64(pt), plaintextCrc32c: bad })).json.error.message,
    gcloudRegex,
  );

  const dec = await decrypt(k1, {
    ciphertext: b64(ct),
    ciphertextCrc32c: crc(ct),
    additionalAuthenticatedDataCrc32c: '0',
  });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(dec.json.plaintextCrc32c, crc(Buffer.from(dec.json.plaintext, 'base64')));
  assert.equal(dec.json.plaintextCrc32c, crc(pt));
});

test('CRC32C values that are not uint32 decimal are refused, naming the field', async () => {
  const pt = b64('x');
  for (const v of ['4294967296', '-1', 'abc', '1.5', 1.5, -1, 2 ** 32, '', true, '0x10']) {
    assertInvalid(
      await encrypt(k1, { plaintext: pt, plaintextCrc32c: v }),
      'plaintextCrc32c',
      /plaintextCrc32c.*0 to 4294967295/,
    );
  }
  assertInvalid(
    await encrypt(k1, { plaintext: pt, additionalAuthenticatedDataCrc32c: '99999999999' }),
    'additionalAuthenticatedDataCrc32c',
    /0 to 4294967295/,
  );
  const ct = b64(await encryptOk(k1, Buffer.from('x')));
  assertInvalid(
    await decrypt(k1, { ciphertext: ct, ciphertextCrc32c: '4294967296' }),
    'ciphertextCrc32c',
    /0 to 4294967295/,
  );
  // The largest value is valid (it just does not match).
  const max = await encrypt(k1, { plaintext: pt, plaintextCrc32c: '4294967295' });
  assert.equal(
    max.json.error.message,
    'The checksum in field plaintext_crc32c did not match the data in field plaintext.',
  );
});

test('DISABLED, DESTROY_SCHEDULED and DESTROYED versions refuse crypto with FAILED_PRECONDITION naming the version', async () => {
  const key = await makeKey('states', { destroyScheduledDuration: '86400s' });
  const v1 = `${key}/cryptoKeyVersions/1`;
  const v1Name = nameOf(v1);
  const ct = b64(await encryptOk(key, Buffer.from('before')));

  const dis = await s.call('PATCH', `${v1}?updateMask=state`, { state: 'DISABLED' });
  assert.equal(dis.status, 200, JSON.stringify(dis.json));
  const disabledMsg = `${v1Name} is not enabled, current state is: DISABLED.`;
  assertPrecondition(await encrypt(key, { plaintext: b64('x') }), 'KEY_DISABLED', v1Name, disabledMsg);
  assertPrecondition(await encrypt(v1, { plaintext: b64('x') }), 'KEY_DISABLED', v1Name, disabledMsg);
  assertPrecondition(await decrypt(key, { ciphertext: ct }), 'KEY_DISABLED', v1Name, disabledMsg);

  // Enabled again, the old ciphertext decrypts.
  assert.equal((await s.call('PATCH', `${v1}?updateMask=state`, { state: 'ENABLED' })).status, 200);
  assert.equal((await decrypt(key, { ciphertext: ct })).status, 200);

  const destroy = await s.call('POST', `${v1}:destroy`, {});
  assert.equal(destroy.status, 200, JSON.stringify(destroy.json));
  assert.equal(destroy.json.state, 'DESTROY_SCHEDULED');
  const scheduledMsg = `${v1Name} is not enabled, current state is: DESTROY_SCHEDULED.`;
  const r1 = await encrypt(key, { plaintext: b64('x') });
  assertPrecondition(r1, r1.json.error.details[0].violations[0].type, v1Name, scheduledMsg);
  assert.notEqual(r1.json.error.details[0].violations[0].type, 'KEY_DISABLED');
  assert.equal((await decrypt(key, { ciphertext: ct })).json.error.message, scheduledMsg);

  // Restored (to DISABLED), enabled: still decrypts.
  assert.equal((await s.call('POST', `${v1}:restore`, {})).json.state, 'DISABLED');
  assert.equal((await s.call('PATCH', `${v1}?updateMask=state`, { state: 'ENABLED' })).status, 200);
  assert.equal((await decrypt(key, { ciphertext: ct })).status, 200);

  // Destroyed for good: its ciphertexts never decrypt again.
  assert.equal((await s.call('POST', `${v1}:destroy`, {})).status, 200);
  s.advance(2 * 86_400_000);
  const destroyedMsg = `${v1Name} is not enabled, current state is: DESTROYED.`;
  const r2 = await decrypt(key, { ciphertext: ct });
  assertPrecondition(r2, r2.json.error.details[0].violations[0].type, v1Name, destroyedMsg);
  assert.equal((await s.call('GET', v1)).json.state, 'DESTROYED');
  assert.equal((await s.call('POST', `${v1}:restore`, {})).status, 400, 'DESTROYED is terminal');
  assert.equal((await s.call('PATCH', `${v1}?updateMask=state`, { state: 'ENABLED' })).status, 400);
  assert.equal((await decrypt(key, { ciphertext: ct })).json.error.message, destroyedMsg);
  assert.equal((await encrypt(v1, { plaintext: b64('x') })).json.error.status, 'FAILED_PRECONDITION');
});

test('a key with no primary version refuses encrypt with FAILED_PRECONDITION', async () => {
  const key = await makeKey('noprimary', {}, '&skipInitialVersionCreation=true');
  const r = await encrypt(key, { plaintext: b64('x') });
  assertPrecondition(r, 'NO_PRIMARY_VERSION', nameOf(key));
  assert.match(r.json.error.message, /has no primary version/);
  // A version created later is not primary by itself; made primary, it encrypts.
  assert.equal((await s.call('POST', `${key}/cryptoKeyVersions`, {})).status, 200);
  assert.equal(
    (await s.call('POST', `${key}:updatePrimaryVersion`, { cryptoKeyVersionId: '1' })).status,
    200,
  );
  assert.equal((await encrypt(key, { plaintext: b64('x') })).status, 200);
});

test('a keyAccessJustificationsPolicy with an empty allowedAccessReasons list refuses every crypto operation', async () => {
  const key = await makeKey('kaj');
  const ct = b64(await encryptOk(key, Buffer.from('x')));
  const patch = await s.call('PATCH', `${key}?updateMask=keyAccessJustificationsPolicy`, {
    keyAccessJustificationsPolicy: { allowedAccessReasons: [] },
  });
  assert.equal(patch.status, 200, JSON.stringify(patch.json));
  assert.deepEqual(patch.json.keyAccessJustificationsPolicy, { allowedAccessReasons: [] });
  const e = await encrypt(key, { plaintext: b64('x') });
  assertPrecondition(e, 'KEY_ACCESS_JUSTIFICATION', `${nameOf(key)}/cryptoKeyVersions/1`);
  assert.match(e.json.error.message, /CUSTOMER_INITIATED_ACCESS/);
  assertPrecondition(
    await decrypt(key, { ciphertext: ct }),
    'KEY_ACCESS_JUSTIFICATION',
    `${nameOf(key)}/cryptoKeyVersions/1`,
  );

  // Allowing direct access (given as an enum number, 5 = CUSTOMER_INITIATED_ACCESS) makes it usable again.
  const allow = await s.call('PATCH', `${key}?updateMask=keyAccessJustificationsPolicy`, {
    keyAccessJustificationsPolicy: { allowedAccessReasons: [5] },
  });
  assert.equal(allow.status, 200, JSON.stringify(allow.json));
  assert.equal((await decrypt(key, { ciphertext: ct })).status, 200);

  // The same policy given at creation.
  const created = await makeKey('kaj2', { keyAccessJustificationsPolicy: { allowedAccessReasons: [] } });
  assert.equal((await encrypt(created, { plaintext: b64('x') })).json.error.status, 'FAILED_PRECONDITION');
});

test('usedPrimary follows the primary version', async () => {
  const key = await makeKey('rotate');
  const old = b64(await encryptOk(key, Buffer.from('old')));
  assert.equal((await decrypt(key, { ciphertext: old })).json.usedPrimary, true);
  assert.equal((await s.call('POST', `${key}/cryptoKeyVersions`, {})).status, 200);
  const up = await s.call('POST', `${key}:updatePrimaryVersion`, { cryptoKeyVersionId: '2' });
  assert.equal(up.status, 200, JSON.stringify(up.json));
  assert.equal(up.json.primary.name, `${nameOf(key)}/cryptoKeyVersions/2`);
  const fresh = await encrypt(key, { plaintext: b64('new') });
  assert.equal(fresh.json.name, `${nameOf(key)}/cryptoKeyVersions/2`);
  const dOld = await decrypt(key, { ciphertext: old });
  assert.equal(dOld.status, 200);
  assert.equal(dOld.json.usedPrimary, false);
  assert.equal(Buffer.from(dOld.json.plaintext, 'base64').toString(), 'old');
  assert.equal((await decrypt(key, { ciphertext: fresh.json.ciphertext })).json.usedPrimary, true);
});

test('root key rotation: a gateway holding new and old root keys still opens old material; one without it answers FAILED_PRECONDITION', async () => {
  const key = await makeKey('rootrot');
  const ct = b64(await encryptOk(key, Buffer.from('sealed under local-1')));
  const oldEntry = readFileSync(join(s.stateDir, 'root-keys'), 'utf8').trim();
  assert.match(oldEntry, /^local-1:/);
  const base = {
    ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST!, s.stateDir)),
    OPENEKM_FIRESTORE_PROJECT: s.project,
  };
  const quiet = createLogger('error', () => undefined);
  const rotated = new Gateway({
    config: loadConfig({
      ...base,
      OPENEKM_ROOT_KEYS: `new:${randomBytes(32).toString('base64')},${oldEntry}`,
    }),
    logger: quiet,
  });
  const lacking = new Gateway({
    config: loadConfig({ ...base, OPENEKM_ROOT_KEYS: `other:${randomBytes(32).toString('base64')}` }),
    logger: quiet,
  });
  const token = await s.token();
  const direct = async (g: Gateway, fn: 'encrypt' | 'decrypt' | 'keyAdmin', path: string, body: unknown) => {
    const out = await g.handle(fn, {
      method: 'POST',
      path,
      query: new URLSearchParams(),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(body)),
    });
    return { status: out.status, json: JSON.parse(out.body) };
  };
  try {
    const d = await direct(rotated, 'decrypt', `${key}:decrypt`, { ciphertext: ct });
    assert.equal(d.status, 200, JSON.stringify(d.json));
    assert.equal(Buffer.from(d.json.plaintext, 'base64').toString(), 'sealed under local-1');

    const lack = await direct(lacking, 'decrypt', `${key}:decrypt`, { ciphertext: ct });
    assert.equal(lack.status, 400, JSON.stringify(lack.json));
    assert.equal(lack.json.error.status, 'FAILED_PRECONDITION');
    assert.match(lack.json.error.message, /root key "local-1".*OPENEKM_ROOT_KEYS/);

    // A version made by the rotated gateway is sealed under "new": the old gateway cannot open it.
    const v2 = await direct(rotated, 'keyAdmin', `${key}/cryptoKeyVersions`, {});
    assert.equal(v2.status, 200, JSON.stringify(v2.json));
    const e2 = await direct(rotated, 'encrypt', `${key}/cryptoKeyVersions/2:encrypt`, {
      plaintext: b64('under new'),
    });
    assert.equal(e2.status, 200, JSON.stringify(e2.json));
    const old = await s.call('POST', `${key}:decrypt`, { ciphertext: e2.json.ciphertext });
    assert.equal(old.status, 400, JSON.stringify(old.json));
    assert.equal(old.json.error.status, 'FAILED_PRECONDITION');
    assert.match(old.json.error.message, /root key "new"/);
  } finally {
    await rotated.close();
    await lacking.close();
  }
});

test('no crypto request answered 500', () => {
  const failures = s.logs.filter((l) => /"status":5\d\d/.test(l));
  assert.deepEqual(failures, []);
});
