import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import {
  type Backend,
  b64,
  createIssuer,
  GATEWAY,
  type HttpResult,
  post,
  requireSoftHsm,
  skipWithoutSoftHsm,
  startTestEkm,
  type TestEkm,
  testDirs,
} from './helpers.js';

type Issuer = Awaited<ReturnType<typeof createIssuer>>;

/** Google EKM API v0 against the real server: wrap/unwrap, tokens, grants, justifications, coordinated keys. */
export function googleEkmConformance(backend: Backend): void {
  describe(`Google EKM API v0 (${backend} keys)`, { skip: skipWithoutSoftHsm(backend) }, () => {
    const dirs = testDirs(`gekm-${backend}`);
    let t: TestEkm;
    let issuer: Issuer;
    let token: string;

    before(async () => {
      requireSoftHsm(backend);
      issuer = await createIssuer(dirs.root);
      t = await startTestEkm({
        dataDir: dirs.dataDir('ekm'),
        backend,
        trustedIssuers: [issuer.trustedIssuer],
      });
      token = await issuer.sign({ email: GATEWAY, sub: '1001' }, { aud: t.ekm.httpsUrl });
      await t.ekm.admin.createKey('k1');
    });
    after(async () => {
      await t?.ekm.stop();
      dirs.cleanup();
    });

    const keyUrl = (keyId: string, verb: string) => `${t.ekm.googleEkmHttpBaseUrl}/keys/${keyId}:${verb}`;
    const context = (reason: unknown = 'CUSTOMER_INITIATED_ACCESS') => ({
      relativeResourceName: 'projects/p/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
      accessReasonContext: reason === null ? {} : { reason },
      isKeyHealthCheck: false,
    });
    const wrap = (keyId: string, body: Record<string, unknown> = {}, bearer = token) =>
      post(
        keyUrl(keyId, 'wrap'),
        { plaintext: b64('data key'), additionalContext: context(), ...body },
        { authorization: `Bearer ${bearer}` },
      );
    const unwrap = (
      keyId: string,
      wrappedBlob: unknown,
      body: Record<string, unknown> = {},
      bearer = token,
    ) =>
      post(
        keyUrl(keyId, 'unwrap'),
        { wrappedBlob, additionalContext: context(), ...body },
        { authorization: `Bearer ${bearer}` },
      );
    const expectRpc = (res: HttpResult, status: number, name: string) => {
      assert.equal(res.status, status, res.text);
      assert.equal(res.json.status, name, res.text);
      assert.equal(typeof res.json.code, 'number');
      assert.equal(typeof res.json.message, 'string');
      assert.ok(Array.isArray(res.json.details));
    };

    test('wrap then unwrap returns the plaintext; AAD binds the blob', async () => {
      const aad = b64('version=1');
      const w = await wrap('k1', { additionalAuthenticatedData: aad });
      assert.equal(w.status, 200, w.text);
      assert.deepEqual(Object.keys(w.json), ['wrappedBlob']);
      const u = await unwrap('k1', w.json.wrappedBlob, { additionalAuthenticatedData: aad });
      assert.equal(u.status, 200, u.text);
      assert.equal(Buffer.from(String(u.json.plaintext), 'base64').toString(), 'data key');
      assert.equal(u.json.allowedCacheDuration, undefined, 'no caching is allowed');
      expectRpc(
        await unwrap('k1', w.json.wrappedBlob, { additionalAuthenticatedData: b64('version=2') }),
        400,
        'INVALID_ARGUMENT',
      );
      expectRpc(await unwrap('k1', w.json.wrappedBlob), 400, 'INVALID_ARGUMENT');
      const tampered = Buffer.from(String(w.json.wrappedBlob), 'base64');
      tampered[tampered.length - 1]! ^= 1;
      expectRpc(
        await unwrap('k1', tampered.toString('base64'), { additionalAuthenticatedData: aad }),
        400,
        'INVALID_ARGUMENT',
      );
    });

    test('a blob wrapped under one key does not unwrap under another', async () => {
      await t.ekm.admin.createKey('k-other');
      const w = await wrap('k1');
      expectRpc(await unwrap('k-other', w.json.wrappedBlob), 400, 'INVALID_ARGUMENT');
    });

    test('URL-safe base64 without padding and numeric enum reasons are accepted (proto3 JSON)', async () => {
      const plaintext = Buffer.from([0xfb, 0xff, 0xfe, 0x01]);
      const w = await wrap('k1', {
        plaintext: plaintext.toString('base64url'),
        additionalContext: context(5),
      });
      assert.equal(w.status, 200, w.text);
      const u = await unwrap('k1', Buffer.from(String(w.json.wrappedBlob), 'base64').toString('base64url'));
      assert.ok(Buffer.from(String(u.json.plaintext), 'base64').equals(plaintext));
    });

    test('malformed requests are INVALID_ARGUMENT', async () => {
      expectRpc(await wrap('k1', { plaintext: '%%%' }), 400, 'INVALID_ARGUMENT');
      expectRpc(await wrap('k1', { plaintext: '' }), 400, 'INVALID_ARGUMENT');
      expectRpc(
        await post(keyUrl('k1', 'wrap'), 'not json', { authorization: `Bearer ${token}` }),
        400,
        'INVALID_ARGUMENT',
      );
      expectRpc(await wrap('k1', { keyPath: 'v0/keys/someone-else' }), 400, 'INVALID_ARGUMENT');
      assert.equal((await wrap('k1', { keyPath: 'v0/keys/k1' })).status, 200);
      expectRpc(
        await wrap('k1', { plaintext: randomBytes(64 * 1024 + 1).toString('base64') }),
        400,
        'INVALID_ARGUMENT',
      );
    });

    test('token checks: missing, expired, wrong audience, wrong issuer, bad signature, not yet valid', async () => {
      const aud = t.ekm.httpsUrl;
      const none = await post(keyUrl('k1', 'wrap'), { plaintext: b64('x') });
      expectRpc(none, 401, 'UNAUTHENTICATED');
      expectRpc(await wrap('k1', {}, 'not-a-jwt'), 401, 'UNAUTHENTICATED');
      expectRpc(
        await wrap('k1', {}, await issuer.sign({ email: GATEWAY }, { aud, expSecondsFromNow: -600 })),
        401,
        'UNAUTHENTICATED',
      );
      expectRpc(
        await wrap('k1', {}, await issuer.sign({ email: GATEWAY }, { aud: 'https://elsewhere.example' })),
        401,
        'UNAUTHENTICATED',
      );
      expectRpc(
        await wrap('k1', {}, await issuer.sign({ email: GATEWAY }, { aud, iss: 'https://evil.example' })),
        401,
        'UNAUTHENTICATED',
      );
      expectRpc(
        await wrap('k1', {}, await issuer.sign({ email: GATEWAY }, { aud, key: 'stranger' })),
        401,
        'UNAUTHENTICATED',
      );
      expectRpc(
        await wrap('k1', {}, await issuer.sign({ email: GATEWAY }, { aud, nbfSecondsFromNow: 600 })),
        401,
        'UNAUTHENTICATED',
      );
      const skewed = await issuer.sign({ email: GATEWAY }, { aud, expSecondsFromNow: -20 });
      assert.equal(
        (await wrap('k1', {}, skewed)).status,
        200,
        'a token expired seconds ago is within the allowed skew',
      );
    });

    test('the audience may be either origin of the EKM', async () => {
      const viaHttp = await issuer.sign({ email: GATEWAY }, { aud: t.ekm.httpUrl });
      assert.equal((await wrap('k1', {}, viaHttp)).status, 200);
    });

    test('an unknown principal is PERMISSION_DENIED; grant and revoke apply to the next request', async () => {
      const stranger = await issuer.sign(
        { email: 'someone@example.com', sub: '2002' },
        { aud: t.ekm.httpsUrl },
      );
      expectRpc(await wrap('k1', {}, stranger), 403, 'PERMISSION_DENIED');
      await t.ekm.admin.grant('k1', 'someone@example.com');
      assert.equal((await wrap('k1', {}, stranger)).status, 200);
      await t.ekm.admin.revoke('k1', 'someone@example.com');
      expectRpc(await wrap('k1', {}, stranger), 403, 'PERMISSION_DENIED');
      // A grant matches a verified email, never `sub`: an opaque id another issuer may give anyone.
      await t.ekm.admin.grant('k1', '2002');
      expectRpc(await wrap('k1', {}, stranger), 403, 'PERMISSION_DENIED');
      const subOnly = await issuer.sign(
        { email: 'someone@example.com', sub: GATEWAY },
        { aud: t.ekm.httpsUrl },
      );
      expectRpc(await wrap('k1', {}, subOnly), 403, 'PERMISSION_DENIED');
    });

    test('a token without a verified email is UNAUTHENTICATED, whatever its sub', async () => {
      const noEmail = await issuer.sign({ sub: GATEWAY }, { aud: t.ekm.httpsUrl });
      expectRpc(await wrap('k1', {}, noEmail), 401, 'UNAUTHENTICATED');
      const unverified = await issuer.sign(
        { email: GATEWAY, email_verified: undefined, sub: GATEWAY },
        { aud: t.ekm.httpsUrl },
      );
      expectRpc(await wrap('k1', {}, unverified), 401, 'UNAUTHENTICATED');
      const denied = await issuer.sign({ email: GATEWAY, email_verified: false }, { aud: t.ekm.httpsUrl });
      expectRpc(await wrap('k1', {}, denied), 401, 'UNAUTHENTICATED');
      const upper = await issuer.sign({ email: GATEWAY.toUpperCase() }, { aud: t.ekm.httpsUrl });
      assert.equal((await wrap('k1', {}, upper)).status, 200, 'emails compare case-insensitively');
    });

    test('new keys are granted to the default principal (the local gateway) at creation', async () => {
      await t.ekm.admin.createKey('k-fresh');
      assert.deepEqual(t.ekm.admin.showKey('k-fresh').grants, [GATEWAY, 'xks:*']);
      assert.equal((await wrap('k-fresh')).status, 200);
      await t.ekm.admin.revoke('k-fresh');
      expectRpc(await wrap('k-fresh'), 403, 'PERMISSION_DENIED');
    });

    test('justification policy: allow-list, missing and unknown reasons are separate settings', async () => {
      await t.ekm.admin.createKey('k-kaj');
      const missing = { additionalContext: context(null) };
      const unknown = { additionalContext: context('SOMETHING_NEW_FROM_GOOGLE') };
      assert.equal((await wrap('k-kaj', missing)).status, 200, 'default: any known reason, missing allowed');
      expectRpc(await wrap('k-kaj', unknown), 403, 'PERMISSION_DENIED');
      await t.ekm.admin.setJustifications('k-kaj', 'CUSTOMER_INITIATED_ACCESS', {
        allowMissing: false,
        allowUnknown: false,
      });
      assert.equal((await wrap('k-kaj')).status, 200);
      assert.equal((await wrap('k-kaj', { additionalContext: context(5) })).status, 200);
      expectRpc(
        await wrap('k-kaj', { additionalContext: context('GOOGLE_INITIATED_REVIEW') }),
        403,
        'PERMISSION_DENIED',
      );
      expectRpc(await wrap('k-kaj', missing), 403, 'PERMISSION_DENIED');
      expectRpc(await wrap('k-kaj', { additionalContext: context(0) }), 403, 'PERMISSION_DENIED');
      expectRpc(await wrap('k-kaj', unknown), 403, 'PERMISSION_DENIED');
      await t.ekm.admin.setJustifications('k-kaj', 'CUSTOMER_INITIATED_ACCESS', {
        allowMissing: true,
        allowUnknown: false,
      });
      assert.equal((await wrap('k-kaj', missing)).status, 200);
      expectRpc(await wrap('k-kaj', unknown), 403, 'PERMISSION_DENIED');
      await t.ekm.admin.setJustifications('k-kaj', 'CUSTOMER_INITIATED_ACCESS', {
        allowMissing: false,
        allowUnknown: true,
      });
      assert.equal((await wrap('k-kaj', unknown)).status, 200);
      expectRpc(await wrap('k-kaj', missing), 403, 'PERMISSION_DENIED');
      const w = await wrap('k-kaj');
      expectRpc(
        await unwrap('k-kaj', w.json.wrappedBlob, { additionalContext: context('GOOGLE_INITIATED_SERVICE') }),
        403,
        'PERMISSION_DENIED',
      );
    });

    test('disabled keys are FAILED_PRECONDITION, unknown and destroyed keys NOT_FOUND', async () => {
      await t.ekm.admin.createKey('k-life');
      const w = await wrap('k-life');
      await t.ekm.admin.setEnabled('k-life', false);
      expectRpc(await wrap('k-life'), 400, 'FAILED_PRECONDITION');
      expectRpc(await unwrap('k-life', w.json.wrappedBlob), 400, 'FAILED_PRECONDITION');
      await t.ekm.admin.setEnabled('k-life', true);
      assert.equal((await unwrap('k-life', w.json.wrappedBlob)).status, 200);
      await t.ekm.admin.destroyKey('k-life');
      expectRpc(await unwrap('k-life', w.json.wrappedBlob), 404, 'NOT_FOUND');
      expectRpc(await wrap('never-made'), 404, 'NOT_FOUND');
    });

    test('key usage applies to wrap and unwrap', async () => {
      await t.ekm.admin.createKey('k-wrap-only', ['ENCRYPT']);
      const w = await wrap('k-wrap-only');
      assert.equal(w.status, 200);
      expectRpc(await unwrap('k-wrap-only', w.json.wrappedBlob), 400, 'FAILED_PRECONDITION');
    });

    test('GET /v0/info answers to any valid token; wrong methods and paths are refused', async () => {
      const info = await fetch(`${t.ekm.googleEkmHttpBaseUrl}/info`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(info.status, 200);
      const body = (await info.json()) as Record<string, unknown>;
      assert.deepEqual(body.apiVersions, ['v0']);
      assert.equal((await fetch(keyUrl('k1', 'wrap'))).status, 405);
      expectRpc(await post(`${t.ekm.googleEkmHttpBaseUrl}/keys/k1:sign`, {}), 404, 'NOT_FOUND');
    });

    test('coordinated keys: crypto space permissions, createKey (idempotent), destroyKey', async () => {
      const space = `${t.ekm.googleEkmHttpBaseUrl}/cryptospaces/space-1`;
      const auth = { authorization: `Bearer ${token}` };
      const resource = 'projects/p/locations/us/keyRings/r/cryptoKeys/ck/cryptoKeyVersions/1';
      expectRpc(await post(`${space}:checkCryptoSpacePermissions`, {}, auth), 404, 'NOT_FOUND');
      await t.ekm.admin.createCryptoSpace('space-1', 'someone-else@example.com');
      expectRpc(await post(`${space}:checkCryptoSpacePermissions`, {}, auth), 403, 'PERMISSION_DENIED');
      expectRpc(
        await post(`${space}:createKey`, { additionalContext: { relativeResourceName: resource } }, auth),
        403,
        'PERMISSION_DENIED',
      );
      await t.ekm.admin.grant('cryptospaces/space-1');
      const check = await post(`${space}:checkCryptoSpacePermissions`, {}, auth);
      assert.equal(check.status, 200, check.text);
      assert.deepEqual(check.json.permissions, ['createKey', 'destroyKey', 'wrap', 'unwrap']);
      const created = await post(
        `${space}:createKey`,
        { additionalContext: { relativeResourceName: resource } },
        auth,
      );
      assert.equal(created.status, 200, created.text);
      const keyUri = String(created.json.keyUri);
      // The key lies inside its crypto space, so the KMS can check the answer is where it asked.
      assert.match(String(created.json.keyPath), /^v0\/cryptospaces\/space-1\/keys\/space-1-[0-9a-f]{16}$/);
      assert.equal(keyUri, `${t.ekm.httpUrl}/${created.json.keyPath}`);
      const keyId = keyUri.slice(keyUri.lastIndexOf('/') + 1);
      // Not reachable through another crypto space's path.
      await t.ekm.admin.createCryptoSpace('space-2');
      expectRpc(
        await post(
          `${t.ekm.googleEkmHttpBaseUrl}/cryptospaces/space-2/keys/${keyId}:wrap`,
          { plaintext: b64('dek'), additionalContext: context() },
          auth,
        ),
        404,
        'NOT_FOUND',
      );
      const again = await post(
        `${space}:createKey`,
        { additionalContext: { relativeResourceName: resource } },
        auth,
      );
      assert.equal(again.json.keyUri, keyUri, 'a retry for the same version returns the same key');
      const w = await post(`${keyUri}:wrap`, { plaintext: b64('dek'), additionalContext: context() }, auth);
      assert.equal(w.status, 200, w.text);
      // Another identity with a grant on the crypto space (it may create keys there) may not destroy this one:
      // only an identity granted on the key itself may.
      await t.ekm.admin.grant('cryptospaces/space-1', 'other-project@example.com');
      const other = {
        authorization: `Bearer ${await issuer.sign({ email: 'other-project@example.com' }, { aud: t.ekm.httpsUrl })}`,
      };
      expectRpc(
        await post(`${keyUri}:destroyKey`, { additionalContext: { relativeResourceName: resource } }, other),
        403,
        'PERMISSION_DENIED',
      );
      assert.equal(
        (await post(`${keyUri}:wrap`, { plaintext: b64('dek'), additionalContext: context() }, auth)).status,
        200,
        'the key survived',
      );
      const destroyed = await post(
        `${keyUri}:destroyKey`,
        { additionalContext: { relativeResourceName: resource } },
        auth,
      );
      assert.equal(destroyed.status, 200, destroyed.text);
      expectRpc(await post(`${keyUri}:unwrap`, { wrappedBlob: w.json.wrappedBlob }, auth), 404, 'NOT_FOUND');
      assert.equal((await post(`${keyUri}:destroyKey`, {}, auth)).status, 200, 'destroyKey is idempotent');
      expectRpc(await post(keyUrl('k1', 'destroyKey'), {}, auth), 400, 'FAILED_PRECONDITION');
    });

    test('HTTPS with the local CA: trusted with ca.pem, refused without it', async () => {
      const ca = readFileSync(t.ekm.caCertPath);
      const body = JSON.stringify({ plaintext: b64('over tls'), additionalContext: context() });
      const url = `${t.ekm.googleEkmBaseUrl}/keys/k1:wrap`;
      const ok = await httpsPost(
        url,
        body,
        { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ca,
      );
      assert.equal(ok.status, 200, ok.text);
      await assert.rejects(
        httpsPost(url, body, {}, undefined),
        /self[- ]signed|unable to verify|certificate/i,
      );
    });

    test('the request log has operation, key, principal, justification, outcome and latency — no secrets', async () => {
      const secret = 'plaintext-that-must-not-be-logged';
      await wrap('k1', { plaintext: b64(secret) });
      const line = await t.waitForLog(
        (e) => e.operation === 'wrap' && e.keyId === 'k1' && e.outcome === 'OK',
      );
      assert.equal(line.principal, GATEWAY);
      assert.equal(line.justification, 'CUSTOMER_INITIATED_ACCESS');
      assert.equal(line.protocol, 'google-ekm');
      assert.equal(typeof line.latencyMs, 'number');
      const denied = await t.waitForLog((e) => e.operation === 'wrap' && e.outcome === 'PERMISSION_DENIED');
      assert.equal(denied.status, 403);
      const all = t.logs.join('\n');
      assert.ok(!all.includes(secret) && !all.includes(b64(secret)) && !all.includes(token));
    });
  });

  describe(`restart persistence (${backend} keys)`, { skip: skipWithoutSoftHsm(backend) }, () => {
    const dirs = testDirs(`restart-${backend}`);
    after(() => dirs.cleanup());
    test('keys, grants and policies survive a restart; blobs wrapped before still unwrap', async () => {
      requireSoftHsm(backend);
      const issuer = await createIssuer(dirs.root);
      const dataDir = dirs.dataDir('ekm');
      const first = await startTestEkm({ dataDir, backend, trustedIssuers: [issuer.trustedIssuer] });
      await first.ekm.admin.createKey('persist');
      await first.ekm.admin.setJustifications('persist', 'CUSTOMER_INITIATED_ACCESS', {
        allowMissing: false,
        allowUnknown: false,
      });
      const token1 = await issuer.sign({ email: GATEWAY }, { aud: first.ekm.httpsUrl });
      const w = await post(
        `${first.ekm.googleEkmHttpBaseUrl}/keys/persist:wrap`,
        {
          plaintext: b64('survives'),
          additionalContext: { accessReasonContext: { reason: 'CUSTOMER_INITIATED_ACCESS' } },
        },
        { authorization: `Bearer ${token1}` },
      );
      assert.equal(w.status, 200, w.text);
      await first.ekm.stop();

      const second = await startTestEkm({ dataDir, backend, trustedIssuers: [issuer.trustedIssuer] });
      try {
        const token2 = await issuer.sign({ email: GATEWAY }, { aud: second.ekm.httpsUrl });
        const u = await post(
          `${second.ekm.googleEkmHttpBaseUrl}/keys/persist:unwrap`,
          {
            wrappedBlob: w.json.wrappedBlob,
            additionalContext: { accessReasonContext: { reason: 'CUSTOMER_INITIATED_ACCESS' } },
          },
          { authorization: `Bearer ${token2}` },
        );
        assert.equal(u.status, 200, u.text);
        assert.equal(Buffer.from(String(u.json.plaintext), 'base64').toString(), 'survives');
        const refused = await post(
          `${second.ekm.googleEkmHttpBaseUrl}/keys/persist:unwrap`,
          { wrappedBlob: w.json.wrappedBlob },
          { authorization: `Bearer ${token2}` },
        );
        assert.equal(refused.status, 403, 'the justification policy survived too');
        await assert.rejects(
          startTestEkm({ dataDir, backend: backend === 'software' ? 'softhsm' : 'software' }),
          /holds .* keys/,
        );
      } finally {
        await second.ekm.stop();
      }
    });
  });
}

function httpsPost(
  url: string,
  body: string,
  headers: Record<string, string>,
  ca: Buffer | undefined,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', headers, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
