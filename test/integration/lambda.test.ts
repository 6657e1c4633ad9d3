/**
 * The AWS Lambda handlers exported by functions/index.ts (serverless-http around each function's
 * functions-framework pipeline), driven with API Gateway v2 (HTTP API, payload format 2.0) events, end to end
 * against the real Firestore emulator. The Gateway behind them is the test stack's (functions/platform.ts).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { decryptLambda, encryptLambda, healthCheckLambda, keyAdminLambda } from '../../functions/index.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

type Handler = typeof keyAdminLambda;
interface LambdaResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: boolean;
}

let s: TestStack;
let token: string;
let loc: string;

before(async () => {
  s = await startTestStack();
  token = await s.token();
  loc = `/v1/projects/${s.project}/locations/eu-west1`;
});
after(() => s.stop());

let requestCounter = 0;

/** An API Gateway HTTP API (payload 2.0) event, as Lambda receives it. */
function httpApiEvent(
  method: string,
  rawPath: string,
  opts: {
    query?: string;
    body?: string;
    base64?: boolean;
    headers?: Record<string, string>;
    auth?: boolean;
  } = {},
): Record<string, unknown> {
  const headers: Record<string, string> = {
    accept: 'application/json',
    'user-agent': 'lambda-test',
    host: 'abc123.execute-api.eu-west-1.amazonaws.com',
    ...opts.headers,
  };
  if (opts.auth !== false) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
  const requestId = `req-${++requestCounter}`;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: opts.query ?? '',
    headers,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'lambda-test' },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    body:
      opts.body === undefined
        ? undefined
        : opts.base64
          ? Buffer.from(opts.body).toString('base64')
          : opts.body,
    isBase64Encoded: opts.base64 ?? false,
  };
}

const lambdaContext = {
  functionName: 'openekm',
  awsRequestId: 'lambda-req',
  getRemainingTimeInMillis: () => 30_000,
  callbackWaitsForEmptyEventLoop: true,
};

async function invoke(
  handler: Handler,
  event: Record<string, unknown>,
): Promise<
  LambdaResult & { json: { [k: string]: unknown; error?: { code: number; status: string; message: string } } }
> {
  const out = (await handler(event, lambdaContext)) as LambdaResult;
  assert.equal(typeof out.statusCode, 'number', JSON.stringify(out));
  const text = out.isBase64Encoded ? Buffer.from(out.body, 'base64').toString('utf8') : out.body;
  return { ...out, json: JSON.parse(text) };
}

test('key admin, encrypt, decrypt and health through the four Lambda handlers', async () => {
  const ring = await invoke(
    keyAdminLambda,
    httpApiEvent('POST', `${loc}/keyRings`, { query: 'keyRingId=lambda', body: '{}' }),
  );
  assert.equal(ring.statusCode, 200, JSON.stringify(ring.json));
  assert.equal(ring.json.name, `${loc.slice(4)}/keyRings/lambda`);
  assert.match(ring.headers['content-type'] ?? '', /^application\/json/);

  const keyPath = `${loc}/keyRings/lambda/cryptoKeys/k`;
  const key = await invoke(
    keyAdminLambda,
    httpApiEvent('POST', `${loc}/keyRings/lambda/cryptoKeys`, {
      query: 'cryptoKeyId=k&alt=json',
      body: '{"purpose":"ENCRYPT_DECRYPT"}',
    }),
  );
  assert.equal(key.statusCode, 200, JSON.stringify(key.json));
  assert.equal((key.json.primary as { state: string }).state, 'ENABLED');

  const plaintext = Buffer.from('from a lambda');
  const enc = await invoke(
    encryptLambda,
    httpApiEvent('POST', `${keyPath}:encrypt`, {
      body: JSON.stringify({
        plaintext: plaintext.toString('base64'),
        plaintextCrc32c: String(crc32c(plaintext) >>> 0),
      }),
    }),
  );
  assert.equal(enc.statusCode, 200, JSON.stringify(enc.json));
  assert.equal(enc.json.name, `${keyPath.slice(4)}/cryptoKeyVersions/1`);
  assert.equal(enc.json.verifiedPlaintextCrc32c, true);
  const ct = Buffer.from(enc.json.ciphertext as string, 'base64');
  assert.equal(enc.json.ciphertextCrc32c, String(crc32c(ct) >>> 0));

  const dec = await invoke(
    decryptLambda,
    httpApiEvent('POST', `${keyPath}:decrypt`, { body: JSON.stringify({ ciphertext: enc.json.ciphertext }) }),
  );
  assert.equal(dec.statusCode, 200, JSON.stringify(dec.json));
  assert.equal(Buffer.from(dec.json.plaintext as string, 'base64').toString(), 'from a lambda');

  const got = await invoke(
    keyAdminLambda,
    httpApiEvent('GET', keyPath, { query: '$alt=json%3Benum-encoding=int' }),
  );
  assert.equal(got.statusCode, 200, JSON.stringify(got.json));
  assert.equal(got.json.purpose, 1);

  const health = await invoke(healthCheckLambda, httpApiEvent('GET', '/health', { auth: false }));
  assert.equal(health.statusCode, 200, JSON.stringify(health.json));
  assert.equal(health.json.status, 'SERVING');
  const ready = await invoke(healthCheckLambda, httpApiEvent('GET', '/health/ready', { auth: false }));
  assert.equal(ready.statusCode, 200, JSON.stringify(ready.json));
  assert.equal(ready.json.firestore, 'reachable');
});

test('a base64-encoded body event (isBase64Encoded: true)', async () => {
  assert.equal(
    (
      await invoke(
        keyAdminLambda,
        httpApiEvent('POST', `${loc}/keyRings`, { query: 'keyRingId=b64', body: '{}', base64: true }),
      )
    ).statusCode,
    200,
  );
  const key = await invoke(
    keyAdminLambda,
    httpApiEvent('POST', `${loc}/keyRings/b64/cryptoKeys`, {
      query: 'cryptoKeyId=k&skipInitialVersionCreation=True',
      body: '{"purpose":1,"versionTemplate":{"protectionLevel":"SOFTWARE"}}',
      base64: true,
    }),
  );
  assert.equal(key.statusCode, 200, JSON.stringify(key.json));
  assert.equal(key.json.primary, undefined);
  const keyPath = `${loc}/keyRings/b64/cryptoKeys/k`;
  assert.equal(
    (
      await invoke(
        keyAdminLambda,
        httpApiEvent('POST', `${keyPath}/cryptoKeyVersions`, { body: '""', base64: true }),
      )
    ).statusCode,
    200,
  );
  const prim = await invoke(
    keyAdminLambda,
    httpApiEvent('POST', `${keyPath}:updatePrimaryVersion`, {
      body: '{"cryptoKeyVersionId":"1"}',
      base64: true,
    }),
  );
  assert.equal(prim.statusCode, 200, JSON.stringify(prim.json));
  const aad = Buffer.from('lambda aad').toString('base64');
  const enc = await invoke(
    encryptLambda,
    httpApiEvent('POST', `${keyPath}:encrypt`, {
      body: JSON.stringify({ plaintext: 'AAEC', additionalAuthenticatedData: aad }),
      base64: true,
    }),
  );
  assert.equal(enc.statusCode, 200, JSON.stringify(enc.json));
  const dec = await invoke(
    decryptLambda,
    httpApiEvent('POST', `${keyPath}:decrypt`, {
      body: JSON.stringify({ ciphertext: enc.json.ciphertext, additionalAuthenticatedData: aad }),
      base64: true,
    }),
  );
  assert.equal(dec.statusCode, 200, JSON.stringify(dec.json));
  assert.equal(dec.json.plaintext, 'AAEC');
  assert.equal(dec.json.usedPrimary, true);
});

test("each Lambda refuses the other functions' routes, bad JSON and missing tokens with the JSON envelope", async () => {
  const cases: [Handler, Record<string, unknown>, number, string, RegExp][] = [
    [
      encryptLambda,
      httpApiEvent('GET', `${loc}/keyRings`),
      404,
      'NOT_FOUND',
      /This is the encrypt function; .* served by the keyAdmin function/,
    ],
    [
      keyAdminLambda,
      httpApiEvent('POST', `${loc}/keyRings/lambda/cryptoKeys/k:encrypt`, { body: '{}' }),
      404,
      'NOT_FOUND',
      /served by the encrypt function/,
    ],
    [
      decryptLambda,
      httpApiEvent('POST', `${loc}/keyRings/lambda/cryptoKeys/k:encrypt`, { body: '{}' }),
      404,
      'NOT_FOUND',
      /served by the encrypt function/,
    ],
    [
      healthCheckLambda,
      httpApiEvent('GET', `${loc}/keyRings`),
      404,
      'NOT_FOUND',
      /served by the keyAdmin function/,
    ],
    [keyAdminLambda, httpApiEvent('GET', '/nowhere'), 404, 'NOT_FOUND', /is not part of this API/],
    [
      encryptLambda,
      httpApiEvent('POST', `${loc}/keyRings/lambda/cryptoKeys/k:encrypt`, { body: '{"plaintext": ' }),
      400,
      'INVALID_ARGUMENT',
      /Invalid JSON payload/,
    ],
    [
      encryptLambda,
      httpApiEvent('POST', `${loc}/keyRings/lambda/cryptoKeys/k:encrypt`, {
        body: '{"plaintext": ',
        base64: true,
      }),
      400,
      'INVALID_ARGUMENT',
      /Invalid JSON payload/,
    ],
    [
      encryptLambda,
      httpApiEvent('POST', `${loc}/keyRings/lambda/cryptoKeys/k:encrypt`, { body: '{}', auth: false }),
      401,
      'UNAUTHENTICATED',
      /missing required authentication credential/,
    ],
  ];
  for (const [handler, event, status, code, message] of cases) {
    const r = await invoke(handler, event);
    assert.equal(
      r.statusCode,
      status,
      `${(event.requestContext as { http: { path: string } }).http.path}: ${JSON.stringify(r.json)}`,
    );
    assert.equal(r.json.error?.status, code);
    assert.equal(r.json.error?.code, status);
    assert.match(r.json.error?.message ?? '', message);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/);
  }
});
