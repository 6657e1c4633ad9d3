/**
 * All sixteen Cloud EKM error domains against the real reference EKM (fault injection), an injected resolver,
 * a closed loopback port, untrusted and mis-pinned TLS, and a small misbehaving XKS proxy: the exact answer
 * (FAILED_PRECONDITION, the version's state, then the domain; DECRYPTION_FAILED as INVALID_ARGUMENT), retries of
 * the retriable domains inside the deadline and a single call for the others.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseCiphertext } from '../../shared/crypto/ciphertext.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import {
  assertBland,
  assertEkmError,
  b64,
  ekmCallsDuring,
  ekmRequests,
  externalCryptoKey,
  externalKey,
  gatewayLines,
  keyRing,
  nameOf,
  waitFor,
} from './ext-helpers.js';

const NOWHERE = 'ekm.nowhere.openekm.test';
let s: TestStack;
let ring: string;
let closedPort: number;
let fakeXks: Server;
let fakeXksUrl: string;
let fakeMode: 'cdiv' | 'length' = 'cdiv';
const lookups: string[] = [];

/** The injected resolver: every name fails as if it did not exist. No real resolver is ever asked. */
const lookup: LookupFunction = (hostname, _options, callback) => {
  lookups.push(hostname);
  const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
    code: 'ENOTFOUND',
    hostname,
  });
  process.nextTick(() => (callback as (e: Error) => void)(err));
};

/** An XKS proxy that answers metadata correctly and encrypt with a broken integrity value or sizes. */
function startFakeXks(): Promise<Server> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.endsWith('/metadata')) {
        res.end(
          JSON.stringify({ keySpec: 'AES_256', keyUsage: ['ENCRYPT', 'DECRYPT'], keyStatus: 'ENABLED' }),
        );
        return;
      }
      const plaintext = Buffer.from(JSON.parse(body).plaintext ?? '', 'base64');
      res.end(
        JSON.stringify({
          ciphertext: Buffer.alloc(plaintext.length + (fakeMode === 'length' ? 1 : 0), 1).toString('base64'),
          initializationVector: Buffer.alloc(12, 2).toString('base64'),
          authenticationTag: Buffer.alloc(16, 3).toString('base64'),
          ciphertextDataIntegrityValue: Buffer.alloc(32, 4).toString('base64'),
        }),
      );
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

before(async () => {
  closedPort = await freePort();
  fakeXks = await startFakeXks();
  fakeXksUrl = `http://127.0.0.1:${(fakeXks.address() as AddressInfo).port}`;
  process.env.TEST_FAKE_XKS_ID = 'AKIAFAKEXKSPROXY2345';
  process.env.TEST_FAKE_XKS_SECRET = 'fakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake';
  s = await startTestStack({
    ekm: true,
    // Attempts of 500 ms (not 150): on a busy machine a slow but real answer (429, 503, reset) must not turn
    // into TIMEOUT; hang and 1.5 s latency still exceed it, and a 1-2 s deadline still allows retries.
    ekmTimeoutMs: 500,
    ekmTransport: { lookup },
    ekmEndpoints: (declared, local) => {
      const https = local.ekm.httpsUrl;
      // The right pin is the EKM's real leaf certificate.
      const leaf = new X509Certificate(readFileSync(join(dirname(local.ekm.caCertPath), 'server.pem')));
      return [
        ...declared,
        { prefix: `https://${NOWHERE}/v0/keys/`, protocol: 'google-ekm-v0' },
        { prefix: `http://127.0.0.1:${closedPort}/v0/keys/`, protocol: 'google-ekm-v0' },
        { prefix: `${https}/v0/keys/noca/`, protocol: 'google-ekm-v0' },
        {
          prefix: `${https}/v0/keys/pinned-wrong/`,
          protocol: 'google-ekm-v0',
          tls: { pinnedCertSha256: ['AB'.repeat(32)] },
        },
        {
          prefix: `${https}/v0/keys/pinned-right/`,
          protocol: 'google-ekm-v0',
          tls: { pinnedCertSha256: [leaf.fingerprint256] },
        },
        {
          prefix: `${fakeXksUrl}/fake/kms/xks/v1/keys/`,
          protocol: 'aws-xks-v1',
          auth: {
            type: 'sigv4',
            accessKeyId: { env: 'TEST_FAKE_XKS_ID' },
            secretAccessKey: { env: 'TEST_FAKE_XKS_SECRET' },
          },
        },
      ];
    },
  });
  ring = await keyRing(s, 'domains');
});
after(async () => {
  await s.stop();
  await new Promise<void>((r) => fakeXks.close(() => r()));
});

async function createVersion(keyPath: string, uri: string) {
  return s.call('POST', `${keyPath}/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: uri },
  });
}

describe('domains found before or while connecting (version create)', () => {
  test('EXTERNAL_KEY_HOST_NOT_WHITELISTED and EXTERNAL_KEY_URI_INVALID', async () => {
    const key = await externalCryptoKey(s, ring, 'uri-domains');
    const outside = 'https://127.0.0.1:1/v0/keys/k';
    assertEkmError(
      await createVersion(key, outside),
      'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
      nameOf(key),
      outside,
    );
    const invalid = `${s.ekm!.keyUri('x', 'xks').slice(0, -1)}no/slash`;
    assertEkmError(await createVersion(key, invalid), 'EXTERNAL_KEY_URI_INVALID', nameOf(key), invalid);
  });

  test('DNS: a declared host that resolves nowhere (injected resolver)', async () => {
    const key = await externalCryptoKey(s, ring, 'dns');
    const uri = `https://${NOWHERE}/v0/keys/k1`;
    const res = await createVersion(key, uri);
    assertEkmError(res, 'DNS', nameOf(key), uri);
    assert.ok(lookups.includes(NOWHERE), 'the injected resolver was asked');
    assert.ok(
      lookups.every((h) => h === NOWHERE),
      `only the made-up name was looked up: ${lookups}`,
    );
  });

  test('UNREACHABLE_NETWORK: a declared endpoint on a closed loopback port, retried inside the deadline', async () => {
    const key = await externalCryptoKey(s, ring, 'closed');
    const uri = `http://127.0.0.1:${closedPort}/v0/keys/k1`;
    const res = await s.call(
      'POST',
      `${key}/cryptoKeyVersions`,
      { externalProtectionLevelOptions: { externalKeyUri: uri } },
      { headers: { 'X-Server-Timeout': '1' } },
    );
    assertEkmError(res, 'UNREACHABLE_NETWORK', nameOf(key), uri);
  });

  test('TLS_CERT: an HTTPS endpoint declared without its CA, and a pin that does not match', async () => {
    const key = await externalCryptoKey(s, ring, 'tls');
    const https = s.ekm!.ekm.httpsUrl;
    await s.ekm!.ekm.admin.createKey('tls-k');
    for (const uri of [`${https}/v0/keys/noca/tls-k`, `${https}/v0/keys/pinned-wrong/tls-k`]) {
      const { calls } = await ekmCallsDuring(s, 'tls-k', async () =>
        assertEkmError(await createVersion(key, uri), 'TLS_CERT', nameOf(key), uri),
      );
      assert.equal(calls.length, 0, 'no request reached the EKM');
    }
    // The right pin connects (and the EKM, which has no key under that path, says so).
    const right = `${https}/v0/keys/pinned-right/tls-k`;
    assertEkmError(await createVersion(key, right), 'EXTERNAL_NOT_FOUND', nameOf(key), right);
  });

  test('UNEXPECTED_RESPONSE: an XKS answer whose ciphertextDataIntegrityValue or sizes do not match', async () => {
    const uri = `${fakeXksUrl}/fake/kms/xks/v1/keys/fake-key`;
    const { key, version } = await externalKey(s, ring, 'fake-xks', uri);
    fakeMode = 'cdiv';
    const res = await s.call('POST', `${key}:encrypt`, { plaintext: b64('x') });
    assertEkmError(res, 'UNEXPECTED_RESPONSE', version, uri);
    fakeMode = 'length';
    assertEkmError(
      await s.call('POST', `${key}:encrypt`, { plaintext: b64('x') }),
      'UNEXPECTED_RESPONSE',
      version,
      uri,
    );
    const warn = gatewayLines(s).find(
      (l) => l.errorDomain === 'UNEXPECTED_RESPONSE' && /IntegrityValue/.test(l.detail),
    );
    assert.ok(warn, 'the log says which check failed');
  });
});

type Protocol = 'google' | 'xks';
interface FaultCase {
  fault: { kind: 'status' | 'hang' | 'reset' | 'garbage' | 'latency'; value?: number };
  domain: string;
  retriable: boolean;
  protocols: Protocol[];
}

const CASES: FaultCase[] = [
  {
    fault: { kind: 'status', value: 429 },
    domain: 'EXTERNAL_RESOURCE_EXHAUSTED',
    retriable: true,
    protocols: ['google', 'xks'],
  },
  { fault: { kind: 'status', value: 503 }, domain: 'OVERLOADED_EKM', retriable: true, protocols: ['google'] },
  // XKS names 503 DependencyTimeoutException: the HSM behind the proxy timed out.
  { fault: { kind: 'status', value: 503 }, domain: 'TIMEOUT', retriable: true, protocols: ['xks'] },
  { fault: { kind: 'status', value: 504 }, domain: 'TIMEOUT', retriable: true, protocols: ['google'] },
  { fault: { kind: 'reset' }, domain: 'UNREACHABLE_NETWORK', retriable: true, protocols: ['google', 'xks'] },
  { fault: { kind: 'hang' }, domain: 'TIMEOUT', retriable: true, protocols: ['google', 'xks'] },
  { fault: { kind: 'latency', value: 1500 }, domain: 'TIMEOUT', retriable: true, protocols: ['google'] },
  {
    fault: { kind: 'status', value: 500 },
    domain: 'EXTERNAL_SERVER_ERROR',
    retriable: false,
    protocols: ['google', 'xks'],
  },
  {
    fault: { kind: 'status', value: 501 },
    domain: 'EXTERNAL_NOT_IMPLEMENTED',
    retriable: false,
    protocols: ['google', 'xks'],
  },
  {
    fault: { kind: 'status', value: 400 },
    domain: 'UNEXPECTED_ERROR',
    retriable: false,
    protocols: ['google', 'xks'],
  },
  {
    fault: { kind: 'status', value: 404 },
    domain: 'EXTERNAL_NOT_FOUND',
    retriable: false,
    protocols: ['google', 'xks'],
  },
  {
    fault: { kind: 'status', value: 403 },
    domain: 'EXTERNAL_PERMISSION_DENIED',
    retriable: false,
    protocols: ['google', 'xks'],
  },
  {
    fault: { kind: 'garbage' },
    domain: 'UNEXPECTED_RESPONSE',
    retriable: false,
    protocols: ['google', 'xks'],
  },
];

interface Prepared {
  c: FaultCase;
  protocol: Protocol;
  keyId: string;
  uri: string;
  key: string;
  version: string;
  ciphertext: string;
}

async function prepare(c: FaultCase, protocol: Protocol): Promise<Prepared> {
  const keyId = `f-${protocol}-${c.fault.kind}${c.fault.value ?? ''}-${c.domain.toLowerCase().replace(/_/g, '')}`;
  await s.ekm!.ekm.admin.createKey(keyId);
  const uri = s.ekm!.keyUri(keyId, protocol, 'http');
  const { key, version } = await externalKey(s, ring, keyId, uri);
  const enc = await s.call('POST', `${key}:encrypt`, { plaintext: b64('domains') });
  assert.equal(enc.status, 200, JSON.stringify(enc.json));
  return { c, protocol, keyId, uri, key, version, ciphertext: enc.json.ciphertext };
}

async function runCase(p: Prepared, op: 'encrypt' | 'decrypt', timeout: string) {
  const { calls } = await ekmCallsDuring(s, p.keyId, async () => {
    const res =
      op === 'encrypt'
        ? await s.call(
            'POST',
            `${p.key}:encrypt`,
            { plaintext: b64('x') },
            { headers: { 'X-Server-Timeout': timeout } },
          )
        : await s.call(
            'POST',
            `${p.key}:decrypt`,
            { ciphertext: p.ciphertext },
            { headers: { 'X-Server-Timeout': timeout } },
          );
    if (op === 'decrypt' && p.c.fault.value === 400 && p.protocol === 'google') {
      // A Google EKM's 400 on unwrap means it could not unwrap this blob: DECRYPTION_FAILED, the bland answer.
      // (XKS names that case InvalidCiphertextException; its 400 ValidationException stays UNEXPECTED_ERROR.)
      assertBland(res);
      return;
    }
    assertEkmError(res, p.c.domain, p.version, p.uri);
    // A refusal of OpenEKM's identity disables the version: the violation reports the state after that, and how
    // to recover; every other domain leaves the version as it was.
    assert.match(
      res.json.error.details[0].violations[0].description,
      p.c.domain === 'EXTERNAL_PERMISSION_DENIED'
        ? /^The key version's state is DISABLED \(disabled now, because the EKM refused OpenEKM\)\. .*enable it again/
        : /^The key version's state is ENABLED\.$/,
    );
  });
  return calls;
}

describe('domains from the EKM answer (fault injection), on encrypt and decrypt', () => {
  const prepared: Prepared[] = [];

  before(async () => {
    for (const c of CASES) for (const protocol of c.protocols) prepared.push(await prepare(c, protocol));
    for (const p of prepared) {
      await s.ekm!.ekm.admin.setFault({ target: p.keyId, ...p.c.fault, rate: 1 });
    }
  });
  after(() => s.ekm!.ekm.admin.clearFaults());

  test('retriable domains are retried inside the deadline, and the request answers', async () => {
    const retriable = prepared.filter((p) => p.c.retriable);
    const results = await Promise.all(
      retriable.map(async (p) => ({ p, calls: await runCase(p, 'encrypt', '2') })),
    );
    for (const { p, calls } of results) {
      if (p.c.fault.kind === 'latency') {
        // The EKM logs a slow request when its delay ends, after the gateway gave up on it.
        await waitFor(`${p.keyId}: retries`, () => ekmRequests(s, p.keyId).length >= 3);
      } else {
        assert.ok(calls.length >= 2, `${p.keyId}: ${calls.length} EKM calls, expected retries`);
      }
    }
    // Decrypt takes the same path.
    const sample = retriable.filter(
      (p) =>
        (p.c.fault.kind === 'reset' && p.protocol === 'google') ||
        (p.c.fault.value === 429 && p.protocol === 'xks'),
    );
    for (const p of sample) {
      const calls = await runCase(p, 'decrypt', '1');
      assert.ok(calls.length >= 2, `${p.keyId}: decrypt retried`);
    }
  });

  test('the other domains get exactly one EKM call', async () => {
    for (const p of prepared.filter((x) => !x.c.retriable)) {
      for (const op of ['encrypt', 'decrypt'] as const) {
        const calls = await runCase(p, op, '10');
        assert.equal(calls.length, 1, `${p.keyId} ${op}: ${calls.length} EKM calls`);
        if (p.c.domain === 'EXTERNAL_PERMISSION_DENIED') {
          // A refusal of our identity disables the version (as Cloud EKM does); enable it for the next op.
          const got = await s.call('GET', `/v1/${p.version}`);
          assert.equal(got.json.state, 'DISABLED');
          await s.call('PATCH', `/v1/${p.version}?updateMask=state`, { state: 'ENABLED' });
        }
      }
    }
  });

  test('after the faults clear, every key works again', async () => {
    await s.ekm!.ekm.admin.clearFaults();
    for (const p of prepared) {
      const res = await s.call('POST', `${p.key}:decrypt`, { ciphertext: p.ciphertext });
      assert.equal(res.status, 200, `${p.keyId}: ${JSON.stringify(res.json)}`);
    }
  });
});

describe('retries', () => {
  test('a retriable fault on every second request: every request succeeds, faulted ones with one retry', async () => {
    const keyId = 'half-503';
    await s.ekm!.ekm.admin.createKey(keyId);
    const { key } = await externalKey(s, ring, keyId, s.ekm!.keyUri(keyId, 'google', 'http'));
    await s.ekm!.ekm.admin.setFault({ target: keyId, kind: 'status', value: 503, rate: 0.5 });
    const perRequest: number[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const { calls } = await ekmCallsDuring(s, keyId, async () => {
          const res = await s.call('POST', `${key}:encrypt`, { plaintext: b64(`r${i}`) });
          assert.equal(res.status, 200, JSON.stringify(res.json));
        });
        assert.equal(calls[calls.length - 1]!.status, 200);
        assert.ok(calls.slice(0, -1).every((c) => c.status === 503));
        perRequest.push(calls.length);
      }
    } finally {
      await s.ekm!.ekm.admin.clearFaults();
    }
    assert.ok(
      perRequest.every((n) => n === 1 || n === 2),
      `${perRequest}`,
    );
    assert.ok(perRequest.filter((n) => n === 2).length >= 3, `${perRequest}`);
  });
});

describe('the remaining domains', () => {
  test('DECRYPTION_FAILED: a tampered key-protection block is INVALID_ARGUMENT, not FAILED_PRECONDITION', async () => {
    for (const protocol of ['google', 'xks'] as const) {
      const keyId = `tamper-${protocol}`;
      await s.ekm!.ekm.admin.createKey(keyId);
      const { key, version } = await externalKey(s, ring, keyId, s.ekm!.keyUri(keyId, protocol, 'http'));
      const enc = await s.call('POST', `${key}:encrypt`, { plaintext: b64('tamper') });
      const ct = Buffer.from(enc.json.ciphertext, 'base64');
      const parsed = parseCiphertext(ct);
      const at = 8 + parsed.keyBlock.length - 1; // the last byte of the EKM's block
      ct[at]! ^= 0x40;
      const { calls } = await ekmCallsDuring(s, keyId, async () =>
        assertBland(await s.call('POST', `${key}:decrypt`, { ciphertext: b64(ct) })),
      );
      assert.equal(calls.length, 1, 'the EKM refused the unwrap once');
      assert.equal(calls[0]!.status, 400);
      const warn = gatewayLines(s).find(
        (l) => l.errorDomain === 'DECRYPTION_FAILED' && l.version === version,
      );
      assert.ok(warn, 'the domain is in the log');
      assert.equal((await s.call('GET', `/v1/${version}`)).json.state, 'ENABLED');
    }
  });

  test('REQUEST_CANCELLED: a client that goes away cancels the EKM call; the log says so; nothing crashes', async () => {
    const keyId = 'cancelled';
    await s.ekm!.ekm.admin.createKey(keyId);
    const { key } = await externalKey(s, ring, keyId, s.ekm!.keyUri(keyId, 'google', 'http'));
    await s.ekm!.ekm.admin.setFault({ target: keyId, kind: 'hang', rate: 1 });
    const token = await s.token();
    const controller = new AbortController();
    const before = ekmRequests(s, keyId).length;
    const pending = fetch(`${s.url}${key}:encrypt`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'x-request-id': 'cancel-me',
      },
      body: JSON.stringify({ plaintext: b64('never') }),
      signal: controller.signal,
    });
    await waitFor('the EKM call', () => ekmRequests(s, keyId).length > before);
    controller.abort();
    await assert.rejects(pending);
    await waitFor('the request log line', () =>
      gatewayLines(s).some((l) => l.requestId === 'cancel-me' && l.httpRequest),
    );
    const lines = gatewayLines(s).filter((l) => l.requestId === 'cancel-me');
    const request = lines.find((l) => l.httpRequest)!;
    assert.equal(request.httpRequest.status, 499, JSON.stringify(request));
    assert.equal(request.errorCode, 'CANCELLED');
    await waitFor('the EKM failure line', () =>
      gatewayLines(s).some((l) => l.requestId === 'cancel-me' && l.errorDomain === 'REQUEST_CANCELLED'),
    );
    // No more attempts after the cancellation.
    const after = ekmRequests(s, keyId).length;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(ekmRequests(s, keyId).length, after, 'no attempt after the client went away');
    await s.ekm!.ekm.admin.clearFaults();
    const ok = await s.call('POST', `${key}:encrypt`, { plaintext: b64('still here') });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
  });
});
