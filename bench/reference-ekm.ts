/**
 * Reference EKM baseline: Google EKM wrap / unwrap and XKS encrypt, ops/s and p50/p99 latency at
 * concurrency 1 and 32, software and SoftHSM back ends. The EKM runs as its own process (`ekm:serve`),
 * the load comes from this one over plain HTTP on loopback with keep-alive. Prints a markdown table.
 *
 *   npx tsx bench/reference-ekm.ts            (OPENEKM_BENCH_SECONDS=3 per measurement by default)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Sha256 } from '@aws-crypto/sha256-js';
import { EkmAdmin } from '@openekm/reference-ekm/admin/admin';
import { findSoftHsmModule } from '@openekm/reference-ekm/config';
import { openKeyStore } from '@openekm/reference-ekm/keystore/open';
import { StateStore } from '@openekm/reference-ekm/state/state-store';
import { SignatureV4 } from '@smithy/signature-v4';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SECONDS = Number(process.env.OPENEKM_BENCH_SECONDS ?? 3);
const CONCURRENCY = [1, 32];

interface Operation {
  name: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

interface Row {
  backend: string;
  operation: string;
  concurrency: number;
  opsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
}

export async function benchReferenceEkm(): Promise<string> {
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const backend of ['software', 'softhsm'] as const) {
    if (backend === 'softhsm' && !findSoftHsmModule()) {
      notes.push('SoftHSM2 is not installed: softhsm rows skipped (apt-get install -y softhsm2).');
      continue;
    }
    rows.push(...(await benchBackend(backend)));
  }
  const table = [
    '| back end | operation | concurrency | ops/s | p50 ms | p99 ms | errors |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.operation} | ${r.concurrency} | ${Math.round(r.opsPerSecond)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`,
    ),
    ...notes.map((n) => `\n${n}`),
  ].join('\n');
  return table;
}

async function benchBackend(backend: 'software' | 'softhsm'): Promise<Row[]> {
  const root = mkdtempSync(join(tmpdir(), `openekm-bench-${backend}-`));
  const dataDir = join(root, 'ekm');
  const previousConf = process.env.SOFTHSM2_CONF;
  delete process.env.SOFTHSM2_CONF; // a private token under the data directory
  let child: ChildProcess | undefined;
  try {
    // Prepare keys and credentials with the admin API, then hand the data directory to the server process.
    const store = openKeyStore({ backend, dataDir, mode: 'local' });
    const admin = new EkmAdmin({
      state: new StateStore(dataDir),
      store,
      defaultPrincipal: 'bench@openekm.local',
      mode: 'local',
    });
    await admin.createKey('bench-key');
    const credential = await admin.createXksCredential('bench');
    await store.close();

    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwksFile = join(root, 'jwks.json');
    writeFileSync(
      jwksFile,
      JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256' }] }),
    );
    child = spawn(process.execPath, ['--import', 'tsx', 'reference-ekm/serve.ts'], {
      cwd: REPO,
      env: {
        ...process.env,
        OPENEKM_EKM_DATA_DIR: dataDir,
        OPENEKM_EKM_BACKEND: backend,
        OPENEKM_EKM_HTTP_PORT: '0',
        OPENEKM_EKM_HTTPS_PORT: '0',
        OPENEKM_EKM_TRUSTED_ISSUERS: JSON.stringify([{ issuer: 'https://bench.openekm.test', jwksFile }]),
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const info = await waitForServer(dataDir, child);
    const token = await new SignJWT({ email: 'bench@openekm.local' })
      .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
      .setIssuer('https://bench.openekm.test')
      .setAudience(info.httpUrl)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);

    const origin = new URL(info.httpUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const context = {
      accessReasonContext: { reason: 'CUSTOMER_INITIATED_ACCESS' },
      relativeResourceName: 'projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
    };
    const dataKey = Buffer.alloc(32, 7).toString('base64');
    const googleHeaders = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const wrapBody = JSON.stringify({ plaintext: dataKey, additionalContext: context });
    const wrapped = await send(agent, origin, {
      name: 'wrap',
      path: '/v0/keys/bench-key:wrap',
      headers: googleHeaders,
      body: wrapBody,
    });
    const wrappedBlob = (JSON.parse(wrapped.body) as { wrappedBlob: string }).wrappedBlob;

    const rows: Row[] = [];
    for (const concurrency of CONCURRENCY) {
      const xks = await signedXks(origin, credential, dataKey);
      const operations: Operation[] = [
        { name: 'Google EKM wrap', path: '/v0/keys/bench-key:wrap', headers: googleHeaders, body: wrapBody },
        {
          name: 'Google EKM unwrap',
          path: '/v0/keys/bench-key:unwrap',
          headers: googleHeaders,
          body: JSON.stringify({ wrappedBlob, additionalContext: context }),
        },
        xks,
      ];
      for (const operation of operations) {
        const result = await measure(agent, origin, operation, concurrency);
        rows.push({ backend, operation: operation.name, concurrency, ...result });
        process.stderr.write(
          `${backend} ${operation.name} c=${concurrency}: ${Math.round(result.opsPerSecond)} ops/s\n`,
        );
      }
    }
    agent.destroy();
    return rows;
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child?.once('exit', resolve));
    }
    if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previousConf;
    rmSync(root, { recursive: true, force: true });
  }
}

async function waitForServer(dataDir: string, child: ChildProcess): Promise<{ httpUrl: string }> {
  const path = join(dataDir, 'server.json');
  for (let i = 0; i < 600; i += 1) {
    if (child.exitCode !== null) throw new Error(`ekm:serve exited with status ${child.exitCode}`);
    if (existsSync(path)) {
      const info = JSON.parse(readFileSync(path, 'utf8')) as { pid: number; httpUrl: string };
      if (info.pid === child.pid) return info;
    }
    await sleep(50);
  }
  throw new Error('ekm:serve did not start within 30 s');
}

async function signedXks(
  origin: URL,
  credential: { accessKeyId: string; secretAccessKey: string },
  plaintext: string,
): Promise<Operation> {
  const path = '/bench/kms/xks/v1/keys/bench-key/encrypt';
  const body = JSON.stringify({
    requestMetadata: {
      awsPrincipalArn: 'arn:aws:iam::123456789012:user/bench',
      kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/bench',
      kmsOperation: 'GenerateDataKey',
      kmsRequestId: 'bench',
    },
    plaintext,
    encryptionAlgorithm: 'AES_GCM',
    additionalAuthenticatedData: Buffer.from('bench').toString('base64'),
  });
  const signer = new SignatureV4({
    service: 'kms-xks-proxy',
    region: 'us-east-1',
    credentials: credential,
    sha256: Sha256,
    applyChecksum: false,
  });
  const signed = await signer.sign({
    method: 'POST',
    protocol: 'http:',
    hostname: origin.hostname,
    port: Number(origin.port),
    path,
    query: {},
    headers: { host: origin.host, 'content-type': 'application/json' },
    body,
  });
  // One signature replayed for the whole run: valid for 5 minutes, as SigV4 allows.
  return { name: 'XKS encrypt', path, headers: signed.headers as Record<string, string>, body };
}

function send(agent: Agent, origin: URL, op: Operation): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: origin.hostname,
        port: origin.port,
        method: 'POST',
        path: op.path,
        headers: { ...op.headers, 'content-length': Buffer.byteLength(op.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(op.body);
  });
}

async function measure(agent: Agent, origin: URL, op: Operation, concurrency: number) {
  const warmupEnd = performance.now() + 500;
  const end = warmupEnd + SECONDS * 1000;
  const latencies: number[] = [];
  let errors = 0;
  const worker = async () => {
    for (;;) {
      const started = performance.now();
      if (started >= end) return;
      const res = await send(agent, origin, op);
      const done = performance.now();
      if (started < warmupEnd) continue;
      if (res.status !== 200) errors += 1;
      latencies.push(done - started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return { opsPerSecond: latencies.length / SECONDS, p50: at(0.5), p99: at(0.99), errors };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchReferenceEkm().then(
    (table) => process.stdout.write(`${table}\n`),
    (error: unknown) => {
      process.stderr.write(`${(error as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
