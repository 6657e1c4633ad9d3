import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Sha256 } from '@aws-crypto/sha256-js';
import { type ReferenceEkm, type ReferenceEkmOptions, startReferenceEkm } from '@openekm/reference-ekm';
import { findSoftHsmModule } from '@openekm/reference-ekm/config';
import { SignatureV4 } from '@smithy/signature-v4';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { skipWithout } from '../../scripts/lib/system-packages.js';

export type Backend = 'software' | 'softhsm';

/**
 * A private temporary directory for one test file, with its own SoftHSM2 configuration and token
 * directory (SOFTHSM2_CONF is per process, and node:test runs each file in its own process).
 */
export function testDirs(name: string): { root: string; dataDir: (n: string) => string; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), `openekm-ekm-${name}-`));
  const tokens = join(root, 'softhsm-tokens');
  mkdirSync(tokens);
  const conf = join(root, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
  );
  process.env.SOFTHSM2_CONF = conf;
  return {
    root,
    dataDir: (n) => join(root, n),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * The `skip` option for a SoftHSM test: the reason (package and install command) when SoftHSM2 is missing outside
 * CI, else false. The test runner prints one loud line for it; in CI the test runs and requireSoftHsm fails it.
 */
export function skipWithoutSoftHsm(backend: Backend): string | false {
  return backend === 'softhsm' && skipWithout('softhsm2');
}

/** Fails when SoftHSM2 is missing (in CI, where nothing is skipped, its absence is a broken setup). */
export function requireSoftHsm(backend: Backend): void {
  if (backend === 'softhsm' && !findSoftHsmModule()) {
    throw new Error('SoftHSM2 is not installed (libsofthsm2.so not found): run apt-get install -y softhsm2');
  }
}

const ISSUER = 'https://issuer.openekm.test';
export const GATEWAY = 'gateway@openekm.local';

/** A token issuer with a JWKS file, plus a stranger key (same kid) for bad-signature tests. */
export async function createIssuer(dir: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const stranger = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'test-key-1', alg: 'ES256', use: 'sig' };
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const sign = async (
    claims: JWTPayload & { email?: string },
    options: {
      key?: 'issuer' | 'stranger';
      iss?: string;
      aud?: string;
      expSecondsFromNow?: number;
      nbfSecondsFromNow?: number;
    } = {},
  ) => {
    const now = Math.floor(Date.now() / 1000);
    // As a real issuer (Google for a service account) asserts: the email is verified unless the test says not.
    const jwt = new SignJWT(claims.email === undefined ? { ...claims } : { email_verified: true, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'test-key-1', typ: 'JWT' })
      .setIssuer(options.iss ?? ISSUER)
      .setIssuedAt(now - 5)
      .setExpirationTime(now + (options.expSecondsFromNow ?? 300));
    if (options.aud) jwt.setAudience(options.aud);
    if (options.nbfSecondsFromNow !== undefined) jwt.setNotBefore(now + options.nbfSecondsFromNow);
    return jwt.sign(options.key === 'stranger' ? stranger.privateKey : privateKey);
  };
  return { jwksFile, trustedIssuer: { issuer: ISSUER, jwksFile }, sign };
}

export interface TestEkm {
  ekm: ReferenceEkm;
  logs: string[];
  /** Resolves when a log line matching `predicate` is written. */
  waitForLog(predicate: (entry: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

export async function startTestEkm(
  options: Omit<ReferenceEkmOptions, 'log' | 'httpPort' | 'httpsPort'> & {
    httpPort?: number;
    httpsPort?: number;
  },
): Promise<TestEkm> {
  const logs: string[] = [];
  const waiters: Array<{
    predicate: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
  }> = [];
  const ekm = await startReferenceEkm({
    mode: 'test',
    httpPort: 0,
    httpsPort: 0,
    // one token per data directory: each data directory keeps its own token PINs
    // one local CA per test file (generating RSA keys costs about a second)
    tls: { dir: join(dirname(options.dataDir), 'tls') },
    pkcs11: { tokenLabel: `t-${createHash('sha256').update(options.dataDir).digest('hex').slice(0, 16)}` },
    ...options,
    log: (line) => {
      logs.push(line);
      const entry = JSON.parse(line) as Record<string, unknown>;
      for (const waiter of [...waiters]) {
        if (waiter.predicate(entry)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(entry);
        }
      }
    },
  });
  return {
    ekm,
    logs,
    waitForLog: (predicate) => {
      const seen = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ predicate, resolve }));
    },
  };
}

export interface HttpResult {
  status: number;
  text: string;
  json: Record<string, unknown>;
  headers: Headers;
}

export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return toResult(response);
}

async function toResult(response: Response): Promise<HttpResult> {
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    json = {};
  }
  return { status: response.status, text, json, headers: response.headers };
}

export interface XksCredentialForTest {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Signs like KMS does: SigV4, service kms-xks-proxy, headers content-type;host;x-amz-date. */
export async function xksPost(
  url: string,
  body: unknown,
  credential: XksCredentialForTest,
  options: { signingDate?: Date; region?: string; tamper?: (body: string) => string; method?: string } = {},
): Promise<HttpResult> {
  const target = new URL(url);
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  const signer = new SignatureV4({
    service: 'kms-xks-proxy',
    region: options.region ?? 'us-east-1',
    credentials: credential,
    sha256: Sha256,
    applyChecksum: false,
  });
  const signed = await signer.sign(
    {
      method: options.method ?? 'POST',
      protocol: 'http:',
      hostname: target.hostname,
      port: Number(target.port),
      path: target.pathname,
      query: {},
      headers: { host: target.host, 'content-type': 'application/json' },
      body: payload,
    },
    { signingDate: options.signingDate ?? new Date() },
  );
  const headers = { ...signed.headers } as Record<string, string>;
  delete headers.host;
  const response = await fetch(url, {
    method: options.method ?? 'POST',
    headers,
    body: options.method === 'GET' ? undefined : (options.tamper ?? ((b) => b))(payload),
  });
  return toResult(response);
}

export function requestMetadata(kmsOperation = 'Encrypt', extra: Record<string, string> = {}) {
  return {
    awsPrincipalArn: 'arn:aws:iam::123456789012:user/Alice',
    kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    kmsOperation,
    kmsRequestId: '5112f4d6-db54-4af4-ae30-c55a22a8dfae',
    ...extra,
  };
}

export const b64 = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s).toString('base64');
