import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { XksCredential } from '@openekm/reference-ekm/state/types';
import { gcmAad } from '@openekm/reference-ekm/xks/aad';
import {
  type Backend,
  b64,
  type HttpResult,
  requestMetadata,
  requireSoftHsm,
  skipWithoutSoftHsm,
  startTestEkm,
  type TestEkm,
  testDirs,
  xksPost,
} from './helpers.js';

const AAD = b64('project=nile,department=marketing');

/**
 * The AWS XKS proxy API v1 conformance suite: what the public XKS test client checks, plus what it
 * leaves out (status codes, 405, throttling, disabled keys, ciphertextMetadata, 16-byte IVs, clock
 * skew, two credentials, unknown kmsOperation). Runs against the real server over HTTP.
 */
export function xksConformance(backend: Backend): void {
  describe(`XKS proxy API v1 (${backend} keys)`, { skip: skipWithoutSoftHsm(backend) }, () => {
    const dirs = testDirs(`xks-${backend}`);
    let t: TestEkm;
    let cred: XksCredential;
    let cred2: XksCredential;
    let base: string;

    before(async () => {
      requireSoftHsm(backend);
      t = await startTestEkm({ dataDir: dirs.dataDir('ekm'), backend });
      cred = await t.ekm.admin.createXksCredential('tenant-a/xks');
      cred2 = await t.ekm.admin.createXksCredential('tenant-a/xks');
      await t.ekm.admin.createKey('k-both');
      await t.ekm.admin.createKey('k-enc', ['ENCRYPT']);
      await t.ekm.admin.createKey('k-dec', ['DECRYPT']);
      await t.ekm.admin.createKey('k-none', []);
      base = t.ekm.xksBaseUrl('tenant-a/xks');
    });
    after(async () => {
      await t?.ekm.stop();
      dirs.cleanup();
    });

    const call = (path: string, body: unknown, c: XksCredential = cred, options = {}) =>
      xksPost(`${base}${path}`, body, c, options);
    const encrypt = (keyId: string, extra: Record<string, unknown> = {}) =>
      call(`/keys/${keyId}/encrypt`, {
        requestMetadata: requestMetadata('Encrypt'),
        plaintext: b64('Hello World!'),
        encryptionAlgorithm: 'AES_GCM',
        additionalAuthenticatedData: AAD,
        ...extra,
      });
    const decryptOf = (keyId: string, enc: HttpResult, extra: Record<string, unknown> = {}) =>
      call(`/keys/${keyId}/decrypt`, {
        requestMetadata: requestMetadata('Decrypt'),
        ciphertext: enc.json.ciphertext,
        ciphertextMetadata: enc.json.ciphertextMetadata,
        initializationVector: enc.json.initializationVector,
        authenticationTag: enc.json.authenticationTag,
        encryptionAlgorithm: 'AES_GCM',
        additionalAuthenticatedData: AAD,
        ...extra,
      });
    const expectError = (res: HttpResult, status: number, errorName: string) => {
      assert.equal(res.status, status, res.text);
      assert.equal(res.json.errorName, errorName, res.text);
      assert.ok(!res.text.includes('\n'), 'error bodies are single-line JSON');
      const message = String(res.json.errorMessage ?? '');
      assert.ok(
        message.length < 512 && /^[\x20-\x7e]*$/.test(message),
        'errorMessage is short printable ASCII',
      );
    };

    test('health answers with the fleet details from a deep check', async () => {
      const res = await call('/health', {
        requestMetadata: { kmsRequestId: 'r1', kmsOperation: 'KmsHealthCheck' },
      });
      assert.equal(res.status, 200, res.text);
      assert.ok(!res.text.includes('\n'));
      assert.ok(Number(res.json.xksProxyFleetSize) > 0);
      for (const field of ['xksProxyVendor', 'xksProxyModel', 'ekmVendor'])
        assert.equal(typeof res.json[field], 'string');
      const fleet = res.json.ekmFleetDetails as Array<Record<string, string>>;
      assert.ok(fleet.length >= 1 && fleet.length <= 10);
      assert.equal(fleet[0]!.healthStatus, 'ACTIVE');
    });

    test('health without or with empty requestMetadata is a ValidationException', async () => {
      expectError(await call('/health', {}), 400, 'ValidationException');
      expectError(await call('/health', { requestMetadata: {} }), 400, 'ValidationException');
    });

    test('GET on an operation is 405; unknown prefixes and paths are InvalidUriPathException', async () => {
      const get = await xksPost(`${base}/health`, '', cred, { method: 'GET' });
      assert.equal(get.status, 405);
      assert.equal(get.headers.get('allow'), 'POST');
      assert.equal((await xksPost(`${base}/keys/k-both/encrypt`, '', cred, { method: 'GET' })).status, 405);
      const unknownPrefix = await fetch(`${t.ekm.xksBaseUrl('tenant-z')}/health`, {
        method: 'POST',
        body: '{}',
      });
      expectError(
        { status: unknownPrefix.status, ...(await parse(unknownPrefix)) },
        404,
        'InvalidUriPathException',
      );
      expectError(
        await call('/keys/k-both/sign', { requestMetadata: requestMetadata() }),
        404,
        'InvalidUriPathException',
      );
    });

    test('wrong credentials, wrong secret, another prefix and a tampered body fail authentication', async () => {
      const body = { requestMetadata: { kmsRequestId: 'r', kmsOperation: 'KmsHealthCheck' } };
      expectError(
        await call('/health', body, { ...cred, accessKeyId: 'OEKMAAAAAAAAAAAAAAAA' } as XksCredential),
        401,
        'AuthenticationFailedException',
      );
      expectError(
        await call('/health', body, { ...cred, secretAccessKey: `${cred.secretAccessKey.slice(0, -2)}AA` }),
        401,
        'AuthenticationFailedException',
      );
      const other = await t.ekm.admin.createXksCredential('tenant-b');
      expectError(await call('/health', body, other), 401, 'AuthenticationFailedException');
      expectError(
        await call('/health', body, cred, {
          tamper: (b: string) => b.replace('KmsHealthCheck', 'KmsHealthCheckX'),
        }),
        401,
        'AuthenticationFailedException',
      );
      const unsigned = await fetch(`${base}/health`, { method: 'POST', body: JSON.stringify(body) });
      assert.equal(unsigned.status, 401);
    });

    test('two live credentials per prefix; revoking one leaves the other working', async () => {
      const body = { requestMetadata: { kmsRequestId: 'r', kmsOperation: 'KmsHealthCheck' } };
      assert.equal((await call('/health', body, cred)).status, 200);
      assert.equal((await call('/health', body, cred2)).status, 200);
      await t.ekm.admin.revokeXksCredential(cred2.accessKeyId);
      expectError(await call('/health', body, cred2), 401, 'AuthenticationFailedException');
      assert.equal((await call('/health', body, cred)).status, 200);
    });

    test('a signature scoped to another region is refused', async () => {
      const body = { requestMetadata: { kmsRequestId: 'r', kmsOperation: 'KmsHealthCheck' } };
      expectError(
        await call('/health', body, cred, { region: 'eu-west-1' }),
        401,
        'AuthenticationFailedException',
      );
      assert.equal((await call('/health', body, cred, { region: 'us-east-1' })).status, 200);
    });

    test('a signature more than 5 minutes off is refused; within the skew it is accepted', async () => {
      const body = { requestMetadata: { kmsRequestId: 'r', kmsOperation: 'KmsHealthCheck' } };
      const at = (minutes: number) => new Date(Date.now() + minutes * 60_000);
      expectError(
        await call('/health', body, cred, { signingDate: at(-6) }),
        401,
        'AuthenticationFailedException',
      );
      expectError(
        await call('/health', body, cred, { signingDate: at(6) }),
        401,
        'AuthenticationFailedException',
      );
      assert.equal((await call('/health', body, cred, { signingDate: at(-4) })).status, 200);
    });

    test('metadata reports AES_256, the usage and the status', async () => {
      const res = await call('/keys/k-enc/metadata', { requestMetadata: requestMetadata('DescribeKey') });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { keySpec: 'AES_256', keyUsage: ['ENCRYPT'], keyStatus: 'ENABLED' });
      const none = await call('/keys/k-none/metadata', { requestMetadata: requestMetadata('DescribeKey') });
      assert.deepEqual(none.json.keyUsage, []);
    });

    test('metadata validation: missing fields, unknown keys; an unknown kmsOperation is accepted', async () => {
      const { awsPrincipalArn: _, ...noPrincipal } = requestMetadata('DescribeKey');
      expectError(
        await call('/keys/k-both/metadata', { requestMetadata: noPrincipal }),
        400,
        'ValidationException',
      );
      expectError(await call('/keys/k-both/metadata', {}), 400, 'ValidationException');
      expectError(await call('/keys/k-both/metadata', 'not json'), 400, 'ValidationException');
      expectError(
        await call('/keys/nope/metadata', { requestMetadata: requestMetadata() }),
        404,
        'KeyNotFoundException',
      );
      const future = await call('/keys/k-both/metadata', {
        requestMetadata: requestMetadata('BulkDescribeKeyFromTheFuture'),
      });
      assert.equal(future.status, 200);
    });

    test('encrypt then decrypt returns the plaintext; the ciphertext has the plaintext length', async () => {
      const enc = await encrypt('k-both');
      assert.equal(enc.status, 200, enc.text);
      assert.equal(Buffer.from(String(enc.json.ciphertext), 'base64').length, 'Hello World!'.length);
      assert.equal(Buffer.from(String(enc.json.initializationVector), 'base64').length, 12);
      assert.equal(Buffer.from(String(enc.json.authenticationTag), 'base64').length, 16);
      assert.ok(Buffer.from(String(enc.json.ciphertextMetadata), 'base64').length <= 20);
      const dec = await decryptOf('k-both', enc);
      assert.equal(dec.status, 200, dec.text);
      assert.equal(Buffer.from(String(dec.json.plaintext), 'base64').toString(), 'Hello World!');
      const again = await encrypt('k-both');
      assert.notEqual(
        again.json.initializationVector,
        enc.json.initializationVector,
        'a fresh IV per encryption',
      );
    });

    test('an unknown kmsOperation is accepted on encrypt', async () => {
      const res = await encrypt('k-both', { requestMetadata: requestMetadata('ReEncryptFromTheFuture') });
      assert.equal(res.status, 200, res.text);
    });

    test('AAD mismatch, missing AAD and tampered ciphertext, tag or IV are InvalidCiphertextException', async () => {
      const enc = await encrypt('k-both');
      expectError(
        await decryptOf('k-both', enc, { additionalAuthenticatedData: b64('project=amazon') }),
        400,
        'InvalidCiphertextException',
      );
      expectError(
        await decryptOf('k-both', enc, { additionalAuthenticatedData: undefined }),
        400,
        'InvalidCiphertextException',
      );
      const flip = (field: string) => {
        const bytes = Buffer.from(String(enc.json[field]), 'base64');
        bytes[0]! ^= 1;
        return bytes.toString('base64');
      };
      for (const field of ['ciphertext', 'authenticationTag', 'initializationVector']) {
        expectError(
          await decryptOf('k-both', enc, { [field]: flip(field) }),
          400,
          'InvalidCiphertextException',
        );
      }
    });

    test('changed, missing or oversized ciphertextMetadata is detected', async () => {
      const enc = await encrypt('k-both');
      expectError(
        await decryptOf('k-both', enc, { ciphertextMetadata: b64('oekm-aad-v2') }),
        400,
        'InvalidCiphertextException',
      );
      expectError(
        await decryptOf('k-both', enc, { ciphertextMetadata: undefined }),
        400,
        'InvalidCiphertextException',
      );
      // metadata moved into the AAD (the spec's length-prefix example) must not decrypt either
      const moved = await decryptOf('k-both', enc, {
        ciphertextMetadata: undefined,
        additionalAuthenticatedData: Buffer.concat([
          Buffer.from(AAD, 'base64'),
          Buffer.from(String(enc.json.ciphertextMetadata), 'base64'),
        ]).toString('base64'),
      });
      expectError(moved, 400, 'InvalidCiphertextException');
      expectError(
        await decryptOf('k-both', enc, { ciphertextMetadata: b64('x'.repeat(21)) }),
        400,
        'ValidationException',
      );
    });

    test('a 4096-byte plaintext with an 8192-byte AAD round-trips', async () => {
      const plaintext = randomBytes(4096);
      const aad = randomBytes(8192).toString('base64');
      const enc = await encrypt('k-both', {
        plaintext: plaintext.toString('base64'),
        additionalAuthenticatedData: aad,
      });
      assert.equal(enc.status, 200, enc.text);
      const dec = await decryptOf('k-both', enc, { additionalAuthenticatedData: aad });
      assert.equal(dec.status, 200, dec.text);
      assert.ok(Buffer.from(String(dec.json.plaintext), 'base64').equals(plaintext));
      const big = await encrypt('k-both', { plaintext: randomBytes(4300).toString('base64') });
      assert.equal(big.status, 200, 'at least 4300 bytes of plaintext are accepted');
    });

    test('CDIV is SHA-256 over aad, metadata, iv, ciphertext and tag', async () => {
      const enc = await encrypt('k-both', { ciphertextDataIntegrityValueAlgorithm: 'SHA_256' });
      assert.equal(enc.status, 200, enc.text);
      const { createHash } = await import('node:crypto');
      const expected = createHash('sha256')
        .update(Buffer.from(AAD, 'base64'))
        .update(Buffer.from(String(enc.json.ciphertextMetadata), 'base64'))
        .update(Buffer.from(String(enc.json.initializationVector), 'base64'))
        .update(Buffer.from(String(enc.json.ciphertext), 'base64'))
        .update(Buffer.from(String(enc.json.authenticationTag), 'base64'))
        .digest('base64');
      assert.equal(enc.json.ciphertextDataIntegrityValue, expected);
      assert.equal((await encrypt('k-both')).json.ciphertextDataIntegrityValue, undefined, 'only when asked');
      expectError(
        await encrypt('k-both', { ciphertextDataIntegrityValueAlgorithm: 'MD5' }),
        400,
        'ValidationException',
      );
    });

    test('key usage: encrypt-only, decrypt-only and no-usage keys; CDIV needs DECRYPT too', async () => {
      assert.equal((await encrypt('k-enc')).status, 200);
      expectError(
        await encrypt('k-enc', { ciphertextDataIntegrityValueAlgorithm: 'SHA_256' }),
        400,
        'InvalidKeyUsageException',
      );
      const enc = await encrypt('k-both');
      expectError(await decryptOf('k-enc', enc), 400, 'InvalidKeyUsageException');
      expectError(await encrypt('k-dec'), 400, 'InvalidKeyUsageException');
      expectError(await decryptOf('k-dec', enc), 400, 'InvalidCiphertextException');
      expectError(await encrypt('k-none'), 400, 'InvalidKeyUsageException');
      expectError(await decryptOf('k-none', enc), 400, 'InvalidKeyUsageException');
    });

    test('a disabled key is InvalidStateException until enabled again; a destroyed key is not found', async () => {
      await t.ekm.admin.createKey('k-state');
      const enc = await encrypt('k-state');
      await t.ekm.admin.setEnabled('k-state', false);
      expectError(await encrypt('k-state'), 400, 'InvalidStateException');
      expectError(await decryptOf('k-state', enc), 400, 'InvalidStateException');
      const meta = await call('/keys/k-state/metadata', { requestMetadata: requestMetadata() });
      assert.equal(meta.json.keyStatus, 'DISABLED');
      await t.ekm.admin.setEnabled('k-state', true);
      assert.equal((await decryptOf('k-state', enc)).status, 200);
      await t.ekm.admin.destroyKey('k-state');
      expectError(await encrypt('k-state'), 404, 'KeyNotFoundException');
    });

    test('IVs of 12 and 16 bytes are accepted input; other lengths and bad base64 are ValidationException', async () => {
      const enc = await encrypt('k-both');
      expectError(
        await decryptOf('k-both', enc, { initializationVector: randomBytes(16).toString('base64') }),
        400,
        'InvalidCiphertextException',
      );
      expectError(
        await decryptOf('k-both', enc, { initializationVector: randomBytes(8).toString('base64') }),
        400,
        'ValidationException',
      );
      expectError(
        await decryptOf('k-both', enc, { authenticationTag: randomBytes(12).toString('base64') }),
        400,
        'ValidationException',
      );
      expectError(await decryptOf('k-both', enc, { ciphertext: '***' }), 400, 'ValidationException');
      expectError(await encrypt('k-both', { encryptionAlgorithm: 'AES_CBC' }), 400, 'ValidationException');
      expectError(await encrypt('k-both', { plaintext: undefined }), 400, 'ValidationException');
    });

    test('a decrypt with a 16-byte IV succeeds when the ciphertext was made with it', async () => {
      const key = t.ekm.admin.showKey('k-both');
      const iv = randomBytes(16);
      const metadata = Buffer.from('oekm-aad-v1');
      // Made through the test-mode admin seam: the server's own key store, with an explicit 16-byte IV.
      const sealed = await t.ekm.admin.encryptWithIvForTest(
        key.keyId,
        Buffer.from('sixteen'),
        gcmAad(Buffer.from(AAD, 'base64'), metadata),
        iv,
      );
      const dec = await call('/keys/k-both/decrypt', {
        requestMetadata: requestMetadata('Decrypt'),
        ciphertext: sealed.ciphertext.toString('base64'),
        ciphertextMetadata: metadata.toString('base64'),
        initializationVector: iv.toString('base64'),
        authenticationTag: sealed.tag.toString('base64'),
        encryptionAlgorithm: 'AES_GCM',
        additionalAuthenticatedData: AAD,
      });
      assert.equal(dec.status, 200, dec.text);
      assert.equal(Buffer.from(String(dec.json.plaintext), 'base64').toString(), 'sixteen');
    });

    test('secondary authorization: a key not granted to the prefix is AccessDeniedException', async () => {
      await t.ekm.admin.createKey('k-tenant');
      await t.ekm.admin.revoke('k-tenant', 'xks:*');
      expectError(await encrypt('k-tenant'), 403, 'AccessDeniedException');
      await t.ekm.admin.grant('k-tenant', 'xks:tenant-a/xks');
      assert.equal((await encrypt('k-tenant')).status, 200);
    });

    test('injected status faults come back with the matching XKS error name', async () => {
      await t.ekm.admin.setFault({ target: 'k-both', kind: 'status', value: 503, rate: 1 });
      expectError(await encrypt('k-both'), 503, 'DependencyTimeoutException');
      await t.ekm.admin.setFault({ target: 'k-both', kind: 'status', value: 429, rate: 1 });
      expectError(await encrypt('k-both'), 429, 'ThrottlingException');
      await t.ekm.admin.clearFaults();
      assert.equal((await encrypt('k-both')).status, 200);
    });

    test('the request log names operation, key, request id and outcome, never plaintext', async () => {
      const secret = 'do-not-log-this-plaintext';
      const res = await encrypt('k-both', { plaintext: b64(secret) });
      assert.equal(res.status, 200);
      const line = await t.waitForLog(
        (e) => e.operation === 'encrypt' && e.keyId === 'k-both' && e.outcome === 'OK',
      );
      assert.equal(line.kmsRequestId, requestMetadata().kmsRequestId);
      assert.equal(line.principal, 'xks:tenant-a/xks');
      assert.equal(typeof line.latencyMs, 'number');
      const all = t.logs.join('\n');
      assert.ok(!all.includes(b64(secret)) && !all.includes(secret));
      assert.ok(!all.includes(cred.secretAccessKey));
    });
  });

  describe(`XKS throttling (${backend} keys)`, { skip: skipWithoutSoftHsm(backend) }, () => {
    const dirs = testDirs(`xks-throttle-${backend}`);
    let t: TestEkm;
    after(async () => {
      await t?.ekm.stop();
      dirs.cleanup();
    });
    test('beyond the per-prefix rate the proxy answers ThrottlingException (429)', async () => {
      requireSoftHsm(backend);
      t = await startTestEkm({ dataDir: dirs.dataDir('ekm'), backend, rateLimit: 2 });
      const cred = await t.ekm.admin.createXksCredential('throttled');
      const statuses: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        const res = await xksPost(
          `${t.ekm.xksBaseUrl('throttled')}/health`,
          { requestMetadata: { kmsRequestId: `r${i}`, kmsOperation: 'KmsHealthCheck' } },
          cred,
        );
        statuses.push(res.status);
        if (res.status === 429) assert.equal(res.json.errorName, 'ThrottlingException');
      }
      assert.ok(statuses.includes(200) && statuses.includes(429), `statuses: ${statuses.join(',')}`);
    });
  });
}

async function parse(
  response: Response,
): Promise<{ text: string; json: Record<string, unknown>; headers: Headers }> {
  const text = await response.text();
  return { text, json: JSON.parse(text) as Record<string, unknown>, headers: response.headers };
}
