/**
 * Audit entries: one per admin and crypto method call — refused and failed ones included — in the Cloud Audit Logs
 * shape, and never a trace of plaintext, AAD, ciphertext, key material or tokens in anything the process wrote
 * (gateway log lines, the reference EKM's lines, and every write to stdout and stderr during the test).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let s: TestStack;
const written: string[] = [];
const originals = { out: process.stdout.write, err: process.stderr.write };

function capture(stream: NodeJS.WriteStream, original: typeof process.stdout.write) {
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
  }) as typeof process.stdout.write;
}

before(async () => {
  capture(process.stdout, originals.out);
  capture(process.stderr, originals.err);
  s = await startTestStack({ ekm: true });
});
after(async () => {
  process.stdout.write = originals.out;
  process.stderr.write = originals.err;
  await s.stop();
});

const PLAINTEXT = Buffer.from('CANARY-PLAINTEXT-q7Zk3vRw-never-in-logs');
const AAD = Buffer.from('CANARY-AAD-m4Xp9tLs-never-in-logs');
const AGENT = 'audit-test-agent/1.0';

function audits(): Array<Record<string, any>> {
  return s.logs
    .map((l) => JSON.parse(l) as Record<string, any>)
    .filter((l) => typeof l.logName === 'string' && l.logName.includes('cloudaudit.googleapis.com'));
}

/** Every form a secret could take in a log line. */
function forms(secret: Buffer): string[] {
  const out = new Set<string>();
  for (const shift of [0, 1, 2]) {
    const part = secret.subarray(shift);
    const b64 = part.toString('base64').replace(/=+$/, '');
    // Strip the last, alignment-dependent characters so the form also matches inside a longer encoding.
    out.add(b64.slice(0, b64.length - 2));
    out.add(part.toString('base64url').slice(0, b64.length - 2));
  }
  out.add(secret.toString('hex'));
  out.add(secret.toString('utf8'));
  return [...out].filter((f) => f.length >= 12);
}

test('every method writes one audit entry and nothing secret reaches any output', async () => {
  const token = await s.token(); // the owner: allowed everything, with or without IAM
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    s.call(method, path, body, { token, headers: { 'user-agent': AGENT, ...headers } });
  const parent = `/v1/projects/${s.project}/locations/us-east1`;
  const ring = `${parent}/keyRings/audit`;
  const soft = `${ring}/cryptoKeys/soft`;
  const ext = `${ring}/cryptoKeys/ext`;
  const secrets: Buffer[] = [PLAINTEXT, AAD, Buffer.from(token)];
  const expect: Array<{ method: string; status: number }> = [];
  const step = async (method: string, expected: number, res: Promise<{ status: number; json: any }>) => {
    const r = await res;
    assert.equal(r.status, expected, `${method}: ${JSON.stringify(r.json)}`);
    expect.push({ method, status: expected });
    return r.json;
  };
  const before = audits().length;

  await step('CreateKeyRing', 200, call('POST', `${parent}/keyRings?keyRingId=audit`, {}));
  await step('GetKeyRing', 200, call('GET', ring));
  await step('ListKeyRings', 200, call('GET', `${parent}/keyRings`));
  await step(
    'CreateCryptoKey',
    200,
    call('POST', `${ring}/cryptoKeys?cryptoKeyId=soft`, { purpose: 'ENCRYPT_DECRYPT' }),
  );
  await step('GetCryptoKey', 200, call('GET', soft));
  await step('ListCryptoKeys', 200, call('GET', `${ring}/cryptoKeys`));
  await step('UpdateCryptoKey', 200, call('PATCH', `${soft}?updateMask=labels`, { labels: { a: 'b' } }));
  const body = {
    plaintext: PLAINTEXT.toString('base64'),
    additionalAuthenticatedData: AAD.toString('base64'),
  };
  const enc = await step('Encrypt', 200, call('POST', `${soft}:encrypt`, body));
  secrets.push(Buffer.from(enc.ciphertext, 'base64'));
  await step(
    'Decrypt',
    200,
    call('POST', `${soft}:decrypt`, {
      ciphertext: enc.ciphertext,
      additionalAuthenticatedData: AAD.toString('base64'),
    }),
  );
  // The same in base64url, and a wrong AAD (a failed decrypt).
  await step(
    'Decrypt',
    400,
    call('POST', `${soft}:decrypt`, {
      ciphertext: Buffer.from(enc.ciphertext, 'base64').toString('base64url'),
      additionalAuthenticatedData: PLAINTEXT.toString('base64url'),
    }),
  );
  await step('CreateCryptoKeyVersion', 200, call('POST', `${soft}/cryptoKeyVersions`, {}));
  await step(
    'UpdateCryptoKeyPrimaryVersion',
    200,
    call('POST', `${soft}:updatePrimaryVersion`, { cryptoKeyVersionId: '2' }),
  );
  await step('GetCryptoKeyVersion', 200, call('GET', `${soft}/cryptoKeyVersions/1`));
  await step('ListCryptoKeyVersions', 200, call('GET', `${soft}/cryptoKeyVersions`));
  await step(
    'UpdateCryptoKeyVersion',
    200,
    call('PATCH', `${soft}/cryptoKeyVersions/1?updateMask=state`, { state: 'DISABLED' }),
  );
  await step('DestroyCryptoKeyVersion', 200, call('POST', `${soft}/cryptoKeyVersions/1:destroy`, {}));
  await step('RestoreCryptoKeyVersion', 200, call('POST', `${soft}/cryptoKeyVersions/1:restore`, {}));
  const iam = await call('GET', `${soft}:getIamPolicy`);
  expect.push({ method: 'GetIamPolicy', status: iam.status });
  // Refused: no token, a bad token, a bad argument.
  await step(
    'Encrypt',
    401,
    s.call('POST', `${soft}:encrypt`, body, { token: '', headers: { 'user-agent': AGENT } }),
  );
  const badToken = 'eyJhbGciOiJIUzI1NiJ9.CANARY-TOKEN-zq8Rw2.bm90LWEtc2lnbmF0dXJl';
  secrets.push(Buffer.from(badToken));
  await step(
    'Encrypt',
    401,
    s.call('POST', `${soft}:encrypt`, body, { token: badToken, headers: { 'user-agent': AGENT } }),
  );
  await step('Encrypt', 400, call('POST', `${soft}:encrypt`, { ...body, plaintextCrc32c: '1' }));

  // EXTERNAL: create, encrypt, decrypt, a justification refusal and an EKM refusal.
  await s.ekm!.ekm.admin.createKey('audit-ext');
  const uri = s.ekm!.keyUri('audit-ext');
  await step(
    'CreateCryptoKey',
    200,
    call('POST', `${ring}/cryptoKeys?cryptoKeyId=ext&skipInitialVersionCreation=true`, {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    }),
  );
  await step(
    'CreateCryptoKeyVersion',
    200,
    call('POST', `${ext}/cryptoKeyVersions`, { externalProtectionLevelOptions: { externalKeyUri: uri } }),
  );
  await step(
    'UpdateCryptoKeyPrimaryVersion',
    200,
    call('POST', `${ext}:updatePrimaryVersion`, { cryptoKeyVersionId: '1' }),
  );
  const extEnc = await step('Encrypt', 200, call('POST', `${ext}:encrypt`, body));
  secrets.push(Buffer.from(extEnc.ciphertext, 'base64'));
  const extDecrypt = { ciphertext: extEnc.ciphertext, additionalAuthenticatedData: AAD.toString('base64') };
  await step('Decrypt', 200, call('POST', `${ext}:decrypt`, extDecrypt));
  await step(
    'UpdateCryptoKey',
    200,
    call('PATCH', `${ext}?updateMask=keyAccessJustificationsPolicy`, {
      keyAccessJustificationsPolicy: { allowedAccessReasons: ['CUSTOMER_INITIATED_ACCESS'] },
    }),
  );
  await step(
    'Encrypt',
    400,
    call('POST', `${ext}:encrypt`, body, { 'x-openekm-access-reason': 'GOOGLE_INITIATED_REVIEW' }),
  );
  await s.ekm!.ekm.admin.setEnabled('audit-ext', false);
  await step('Decrypt', 400, call('POST', `${ext}:decrypt`, extDecrypt));

  const entries = audits().slice(before);
  assert.equal(entries.length, expect.length, JSON.stringify(entries.map((e) => e.protoPayload.methodName)));
  entries.forEach((e, i) => {
    const p = e.protoPayload;
    const want = expect[i]!;
    assert.equal(p['@type'], 'type.googleapis.com/google.cloud.audit.AuditLog');
    assert.equal(p.serviceName, 'cloudkms.googleapis.com');
    assert.ok(p.methodName.endsWith(`.${want.method}`), `${i}: ${p.methodName} is ${want.method}`);
    const write = !/^(Get|List|Encrypt|Decrypt|TestIam)/.test(want.method);
    assert.equal(
      e.logName,
      `projects/${s.project}/logs/cloudaudit.googleapis.com%2F${write ? 'activity' : 'data_access'}`,
    );
    assert.ok(p.resourceName.startsWith(`projects/${s.project}/locations/us-east1`), p.resourceName);
    assert.equal(p.requestMetadata.callerSuppliedUserAgent, AGENT);
    assert.ok(p.requestMetadata.callerIp, 'the caller IP is recorded');
    assert.match(p.metadata.latency, /^[0-9]+\.[0-9]{6}s$/);
    if (want.status === 200) {
      assert.deepEqual(p.status, {});
      assert.match(p.authenticationInfo.principalEmail, /^[^:]+@/);
      assert.equal(p.authorizationInfo.length, 1);
      assert.equal(p.authorizationInfo[0].granted, true);
      assert.match(p.authorizationInfo[0].permission, /^cloudkms\./);
    } else if (want.status === 401) {
      assert.equal(p.status.code, 16);
      assert.deepEqual(p.authenticationInfo, {});
      assert.equal(p.authorizationInfo, undefined);
    } else {
      assert.ok(p.status.code > 0 && p.status.message.length > 0, JSON.stringify(p.status));
    }
  });

  const extEntries = entries.filter((e) => e.protoPayload.resourceName === nameOf(ext));
  const [extEncrypt, extDec, , refusedReason, refusedEkm] = extEntries.slice(-5);
  assert.equal(extEncrypt!.protoPayload.metadata.cryptoKeyVersion, `${nameOf(ext)}/cryptoKeyVersions/1`);
  assert.equal(extEncrypt!.protoPayload.metadata.protectionLevel, 'EXTERNAL');
  assert.deepEqual(extEncrypt!.protoPayload.metadata.keyAccessJustification, {
    reason: 'CUSTOMER_INITIATED_ACCESS',
    policyEnforced: false,
    reasonSentToEkm: true,
  });
  assert.equal(extDec!.protoPayload.metadata.cryptoKeyVersion, `${nameOf(ext)}/cryptoKeyVersions/1`);
  assert.deepEqual(refusedReason!.protoPayload.metadata.keyAccessJustification, {
    reason: 'GOOGLE_INITIATED_REVIEW',
    policyEnforced: true,
    reasonSentToEkm: false,
  });
  assert.equal(refusedReason!.protoPayload.status.code, 9);
  assert.equal(refusedEkm!.protoPayload.metadata.ekmErrorDomain, 'EXTERNAL_PERMISSION_DENIED');
  assert.equal(refusedEkm!.protoPayload.metadata.keyAccessJustification.reasonSentToEkm, true);
  const softEncrypt = entries.find((e) => e.protoPayload.methodName.endsWith('.Encrypt'))!;
  assert.equal(softEncrypt.protoPayload.metadata.cryptoKeyVersion, `${nameOf(soft)}/cryptoKeyVersions/1`);
  assert.equal(softEncrypt.protoPayload.metadata.keyAccessJustification, undefined);

  // The scan: every secret, in every encoding, absent from everything written.
  const config = s.gateway.deps.config;
  for (const root of config.rootKeys) secrets.push(root.key);
  for (const k of config.gatewayIdentity?.keys ?? []) secrets.push(Buffer.from(String(k.d), 'base64url'));
  const everything = [...s.logs, ...s.ekmLogs, ...written].join('\n');
  assert.ok(everything.length > 1000, 'the scan covers real output');
  for (const secret of secrets) {
    for (const form of forms(secret)) {
      assert.ok(!everything.includes(form), `a secret appears in the output as ${form}`);
    }
  }
});

const nameOf = (path: string) => path.replace(/^\/v1\//, '');
