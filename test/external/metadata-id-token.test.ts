/**
 * Endpoints with "auth": {"type": "google-id-token"} authenticate with a Google-signed ID token from the metadata
 * server. There is no metadata server here, so a small loopback server plays it (a test double for something we
 * cannot run): it mints ID tokens with its own key for the requested audience, and the reference EKM trusts that
 * issuer as a partner would trust Google's.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ReferenceEkm, startReferenceEkm } from '@openekm/reference-ekm';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const FAKE_GOOGLE_ISSUER = 'https://accounts.google.example';
const SERVICE_AGENT = 'service-123@gcp-sa-ekms.iam.gserviceaccount.com';
let metadata: Server;
let ekm: ReferenceEkm;
let s: TestStack;
let dir: string;
const audiencesAsked: string[] = [];
let flavorHeaders: Array<string | undefined> = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'openekm-idtoken-'));
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  writeFileSync(
    join(dir, 'jwks.json'),
    JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'g1', alg: 'RS256' }] }),
  );
  metadata = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    flavorHeaders.push(req.headers['metadata-flavor'] as string | undefined);
    if (url.pathname !== '/computeMetadata/v1/instance/service-accounts/default/identity') {
      res.writeHead(404).end();
      return;
    }
    const audience = url.searchParams.get('audience') ?? '';
    audiencesAsked.push(audience);
    const token = await new SignJWT({ email: SERVICE_AGENT, email_verified: true })
      .setProtectedHeader({ alg: 'RS256', kid: 'g1' })
      .setIssuer(FAKE_GOOGLE_ISSUER)
      .setSubject('1234567890')
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
  });
  await new Promise<void>((r) => metadata.listen(0, '127.0.0.1', r));
  process.env.GCE_METADATA_HOST = `127.0.0.1:${(metadata.address() as AddressInfo).port}`;
  ekm = await startReferenceEkm({
    dataDir: join(dir, 'ekm'),
    httpPort: 0,
    httpsPort: 0,
    mode: 'test',
    trustedIssuers: [{ issuer: FAKE_GOOGLE_ISSUER, jwksFile: join(dir, 'jwks.json') }],
    defaultPrincipal: SERVICE_AGENT,
    log: () => undefined,
  });
  await ekm.admin.createKey('via-google-identity');
  s = await startTestStack({
    env: {
      OPENEKM_EKM_ENDPOINTS: JSON.stringify([
        {
          prefix: `${ekm.googleEkmHttpBaseUrl}/keys/`,
          protocol: 'google-ekm-v0',
          auth: { type: 'google-id-token' },
        },
      ]),
      // The reference EKM listens on loopback, which the EKM host allow-list refuses unless listed.
      OPENEKM_EKM_ALLOWED_HOSTS: '["public", "127.0.0.1"]',
    },
  });
});

after(async () => {
  await s?.stop();
  await ekm?.stop();
  metadata?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a google-id-token endpoint is called with the metadata server ID token, reused across requests', async () => {
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  assert.equal((await s.call('POST', `${loc}/keyRings?keyRingId=r`, {})).status, 200);
  const key = await s.call(
    'POST',
    `${loc}/keyRings/r/cryptoKeys?cryptoKeyId=k&skipInitialVersionCreation=true`,
    {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'EXTERNAL' },
    },
  );
  assert.equal(key.status, 200, JSON.stringify(key.json));
  const v = await s.call('POST', `${loc}/keyRings/r/cryptoKeys/k/cryptoKeyVersions`, {
    externalProtectionLevelOptions: {
      externalKeyUri: `${ekm.googleEkmHttpBaseUrl}/keys/via-google-identity`,
    },
  });
  assert.equal(
    v.status,
    200,
    JSON.stringify(v.json) + s.logs.filter((l) => l.includes('EKM call failed')).join('\n'),
  );
  const enc = await s.call('POST', `/v1/${v.json.name}:encrypt`, {
    plaintext: Buffer.from('x').toString('base64'),
  });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  const dec = await s.call('POST', `${loc}/keyRings/r/cryptoKeys/k:decrypt`, {
    ciphertext: enc.json.ciphertext,
  });
  assert.equal(dec.status, 200, JSON.stringify(dec.json));
  assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'x');
  // One token for the EKM's origin, fetched once with the Metadata-Flavor header, reused for three EKM calls.
  assert.deepEqual(audiencesAsked, [new URL(ekm.httpUrl).origin]);
  assert.deepEqual(flavorHeaders, ['Google']);
});

test('when the EKM does not grant the service agent, the refusal is EXTERNAL_PERMISSION_DENIED', async () => {
  await ekm.admin.revoke('via-google-identity', SERVICE_AGENT);
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  const enc = await s.call('POST', `${loc}/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1:encrypt`, {
    plaintext: Buffer.from('x').toString('base64'),
  });
  assert.equal(enc.status, 400, JSON.stringify(enc.json));
  assert.equal(enc.json.error.details[0].violations[1].type, 'EXTERNAL_PERMISSION_DENIED');
  flavorHeaders = [];
});
