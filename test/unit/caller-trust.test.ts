/**
 * What the gateway believes about a caller: the principal a token may assert (per issuer, verified email only,
 * ambiguous tokens refused), the caller's address behind configured proxy hops only, who may state an access
 * reason, and JSON parse errors that never quote the body.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { TokenVerifier } from '../../shared/access/identity.js';
import { mayStateReason, permittedReason } from '../../shared/api/authenticate.js';
import { parseBody } from '../../shared/api/body.js';
import { clientIp } from '../../shared/audit/client-ip.js';
import { loadConfig, type TrustedIssuer } from '../../shared/config.js';
import { RpcError } from '../../shared/errors.js';

const AUD = 'openekm';

async function issuer(iss: string, principals?: string[]) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = iss.replace(/\W/g, '');
  const trusted: TrustedIssuer = {
    issuer: iss,
    audiences: [AUD],
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256' }] },
    ...(principals ? { principals } : {}),
  };
  const sign = (claims: JWTPayload) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid })
      .setIssuer(iss)
      .setAudience(AUD)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
  return { trusted, sign };
}

async function refused(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof RpcError);
    assert.equal(err.code, 'UNAUTHENTICATED');
    assert.match(err.message, message);
    return true;
  });
}

describe('principals per issuer', () => {
  test('an issuer cannot mint the users or service accounts of another', async () => {
    const corp = await issuer('https://idp.corp.example', ['user:*@corp.example']);
    const partner = await issuer('https://idp.partner.example', ['user:*@partner.example']);
    const v = new TokenVerifier([corp.trusted, partner.trusted]);
    const own = await v.verify(
      `Bearer ${await corp.sign({ email: 'alice@corp.example', email_verified: true })}`,
    );
    assert.deepEqual(own, { principal: 'user:alice@corp.example', issuer: 'https://idp.corp.example' });
    await refused(
      v.verify(`Bearer ${await partner.sign({ email: 'alice@corp.example', email_verified: true })}`),
      /issuer is not trusted to assert user principals/,
    );
    await refused(
      v.verify(
        `Bearer ${await corp.sign({ email: 'deployer@p.iam.gserviceaccount.com', email_verified: true })}`,
      ),
      /not trusted to assert serviceAccount/,
    );
  });

  test("by default only Google's issuer asserts service accounts; others users only", async () => {
    const google = await issuer('https://accounts.google.com');
    const other = await issuer('https://idp.example');
    const sa = { email: 'ci@p.iam.gserviceaccount.com', email_verified: true };
    const fromGoogle = new TokenVerifier([google.trusted]);
    assert.equal(
      (await fromGoogle.verify(`Bearer ${await google.sign(sa)}`)).principal,
      'serviceAccount:ci@p.iam.gserviceaccount.com',
    );
    const fromOther = new TokenVerifier([other.trusted]);
    await refused(fromOther.verify(`Bearer ${await other.sign(sa)}`), /not trusted to assert serviceAccount/);
    assert.equal(
      (
        await fromOther.verify(
          `Bearer ${await other.sign({ email: 'bob@idp.example', email_verified: true })}`,
        )
      ).principal,
      'user:bob@idp.example',
    );
    // A look-alike domain is a user, not a service account.
    assert.equal(
      (
        await fromOther.verify(
          `Bearer ${await other.sign({ email: 'x@evilgserviceaccount.com', email_verified: true })}`,
        )
      ).principal,
      'user:x@evilgserviceaccount.com',
    );
  });

  test('a principal two issuers may both assert is ambiguous and refused', async () => {
    const broad = await issuer('https://idp.broad.example', ['user:*']);
    const narrow = await issuer('https://idp.narrow.example', ['user:*@narrow.example']);
    const v = new TokenVerifier([broad.trusted, narrow.trusted]);
    for (const sign of [broad.sign, narrow.sign]) {
      await refused(
        v.verify(`Bearer ${await sign({ email: 'eve@narrow.example', email_verified: true })}`),
        /ambiguous/,
      );
    }
    assert.equal(
      (await v.verify(`Bearer ${await broad.sign({ email: 'eve@else.example', email_verified: true })}`))
        .principal,
      'user:eve@else.example',
    );
  });

  test('a verified, single email is required: no sub-only principals, no missing email_verified', async () => {
    const idp = await issuer('https://idp.example');
    const v = new TokenVerifier([idp.trusted]);
    const cases: [JWTPayload, RegExp][] = [
      [{ sub: 'alice' }, /no email claim/],
      [{ sub: 'alice', email: 'alice@idp.example' }, /no email_verified claim/],
      [{ email: 'alice@idp.example', email_verified: false }, /unverified email/],
      [{ email: 'alice@idp.example', email_verified: 'true' }, /unverified email/],
      [{ email: 'alice@evil.example@idp.example', email_verified: true }, /not a single email address/],
      [{ email: ['alice@idp.example'], email_verified: true }, /not a single email address/],
      [{ email: 'alice @idp.example', email_verified: true }, /not a single email address/],
    ];
    for (const [claims, message] of cases) {
      await refused(v.verify(`Bearer ${await idp.sign(claims)}`), message);
    }
  });

  test('configuration: forms are checked, and two issuers may not both assert any user', () => {
    const base = {
      OPENEKM_ROOT_KEYS: `k:${Buffer.alloc(32, 1).toString('base64')}`,
    };
    const jwks = { keys: [] };
    const load = (issuers: unknown[]) =>
      loadConfig({ ...base, OPENEKM_TRUSTED_ISSUERS: JSON.stringify(issuers) });
    assert.throws(
      () =>
        load([
          { issuer: 'https://accounts.google.com', audiences: [AUD], jwks },
          { issuer: 'https://idp.example', audiences: [AUD], jwks },
        ]),
      /may each assert any user/,
    );
    assert.throws(
      () =>
        load([{ issuer: 'https://idp.example', audiences: [AUD], jwks, principals: ['group:x@y.example'] }]),
      /principals/,
    );
    const ok = load([
      { issuer: 'https://accounts.google.com', audiences: [AUD], jwks },
      { issuer: 'https://idp.example', audiences: [AUD], jwks, principals: ['user:*@corp.example'] },
    ]);
    assert.deepEqual(ok.trustedIssuers[1]!.principals, ['user:*@corp.example']);
  });
});

describe('the caller address', () => {
  const xff = {
    'x-forwarded-for': '203.0.113.9, 198.51.100.7',
    forwarded: 'for=192.0.2.1',
    'x-real-ip': '192.0.2.2',
  };
  test('without trusted hops, forwarding headers are ignored', () => {
    assert.equal(clientIp('127.0.0.1', xff, 0), '127.0.0.1');
    assert.equal(clientIp('::ffff:10.1.2.3', xff, 0), '10.1.2.3');
  });
  test('with N hops, the N-th X-Forwarded-For entry from the right', () => {
    assert.equal(clientIp('10.0.0.1', xff, 1), '198.51.100.7');
    assert.equal(clientIp('10.0.0.1', xff, 2), '203.0.113.9');
    assert.equal(
      clientIp('10.0.0.1', { 'x-forwarded-for': ['203.0.113.9', '198.51.100.7'] }, 2),
      '203.0.113.9',
    );
    // Fewer entries than hops, or garbage: the connection's peer.
    assert.equal(clientIp('10.0.0.1', xff, 3), '10.0.0.1');
    assert.equal(clientIp('10.0.0.1', { 'x-forwarded-for': 'evil, <script>' }, 1), '10.0.0.1');
    assert.equal(clientIp('10.0.0.1', {}, 1), '10.0.0.1');
  });
  test('configuration: none by default', () => {
    const env = {
      OPENEKM_ROOT_KEYS: `k:${Buffer.alloc(32, 1).toString('base64')}`,
      OPENEKM_TRUSTED_ISSUERS: JSON.stringify([
        { issuer: 'https://i', audiences: ['a'], jwks: { keys: [] } },
      ]),
    };
    assert.equal(loadConfig(env).trustedProxyHops, 0);
    assert.equal(loadConfig({ ...env, OPENEKM_TRUSTED_PROXY_HOPS: '1' }).trustedProxyHops, 1);
    assert.throws(
      () => loadConfig({ ...env, OPENEKM_TRUSTED_PROXY_HOPS: 'all' }),
      /OPENEKM_TRUSTED_PROXY_HOPS/,
    );
  });
});

describe('access reasons', () => {
  const config = {
    accessReasonPrincipals: [
      'serviceAccount:broker@p.iam.gserviceaccount.com',
      'group:kaj@example.com',
      'domain:ops.example',
    ],
    groups: { 'kaj@example.com': ['user:jo@example.com'] },
  };
  test('who may state one', () => {
    assert.ok(mayStateReason('serviceAccount:Broker@p.iam.gserviceaccount.com', config));
    assert.ok(mayStateReason('user:jo@example.com', config));
    assert.ok(mayStateReason('user:any@ops.example', config));
    assert.ok(!mayStateReason('user:alice@example.com', config));
    assert.ok(!mayStateReason('user:alice@example.com', { accessReasonPrincipals: [], groups: {} }));
  });
  test('the default needs no leave; others are PERMISSION_DENIED', () => {
    const alice = { principal: 'user:alice@example.com', issuer: 'i' };
    assert.equal(permittedReason('CUSTOMER_INITIATED_ACCESS', alice, config), 'CUSTOMER_INITIATED_ACCESS');
    assert.throws(
      () => permittedReason('GOOGLE_INITIATED_REVIEW', alice, config),
      (e: unknown) => e instanceof RpcError && e.code === 'PERMISSION_DENIED',
    );
    const jo = { principal: 'user:jo@example.com', issuer: 'i' };
    assert.equal(permittedReason('GOOGLE_INITIATED_REVIEW', jo, config), 'GOOGLE_INITIATED_REVIEW');
  });
});

describe('JSON parse errors', () => {
  const secret = 'U2VjcmV0UGFzc3dvcmQ';
  const bodies = [
    `{"plaintext":${secret}}`,
    `{"plaintext":"${secret}`,
    `{"plaintext":"${secret}",}`,
    `{"plaintext" "${secret}"}`,
    `{"plaintext":"${secret}"} ${secret}`,
    `{"plaintext":"${secret}\\q"}`,
    `{"plaintext":-${secret}}`,
    `${secret}`,
  ];
  test('are fixed words with at most a position, never text of the body', () => {
    for (const body of bodies) {
      assert.throws(
        () => parseBody(Buffer.from(body)),
        (e: unknown) => {
          assert.ok(e instanceof RpcError, String(e));
          assert.equal(e.code, 'INVALID_ARGUMENT');
          assert.match(
            e.message,
            /^Invalid JSON payload received: [A-Za-z ',:{}()\][]+( at position \d+)?\. Send a JSON object\.$/,
          );
          assert.ok(!e.message.includes(secret.slice(0, 6)), e.message);
          return true;
        },
      );
    }
  });
});
