/**
 * Real Google clients managing EKM connections against OpenEKM: the @google-cloud/kms 5.x EkmServiceClient in
 * REST/fallback mode (set up as node-client.test.ts does, with its gax error-decoding workaround), and the real
 * gcloud CLI (`gcloud kms ekm-connections …`, `gcloud kms ekm-config …`, then an EXTERNAL_VPC key, a version on
 * the connection and an encrypt/decrypt round trip), against the local stack and its reference EKM over HTTPS
 * with the pinned certificate. Nothing leaves loopback.
 *
 * gcloud must be installed (part of the machine image); OPENEKM_SKIP_GCLOUD=1 skips the gcloud tests only.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EkmServiceClient } from '@google-cloud/kms';
import { OAuth2Client } from 'google-auth-library';
import { hostOf, serverCertDer } from '../helpers/ekm-replicas.js';
import { gcloudEnv, runGcloud, startTestStack, type TestStack } from '../helpers/stack.js';

process.env.METADATA_SERVER_DETECTION = 'none';

const skipGcloud = process.env.OPENEKM_SKIP_GCLOUD === '1';

let s: TestStack;
/** Default transport: gax 5.0.x + gaxios 7 throws non-2xx answers before decoding them (see node-client.test.ts). */
let ekm: EkmServiceClient;
/** validateStatus: () => true lets gax decode google.rpc.Status into gRPC codes. */
let decoding: EkmServiceClient;
let project: string;
let der: Buffer;
let cert: X509Certificate;
let ekmHost: string;
let work: string;

before(async () => {
  // A generous per-attempt timeout: verifyConnectivity and the key check must not fail on a busy machine.
  s = await startTestStack({ ekm: true, env: { OPENEKM_EKM_CONNECTION_TIMEOUT_MS: '2000' } });
  project = s.project;
  der = Buffer.from(serverCertDer(s), 'base64');
  cert = new X509Certificate(der);
  ekmHost = hostOf(s.ekm!.ekm.httpsUrl);
  work = mkdtempSync(join(tmpdir(), 'openekm-ekmconn-clients-'));
  const options = {
    apiEndpoint: '127.0.0.1',
    port: s.server.port,
    protocol: 'http',
    fallback: true,
  } as const;
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: await s.token(), expiry_date: Date.now() + 3_600_000 });
  ekm = new EkmServiceClient({ ...options, authClient: authClient as never });
  const decodingAuth = new OAuth2Client({ transporterOptions: { validateStatus: () => true } });
  decodingAuth.setCredentials({ access_token: await s.token(), expiry_date: Date.now() + 3_600_000 });
  decoding = new EkmServiceClient({ ...options, authClient: decodingAuth as never });
});
after(async () => {
  await ekm?.close();
  await decoding?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  await s?.stop();
});

interface ClientError {
  code?: number | string;
  message?: string;
}

/** Seconds of a protobuf Timestamp as decoded by the client (Long, string or number). */
const secondsOf = (t: { seconds?: unknown } | null | undefined) => Number(String(t?.seconds));

test('the Node EkmServiceClient: create, get (typed certificate fields), list, update, ekmConfig, verifyConnectivity, errors', async () => {
  const parent = ekm.locationPath(project, 'us-east1');
  const sd = `projects/${project}/locations/us-east1/namespaces/ekm-ns/services/ekm-svc`;
  const [created] = await ekm.createEkmConnection({
    parent,
    ekmConnectionId: 'node-conn',
    ekmConnection: {
      serviceResolvers: [
        {
          hostname: ekmHost,
          // Bytes: the client serialises them as base64 itself.
          serverCertificates: [{ rawDer: der }],
          serviceDirectoryService: sd,
          endpointFilter: 'metadata.tier = "primary"',
        },
      ],
    },
  });
  const name = ekm.ekmConnectionPath(project, 'us-east1', 'node-conn');
  assert.equal(created.name, name);
  assert.equal(created.keyManagementMode, 'MANUAL', 'the integer enum decoded to its name');
  assert.ok(secondsOf(created.createTime) > 0, 'createTime is a Timestamp');
  assert.ok(created.etag, 'an etag');

  const [got] = await ekm.getEkmConnection({ name });
  assert.equal(got.name, name);
  assert.equal(got.etag, created.etag);
  assert.equal(got.serviceResolvers?.length, 1);
  const r = got.serviceResolvers![0]!;
  assert.equal(r.hostname, ekmHost);
  assert.equal(r.serviceDirectoryService, sd);
  assert.equal(r.endpointFilter, 'metadata.tier = "primary"');
  assert.equal(r.serverCertificates?.length, 1);
  const c = r.serverCertificates![0]!;
  assert.ok(Buffer.from(c.rawDer as Uint8Array).equals(der), 'rawDer comes back as the same bytes');
  assert.equal(c.parsed, true);
  assert.equal(c.sha256Fingerprint, createHash('sha256').update(der).digest('hex'));
  assert.equal(c.serialNumber, cert.serialNumber.toLowerCase());
  assert.ok(c.subject && c.issuer, 'subject and issuer');
  assert.equal(secondsOf(c.notAfterTime), Date.parse(cert.validTo) / 1000, 'notAfterTime is a Timestamp');
  assert.equal(secondsOf(c.notBeforeTime), Date.parse(cert.validFrom) / 1000, 'notBeforeTime is a Timestamp');

  const [list] = await ekm.listEkmConnections({ parent });
  assert.deepEqual(
    list.map((x) => x.name),
    [name],
  );
  assert.equal(list[0]!.serviceResolvers?.[0]?.serverCertificates?.[0]?.parsed, true);

  // A stale etag: ABORTED (10), decoded by gax with the workaround transport.
  await assert.rejects(
    decoding.updateEkmConnection({
      ekmConnection: { name, etag: 'stale', keyManagementMode: 'MANUAL' },
      updateMask: { paths: ['key_management_mode'] },
    }),
    (err: ClientError) => {
      assert.equal(err.code, 10, String(err.message));
      assert.match(err.message ?? '', /does not match the current etag/);
      return true;
    },
  );

  // Switch the connection to coordinated keys (CLOUD_KMS) with a crypto space, with an update mask.
  await s.ekm!.ekm.admin.createCryptoSpace('node-space');
  const [updated] = await ekm.updateEkmConnection({
    ekmConnection: {
      name,
      etag: got.etag,
      keyManagementMode: 'CLOUD_KMS',
      cryptoSpacePath: 'v0/cryptospaces/node-space',
    },
    updateMask: { paths: ['key_management_mode', 'crypto_space_path'] },
  });
  assert.equal(updated.keyManagementMode, 'CLOUD_KMS');
  assert.equal(updated.cryptoSpacePath, 'v0/cryptospaces/node-space');
  assert.notEqual(updated.etag, got.etag);
  assert.equal(updated.serviceResolvers?.[0]?.serviceDirectoryService, sd, 'fields outside the mask kept');
  const [reread] = await ekm.getEkmConnection({ name });
  assert.equal(reread.keyManagementMode, 'CLOUD_KMS');
  assert.equal(reread.etag, updated.etag);

  // GetInfo over HTTPS with the pinned certificate, plus the crypto space permission check: no error.
  const seen = s.ekmLogs.length;
  await ekm.verifyConnectivity({ name });
  // The reference EKM answered both checks, over the pinned HTTPS, to OpenEKM's identity.
  const checks = s.ekmLogs
    .slice(seen)
    .map((l) => JSON.parse(l))
    .filter((l) => l.msg === 'request')
    .map((l) => `${l.operation} ${l.status} ${l.principal}`);
  // ... as the project's own EKM identity.
  assert.deepEqual(checks, [
    `getInfo 200 service-${s.project}@openekm.local`,
    `checkCryptoSpacePermissions 200 service-${s.project}@openekm.local`,
  ]);

  // A connection pinning a certificate that is not the replica's (the reference EKM's CA): FAILED_PRECONDITION.
  const caDer = Buffer.from(
    readFileSync(s.ekm!.ekm.caCertPath, 'utf8')
      .replace(/-----[A-Z ]+-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  );
  await ekm.createEkmConnection({
    parent,
    ekmConnectionId: 'node-wrong-pin',
    ekmConnection: { serviceResolvers: [{ hostname: ekmHost, serverCertificates: [{ rawDer: caDer }] }] },
  });
  await assert.rejects(
    decoding.verifyConnectivity({ name: ekm.ekmConnectionPath(project, 'us-east1', 'node-wrong-pin') }),
    (err: ClientError) => {
      assert.equal(err.code, 9, String(err.message));
      assert.match(err.message ?? '', /TLS_CERT/);
      return true;
    },
  );

  // ekmConfig: empty, then the default connection, read back.
  const configName = ekm.ekmConfigPath(project, 'us-east1');
  const [empty] = await ekm.getEkmConfig({ name: configName });
  assert.equal(empty.name, configName);
  assert.equal(empty.defaultEkmConnection, '');
  const [set] = await ekm.updateEkmConfig({
    ekmConfig: { name: configName, defaultEkmConnection: name },
    updateMask: { paths: ['default_ekm_connection'] },
  });
  assert.equal(set.defaultEkmConnection, name);
  const [config] = await ekm.getEkmConfig({ name: configName });
  assert.equal(config.defaultEkmConnection, name);

  // A duplicate id: ALREADY_EXISTS (6); a missing connection: NOT_FOUND (5).
  await assert.rejects(
    decoding.createEkmConnection({
      parent,
      ekmConnectionId: 'node-conn',
      ekmConnection: { serviceResolvers: [{ hostname: ekmHost, serverCertificates: [{ rawDer: der }] }] },
    }),
    (err: ClientError) => {
      assert.equal(err.code, 6, String(err.message));
      assert.match(err.message ?? '', /node-conn/);
      return true;
    },
  );
  await assert.rejects(
    decoding.getEkmConnection({ name: ekm.ekmConnectionPath(project, 'us-east1', 'missing') }),
    (err: ClientError) => {
      assert.equal(err.code, 5, String(err.message));
      return true;
    },
  );
  // With the default transport the same error still reaches the caller (HTTP 409 until gax decodes it).
  await assert.rejects(
    ekm.createEkmConnection({
      parent,
      ekmConnectionId: 'node-conn',
      ekmConnection: { serviceResolvers: [{ hostname: ekmHost, serverCertificates: [{ rawDer: der }] }] },
    }),
    (err: ClientError) => {
      if (err.code === 6) return true;
      assert.equal(err.code, 409, String(err.message));
      assert.equal(JSON.parse(err.message ?? '').error.status, 'ALREADY_EXISTS');
      return true;
    },
  );
});

let gcloudEnvVars: NodeJS.ProcessEnv;

/** Runs gcloud without blocking this process (which serves the requests). */
function gcloud(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runGcloud(args, { env: gcloudEnvVars, cwd: work });
}

/** gcloud prints what some commands (create) answered as a one-element list in --format=json. */
function single(stdout: string): any {
  const out = JSON.parse(stdout);
  if (!Array.isArray(out)) return out;
  assert.equal(out.length, 1, stdout);
  return out[0];
}

async function ok(...args: string[]): Promise<string> {
  const r = await gcloud(...args);
  assert.equal(r.code, 0, `gcloud ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

test('gcloud kms ekm-connections / ekm-config, then an EXTERNAL_VPC key through the connection', {
  skip: skipGcloud && 'OPENEKM_SKIP_GCLOUD=1',
}, async () => {
  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, await s.token(), { mode: 0o600 });
  gcloudEnvVars = gcloudEnv(s.url, project, join(work, 'gcloud-config'), tokenFile);
  const pem = `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END CERTIFICATE-----\n`;
  writeFileSync(join(work, 'ekm.pem'), pem);
  const loc = '--location=us-east1';
  const connName = `projects/${project}/locations/us-east1/ekmConnections/gconn`;
  const sd = `projects/${project}/locations/us-east1/namespaces/gns/services/gsvc`;

  const created = single(
    await ok(
      'kms',
      'ekm-connections',
      'create',
      'gconn',
      loc,
      `--hostname=${ekmHost}`,
      '--server-certificates-files=ekm.pem',
      `--service-directory-service=${sd}`,
      '--key-management-mode=manual',
      '--format=json',
    ),
  );
  assert.equal(created.name, connName);
  assert.equal(created.keyManagementMode, 'MANUAL');
  assert.equal(created.serviceResolvers[0].serverCertificates[0].parsed, true);

  const described = JSON.parse(await ok('kms', 'ekm-connections', 'describe', 'gconn', loc, '--format=json'));
  assert.equal(described.name, connName);
  assert.equal(described.serviceResolvers[0].hostname, ekmHost);
  assert.equal(described.serviceResolvers[0].serviceDirectoryService, sd);
  const gcert = described.serviceResolvers[0].serverCertificates[0];
  assert.equal(gcert.parsed, true);
  assert.equal(gcert.sha256Fingerprint, createHash('sha256').update(der).digest('hex'));
  assert.equal(Date.parse(gcert.notAfterTime), Date.parse(cert.validTo));

  const listed = JSON.parse(await ok('kms', 'ekm-connections', 'list', loc, '--format=json'));
  assert.deepEqual(
    listed.map((x: { name: string }) => x.name).sort(),
    [
      `projects/${project}/locations/us-east1/ekmConnections/gconn`,
      `projects/${project}/locations/us-east1/ekmConnections/node-conn`,
      `projects/${project}/locations/us-east1/ekmConnections/node-wrong-pin`,
    ].sort(),
  );

  const sd2 = `projects/${project}/locations/us-east1/namespaces/gns/services/gsvc2`;
  const updated = JSON.parse(
    await ok(
      'kms',
      'ekm-connections',
      'update',
      'gconn',
      loc,
      `--service-directory-service=${sd2}`,
      '--endpoint-filter=tier=b',
      '--format=json',
    ),
  );
  assert.equal(updated.serviceResolvers[0].serviceDirectoryService, sd2);
  assert.equal(updated.serviceResolvers[0].endpointFilter, 'tier=b');
  assert.equal(updated.serviceResolvers[0].hostname, ekmHost, 'the hostname is kept');
  assert.notEqual(updated.etag, described.etag);

  const config = JSON.parse(
    await ok('kms', 'ekm-config', 'update', loc, `--default-ekm-connection=${connName}`, '--format=json'),
  );
  assert.equal(config.defaultEkmConnection, connName);
  const readConfig = JSON.parse(await ok('kms', 'ekm-config', 'describe', loc, '--format=json'));
  assert.deepEqual(readConfig, {
    name: `projects/${project}/locations/us-east1/ekmConfig`,
    defaultEkmConnection: connName,
  });

  // An EXTERNAL_VPC key on the connection, a version on a key held by the reference EKM, and a round trip.
  await s.ekm!.ekm.admin.createKey('gcloud-vpc-key');
  await ok('kms', 'keyrings', 'create', 'gvpc', loc);
  const where = [loc, '--keyring=gvpc'];
  const key = single(
    await ok(
      'kms',
      'keys',
      'create',
      'gvpc-key',
      ...where,
      '--purpose=encryption',
      '--protection-level=external-vpc',
      `--crypto-key-backend=${connName}`,
      '--skip-initial-version-creation',
      '--default-algorithm=external-symmetric-encryption',
      '--format=json',
    ),
  );
  assert.equal(key.cryptoKeyBackend, connName);
  assert.equal(key.versionTemplate.protectionLevel, 'EXTERNAL_VPC');
  assert.equal(key.versionTemplate.algorithm, 'EXTERNAL_SYMMETRIC_ENCRYPTION');
  assert.equal(key.primary, undefined, 'no version yet');
  const version = single(
    await ok(
      'kms',
      'keys',
      'versions',
      'create',
      '--key=gvpc-key',
      ...where,
      '--ekm-connection-key-path=v0/keys/gcloud-vpc-key',
      '--primary',
      '--format=json',
    ),
  );
  assert.equal(version.protectionLevel, 'EXTERNAL_VPC');
  assert.equal(version.state, 'ENABLED');
  assert.equal(version.externalProtectionLevelOptions.ekmConnectionKeyPath, 'v0/keys/gcloud-vpc-key');

  const plaintext = Buffer.concat([
    Buffer.from('gcloud through an EKM connection '),
    Buffer.from([0xfb, 0xff, 0x00]),
  ]);
  writeFileSync(join(work, 'plain.bin'), plaintext);
  await ok(
    'kms',
    'encrypt',
    '--key=gvpc-key',
    ...where,
    '--plaintext-file=plain.bin',
    '--ciphertext-file=cipher.bin',
  );
  await ok(
    'kms',
    'decrypt',
    '--key=gvpc-key',
    ...where,
    '--ciphertext-file=cipher.bin',
    '--plaintext-file=out.bin',
  );
  assert.ok(readFileSync(join(work, 'out.bin')).equals(plaintext), 'gcloud decrypt gives back the plaintext');
  // The wrap and unwrap went to the reference EKM through the connection.
  const wraps = s.logs
    .map((l) => JSON.parse(l))
    .filter((e) => e.metric === 'openekm.ekm.request' && e.ekm?.status === 'OK' && e.ekm.replica === ekmHost)
    .map((e) => e.ekm.method);
  assert.ok(wraps.includes('wrap') && wraps.includes('unwrap'), `EKM calls: ${wraps.join(', ')}`);
});

/**
 * Switching a CLOUD_KMS connection back to MANUAL with updateMask=keyManagementMode only — all gcloud can send
 * (`--crypto-space-path=""` is dropped) — clears the stored crypto space.
 */
test('gcloud switches a CLOUD_KMS connection back to MANUAL (updateMask=keyManagementMode)', {
  skip: skipGcloud && 'OPENEKM_SKIP_GCLOUD=1',
}, async () => {
  assert.ok(gcloudEnvVars, 'the gcloud environment was set up by the previous test');
  // node-conn was switched to CLOUD_KMS by the Node client test.
  const before = JSON.parse(
    await ok('kms', 'ekm-connections', 'describe', 'node-conn', '--location=us-east1', '--format=json'),
  );
  assert.equal(before.keyManagementMode, 'CLOUD_KMS');
  const r = await gcloud(
    'kms',
    'ekm-connections',
    'update',
    'node-conn',
    '--location=us-east1',
    '--key-management-mode=manual',
    '--format=json',
  );
  assert.equal(r.code, 0, r.stderr);
  const updated = JSON.parse(r.stdout);
  assert.equal(updated.keyManagementMode, 'MANUAL');
  assert.equal(updated.cryptoSpacePath, undefined);
});
