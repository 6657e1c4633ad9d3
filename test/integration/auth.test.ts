/**
 * Caller identity through the one base URL: every way a Bearer token can be wrong answers 401 UNAUTHENTICATED in
 * the google.rpc envelope with its own message; local principals (`npm run --silent token -- user:…`) are
 * accepted and logged by principal; no token, plaintext or AAD ever reaches a log line.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { generateKeyPair, importJWK, type JWK, type JWTPayload, SignJWT } from 'jose';
import { LOCAL_AUDIENCE, LOCAL_ISSUER, LOCAL_OWNER, mintLocalToken } from '../../scripts/lib/local-state.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

type Reply = Awaited<ReturnType<TestStack['call']>>;

let s: TestStack;
let key: string;
let issuerJwk: JWK;
/** Every token and every secret payload this file sends; none may appear in a log line. */
const secrets: string[] = [];

before(async () => {
  // These tests are about authentication: the principals they use own every project (IAM: iam.test.ts).
  s = await startTestStack({
    env: {
      OPENEKM_DEFAULT_OWNERS: JSON.stringify([
        LOCAL_OWNER,
        'user:alice@example.com',
        'user:bob@example.com',
        'serviceAccount:builder@my-project.iam.gserviceaccount.com',
      ]),
    },
  });
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  assert.equal((await s.call('POST', `${loc}/keyRings?keyRingId=auth`, {})).status, 200);
  key = `${loc}/keyRings/auth/cryptoKeys/k`;
  assert.equal(
    (await s.call('POST', `${loc}/keyRings/auth/cryptoKeys?cryptoKeyId=k`, { purpose: 'ENCRYPT_DECRYPT' }))
      .status,
    200,
  );
  issuerJwk = JSON.parse(readFileSync(join(s.stateDir, 'issuer-private.jwk.json'), 'utf8')) as JWK;
});
after(() => s.stop());

/** A token signed like the local issuer's, with claims and header overridable. */
async function craft(
  opts: {
    claims?: JWTPayload;
    iss?: string;
    aud?: string;
    exp?: number | string;
    kid?: string;
    key?: webcrypto.CryptoKey;
  } = {},
): Promise<string> {
  const key = opts.key ?? ((await importJWK(issuerJwk, 'ES256')) as webcrypto.CryptoKey);
  const jwt = new SignJWT({ email: 'mallory@example.com', email_verified: true, ...opts.claims })
    .setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? issuerJwk.kid!, typ: 'JWT' })
    .setIssuer(opts.iss ?? LOCAL_ISSUER)
    .setAudience(opts.aud ?? LOCAL_AUDIENCE)
    .setSubject('mallory@example.com')
    .setIssuedAt();
  if (opts.exp !== undefined) jwt.setExpirationTime(opts.exp);
  const token = await jwt.sign(key);
  secrets.push(token);
  return token;
}

async function withAuth(authorization: string | undefined): Promise<Reply> {
  return s.call('GET', key, undefined, {
    token: '',
    headers: authorization === undefined ? {} : { authorization },
  });
}

function assert401(r: Reply, message: RegExp): string {
  assert.equal(r.status, 401, JSON.stringify(r.json));
  assert.equal(r.json.error.code, 401);
  assert.equal(r.json.error.status, 'UNAUTHENTICATED');
  assert.match(r.json.error.message, message);
  assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
  return r.json.error.message;
}

test('every kind of bad credential gets 401 UNAUTHENTICATED with its own helpful message', async () => {
  const other = await generateKeyPair('ES256');
  const cases: [string, string | undefined, RegExp][] = [
    [
      'missing header',
      undefined,
      /missing required authentication credential.*Authorization: Bearer <token>.*npm run --silent token/,
    ],
    ['empty header', '', /missing required authentication credential/],
    ['not Bearer', 'Basic dXNlcjpwYXNz', /must be "Bearer <JWT>"/],
    ['Bearer without a token', 'Bearer', /must be "Bearer <JWT>"/],
    ['garbage token', 'Bearer garbage', /is not a JWT/],
    ['three garbage segments', 'Bearer a.b.c', /is not a JWT/],
    ['expired', `Bearer ${await craft({ exp: '-5 minutes' })}`, /has expired; get a new one/],
    [
      'wrong audience',
      `Bearer ${await craft({ exp: '1h', aud: 'someone-else' })}`,
      /not meant for this service \(wrong audience\)/,
    ],
    [
      'wrong issuer',
      `Bearer ${await craft({ exp: '1h', iss: 'https://evil.example/issuer' })}`,
      /issuer this service does not trust/,
    ],
    ['bad signature', `Bearer ${await craft({ exp: '1h', key: other.privateKey })}`, /signature is invalid/],
    [
      'unknown kid',
      `Bearer ${await craft({ exp: '1h', kid: 'no-such-kid', key: other.privateKey })}`,
      /signed with an unknown key/,
    ],
    ['no exp', `Bearer ${await craft()}`, /has no "exp" claim/],
    [
      'not yet valid',
      `Bearer ${await craft({ exp: '2h', claims: { nbf: Math.floor(Date.now() / 1000) + 3600 } })}`,
      /not valid yet/,
    ],
    [
      'unverified email',
      `Bearer ${await craft({ exp: '1h', claims: { email_verified: false } })}`,
      /unverified email/,
    ],
  ];
  const messages = new Map<string, string>();
  for (const [what, header, message] of cases) {
    const r = await withAuth(header);
    assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.json)}`);
    messages.set(what, assert401(r, message));
  }
  // The distinct failures are told apart (a few pairs deliberately share a message).
  const distinct = new Set(messages.values());
  assert.ok(distinct.size >= cases.length - 3, [...distinct].join('\n'));
  // A token whose payload was edited after signing is refused too.
  const good = await mintLocalToken({ dir: s.stateDir });
  const [h, p, sig] = good.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
  payload.email = 'owner-impostor@example.com';
  const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${sig}`;
  secrets.push(good, forged);
  assert401(await withAuth(`Bearer ${forged}`), /signature is invalid/);
  // alg "none" is never accepted.
  const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
  secrets.push(none);
  assert401(await withAuth(`Bearer ${none}`), /./);
});

test('the crypto functions need a token as well; health checks do not', async () => {
  assert401(await s.call('POST', `${key}:encrypt`, { plaintext: 'aGk=' }, { token: '' }), /missing required/);
  assert401(
    await s.call('POST', `${key}:decrypt`, { ciphertext: 'aGk=' }, { token: '' }),
    /missing required/,
  );
  assert401(await s.call('GET', `${key}/cryptoKeyVersions`, undefined, { token: '' }), /missing required/);
  // A token in the query string is not a credential here (and is never logged).
  const t = await s.token();
  assert401(await s.call('GET', `${key}?access_token=${t}`, undefined, { token: '' }), /missing required/);
  const health = await s.call('GET', '/health', undefined, { token: '' });
  assert.equal(health.status, 200, JSON.stringify(health.json));
});

test('an expired token made with the local minter is refused; a fresh one for the same principal works', async () => {
  const expired = await mintLocalToken({
    dir: s.stateDir,
    principal: 'user:alice@example.com',
    ttlSeconds: -120,
  });
  secrets.push(expired);
  assert401(await withAuth(`Bearer ${expired}`), /has expired/);
  const fresh = await s.token('user:alice@example.com');
  secrets.push(fresh);
  assert.equal((await withAuth(`Bearer ${fresh}`)).status, 200);
  // "bearer" in any case and surrounding spaces are fine.
  assert.equal((await withAuth(`bearer ${fresh}`)).status, 200);
  assert.equal((await withAuth(`  Bearer   ${fresh}  `)).status, 200);
});

test('local principals: users and service accounts, logged by principal', async () => {
  const alice = await s.token('user:alice@example.com');
  const sa = await s.token('serviceAccount:builder@my-project.iam.gserviceaccount.com');
  secrets.push(alice, sa);
  const ra = await s.call('GET', key, undefined, { token: alice, headers: { 'x-request-id': 'req-alice' } });
  assert.equal(ra.status, 200, JSON.stringify(ra.json));
  const rs = await s.call('GET', key, undefined, { token: sa, headers: { 'x-request-id': 'req-sa' } });
  assert.equal(rs.status, 200, JSON.stringify(rs.json));
  const line = (id: string) => {
    const found = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === id);
    assert.ok(found, `a log line for ${id}`);
    return found;
  };
  assert.equal(line('req-alice').principal, 'user:alice@example.com');
  assert.equal(line('req-sa').principal, 'serviceAccount:builder@my-project.iam.gserviceaccount.com');
  assert.equal(ra.headers.get('x-request-id'), 'req-alice');

  await assert.rejects(mintLocalToken({ dir: s.stateDir, principal: 'alice' }), /is not a principal/);
  await assert.rejects(
    mintLocalToken({ dir: s.stateDir, principal: 'serviceAccount:alice@example.com' }),
    /principal type follows its email/,
  );
});

test('npm run --silent token -- user:alice@example.com prints a token the gateway accepts', async () => {
  const { stdout } = await promisify(execFile)(
    'npm',
    ['run', '--silent', 'token', '--', 'user:alice@example.com'],
    {
      env: { ...process.env, OPENEKM_STATE_DIR: s.stateDir },
      timeout: 30_000,
    },
  );
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  secrets.push(token);
  const r = await s.call(
    'POST',
    `${key}:encrypt`,
    { plaintext: 'aGk=' },
    { token, headers: { 'x-request-id': 'req-cli' } },
  );
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const line = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === 'req-cli');
  assert.equal(line?.principal, 'user:alice@example.com');
});

test('no token, plaintext or AAD ever appears in a log line', async () => {
  const plaintext = Buffer.from('the-plaintext-must-never-be-logged-0123456789').toString('base64');
  const aad = Buffer.from('the-aad-must-never-be-logged-9876543210').toString('base64');
  secrets.push(plaintext, aad);
  const token = await s.token('user:bob@example.com');
  secrets.push(token);
  const e = await s.call(
    'POST',
    `${key}:encrypt`,
    { plaintext, additionalAuthenticatedData: aad },
    { token },
  );
  assert.equal(e.status, 200, JSON.stringify(e.json));
  secrets.push(e.json.ciphertext);
  const d = await s.call(
    'POST',
    `${key}:decrypt`,
    { ciphertext: e.json.ciphertext, additionalAuthenticatedData: aad },
    { token },
  );
  assert.equal(d.json.plaintext, plaintext);
  // Failing requests carry the same payloads.
  await s.call(
    'POST',
    `${key}:decrypt`,
    { ciphertext: e.json.ciphertext, additionalAuthenticatedData: plaintext },
    { token },
  );
  await s.call('POST', `${key}:encrypt`, { plaintext, plaintextCrc32c: '1' }, { token });
  await s.call(
    'POST',
    `${key}:encrypt`,
    { plaintext },
    { token: '', headers: { authorization: `Bearer ${token}x` } },
  );
  await s.call('POST', `${key}:encrypt?plaintext=${plaintext}`, { plaintext }, { token });

  assert.ok(s.logs.length > 20, `the harness collected logs (${s.logs.length})`);
  for (const line of s.logs) {
    for (const secret of secrets) {
      // Any long fragment of a secret is a leak, e.g. a token's signature alone.
      for (const part of secret.split('.').filter((x) => x.length >= 16)) {
        assert.ok(!line.includes(part), `a log line contains a secret fragment: ${line.slice(0, 300)}`);
      }
    }
    assert.ok(!/eyJ[\w-]{10,}/.test(line), `a log line contains something like a JWT: ${line.slice(0, 300)}`);
  }
});
