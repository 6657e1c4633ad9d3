/**
 * The official Node client, unmodified: @google-cloud/kms 5.x in REST mode (fallback), pointed at the one-base-URL
 * local server with the options of docs/clients (apiEndpoint 127.0.0.1, port, protocol http, an OAuth2Client
 * holding a local token), against the real Firestore emulator. It sends `$alt=json;enum-encoding=int`, `""` for
 * empty messages, standard base64, and expects integer enums back — the client decodes them to names.
 *
 * Client quirk (gax 5.0.x with gaxios 7, googleapis/gax-nodejs#1803): with the default transport, a non-2xx answer
 * is thrown by gaxios before gax decodes the google.rpc.Status, so `err.code` is the HTTP status (404) and
 * `err.message` the raw JSON body. An OAuth2Client made with `transporterOptions: { validateStatus: () => true }`
 * lets gax decode it: `err.code` 5, the plain message and `statusDetails`. Both are exercised below.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { crc32c } from '@node-rs/crc32';
import { OAuth2Client } from 'google-auth-library';
import { startTestStack, type TestStack } from '../helpers/stack.js';

process.env.METADATA_SERVER_DETECTION = 'none';

let s: TestStack;
let client: KeyManagementServiceClient;
/** The same client with an auth transport that leaves error decoding to gax, and minified JSON asked for. */
let decoding: KeyManagementServiceClient;
let project: string;

const crc = (b: Uint8Array) => crc32c(Buffer.from(b)) >>> 0;

before(async () => {
  s = await startTestStack();
  project = s.project;
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: await s.token(), expiry_date: Date.now() + 3_600_000 });
  client = new KeyManagementServiceClient({
    apiEndpoint: '127.0.0.1',
    port: s.server.port,
    protocol: 'http',
    fallback: true,
    // The client bundles its own google-auth-library; an OAuth2Client of the app's copy works as well.
    authClient: authClient as never,
  });
  const decodingAuth = new OAuth2Client({ transporterOptions: { validateStatus: () => true } });
  decodingAuth.setCredentials({ access_token: await s.token(), expiry_date: Date.now() + 3_600_000 });
  decoding = new KeyManagementServiceClient({
    apiEndpoint: '127.0.0.1',
    port: s.server.port,
    protocol: 'http',
    fallback: true,
    minifyJson: true,
    authClient: decodingAuth as never,
  });
});
after(async () => {
  await client?.close();
  await decoding?.close();
  await s?.stop();
});

test('the Node client round trip: key ring, key, versions, primary, encrypt/decrypt, disable, destroy/restore', async () => {
  const parent = client.locationPath(project, 'us-east1');
  const [ring] = await client.createKeyRing({ parent, keyRingId: 'node', keyRing: {} });
  assert.equal(ring.name, `${parent}/keyRings/node`);
  assert.ok(ring.createTime?.seconds, 'createTime is a Timestamp');

  const [key] = await client.createCryptoKey({
    parent: ring.name!,
    cryptoKeyId: 'k',
    cryptoKey: {
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
      labels: { team: 'node' },
    },
  });
  assert.equal(key.name, client.cryptoKeyPath(project, 'us-east1', 'node', 'k'));
  // Integers on the wire, decoded back to names by the client.
  assert.equal(key.purpose, 'ENCRYPT_DECRYPT');
  assert.equal(key.primary?.state, 'ENABLED');
  assert.equal(key.primary?.protectionLevel, 'SOFTWARE');
  assert.equal(key.versionTemplate?.algorithm, 'GOOGLE_SYMMETRIC_ENCRYPTION');

  const [got] = await client.getCryptoKey({ name: key.name! });
  assert.equal(got.primary?.name, `${key.name}/cryptoKeyVersions/1`);
  assert.deepEqual(got.labels, { team: 'node' });
  assert.equal(got.destroyScheduledDuration?.seconds, '2592000');

  const [keys] = await client.listCryptoKeys({ parent: ring.name! });
  assert.deepEqual(
    keys.map((k) => k.name),
    [key.name],
  );

  const [v2] = await client.createCryptoKeyVersion({ parent: key.name!, cryptoKeyVersion: {} });
  assert.equal(v2.name, `${key.name}/cryptoKeyVersions/2`);
  assert.equal(v2.state, 'ENABLED');
  const [promoted] = await client.updateCryptoKeyPrimaryVersion({ name: key.name!, cryptoKeyVersionId: '2' });
  assert.equal(promoted.primary?.name, v2.name);

  const plaintext = Buffer.from('hello from @google-cloud/kms');
  const aad = Buffer.from('node aad');
  const [enc] = await client.encrypt({
    name: key.name!,
    plaintext,
    plaintextCrc32c: { value: crc(plaintext) },
    additionalAuthenticatedData: aad,
    additionalAuthenticatedDataCrc32c: { value: crc(aad) },
  });
  assert.equal(enc.name, v2.name);
  assert.equal(enc.verifiedPlaintextCrc32c, true);
  assert.equal(enc.verifiedAdditionalAuthenticatedDataCrc32c, true);
  assert.equal(enc.protectionLevel, 'SOFTWARE');
  const ciphertext = Buffer.from(enc.ciphertext as Uint8Array);
  assert.equal(Number(enc.ciphertextCrc32c?.value), crc(ciphertext));

  const [dec] = await client.decrypt({
    name: key.name!,
    ciphertext,
    ciphertextCrc32c: { value: crc(ciphertext) },
    additionalAuthenticatedData: aad,
  });
  assert.equal(Buffer.from(dec.plaintext as Uint8Array).toString(), plaintext.toString());
  assert.equal(Number(dec.plaintextCrc32c?.value), crc(plaintext));
  assert.equal(dec.usedPrimary, true);

  // Encrypt on a version; then disable it and watch encrypt fail with FAILED_PRECONDITION (code 9).
  const [encV1] = await client.encrypt({
    name: `${key.name}/cryptoKeyVersions/1`,
    plaintext: Buffer.from('v1'),
  });
  assert.equal(encV1.name, `${key.name}/cryptoKeyVersions/1`);
  const [disabled] = await client.updateCryptoKeyVersion({
    cryptoKeyVersion: { name: `${key.name}/cryptoKeyVersions/1`, state: 'DISABLED' },
    updateMask: { paths: ['state'] },
  });
  assert.equal(disabled.state, 'DISABLED');
  await assert.rejects(
    decoding.decrypt({ name: key.name!, ciphertext: encV1.ciphertext }),
    (err: ClientError) => {
      assert.equal(err.code, 9, String(err.message));
      assert.equal(err.statusDetails?.[0]?.violations?.[0]?.type, 'KEY_DISABLED');
      assert.match(err.message ?? '', /is not enabled, current state is: DISABLED/);
      return true;
    },
  );

  const [scheduled] = await client.destroyCryptoKeyVersion({ name: `${key.name}/cryptoKeyVersions/1` });
  assert.equal(scheduled.state, 'DESTROY_SCHEDULED');
  assert.ok(scheduled.destroyTime?.seconds);
  const [restored] = await client.restoreCryptoKeyVersion({ name: `${key.name}/cryptoKeyVersions/1` });
  assert.equal(restored.state, 'DISABLED');
  assert.equal(restored.destroyTime, null);

  const [versions] = await client.listCryptoKeyVersions({ parent: key.name! });
  assert.deepEqual(
    versions.map((v) => [v.name?.split('/').pop(), v.state]),
    [
      ['1', 'DISABLED'],
      ['2', 'ENABLED'],
    ],
  );
});

interface ClientError {
  code?: number | string;
  message?: string;
  statusDetails?: { violations?: { type: string }[]; fieldViolations?: { field: string }[] }[];
}

test('errors surface as gRPC codes: NOT_FOUND is 5, ALREADY_EXISTS 6, INVALID_ARGUMENT 3', async () => {
  const missing = decoding.cryptoKeyPath(project, 'us-east1', 'node', 'missing');
  await assert.rejects(decoding.getCryptoKey({ name: missing }), (err: ClientError) => {
    assert.equal(err.code, 5, String(err.message));
    assert.equal(err.message, `${missing} not found.`);
    return true;
  });
  await assert.rejects(
    decoding.createKeyRing({
      parent: decoding.locationPath(project, 'us-east1'),
      keyRingId: 'node',
      keyRing: {},
    }),
    (err: ClientError) => err.code === 6,
  );
  const name = decoding.cryptoKeyPath(project, 'us-east1', 'node', 'k');
  await assert.rejects(
    decoding.encrypt({ name, plaintext: Buffer.from('x'), plaintextCrc32c: { value: 1 } }),
    (err: ClientError) => {
      assert.equal(err.code, 3, String(err.message));
      assert.equal(
        err.message,
        'The checksum in field plaintext_crc32c did not match the data in field plaintext.',
      );
      assert.equal(err.statusDetails?.[0]?.fieldViolations?.[0]?.field, 'plaintext_crc32c');
      return true;
    },
  );
  await assert.rejects(
    decoding.decrypt({ name, ciphertext: Buffer.from('not a ciphertext at all, just bytes') }),
    (err: ClientError) => err.code === 3 && /^Decryption failed/.test(err.message ?? ''),
  );
});

test('with the default transport the NOT_FOUND still reaches the caller (as HTTP 404 until gax decodes it)', async () => {
  const missing = client.cryptoKeyPath(project, 'us-east1', 'node', 'missing');
  await assert.rejects(client.getCryptoKey({ name: missing }), (err: ClientError) => {
    // gax fixed: code 5 and the plain message; gax 5.0.x + gaxios 7: code 404 and the JSON envelope as message.
    if (err.code === 5) assert.equal(err.message, `${missing} not found.`);
    else {
      assert.equal(err.code, 404, String(err.message));
      assert.equal(JSON.parse(err.message ?? '').error.status, 'NOT_FOUND');
    }
    return true;
  });
});
