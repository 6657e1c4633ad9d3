/**
 * The EXTERNAL half of `npm run bench`: the gateway's EXTERNAL encrypt / decrypt and the reference EKM's direct
 * wrap / unwrap (Google EKM v0) and encrypt / decrypt (AWS XKS v1), at concurrency 1 and 32, against the same
 * EKM instance the running local stack started (it runs inside the stack process, on the ports the bench gave
 * it), so both sides are measured in one process tree and one run.
 *
 * Setup goes through the running stack: an EKM key made with the CLI (`npm run --silent ekm -- keys create`) in
 * the stack's state directory, EXTERNAL keys and versions created through the API. The direct side sends the
 * same request bodies the gateway sends (a 64-byte sealed data key, the version's name as context), with the
 * gateway's own credentials from the state directory: a JWT signed by the gateway signing key for Google EKM,
 * a SigV4 signature with the gateway's XKS credential (signed once per measurement and replayed, as SigV4 allows
 * for five minutes). All of it over HTTPS on 127.0.0.1, as the gateway calls it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { importJWK, type JWK, SignJWT } from 'jose';
import { LOCAL_XKS_PREFIX, localEkmIdentity } from '../scripts/lib/local-ekm.js';
import { LOCAL_GATEWAY_ISSUER } from '../scripts/lib/local-state.js';
import {
  api,
  type EkmAttemptCounts,
  type LoadResult,
  type LoadSpec,
  measure,
  ROOT,
  track,
} from './gateway.js';

export const TARGET_EXTERNAL_ENCRYPT_OPS = 1800;
export const TARGET_THROUGHPUT_RATIO = 0.5;
export const TARGET_ADDED_P50_MS = 2;
export const TARGET_P99_MS = 150;
export const TARGET_CPU_RATIO = 1.5;
export const TARGET_GOODPUT = 0.8;
export const TARGET_AMPLIFICATION = 1.1;
export const OVERLOAD_CONNECTIONS = 128;

const EKM_KEY_ID = 'bench-ext';
/** What the gateway wraps: salt 16 ‖ sealed data key 32 ‖ tag 16 (docs/ciphertext-format.md). */
const SEALED_DEK_BYTES = 64;

export type Protocol = 'google' | 'xks';
export const PROTOCOLS: Protocol[] = ['google', 'xks'];
const PROTOCOL_NAME: Record<Protocol, string> = { google: 'Google EKM v0', xks: 'AWS XKS v1' };

/** Measurement ids for BENCH_PICK: ext-{google|xks}-{encrypt|decrypt|wrap|unwrap}{1|32}. */
export function externalIds(): string[] {
  const ids: string[] = [];
  for (const p of PROTOCOLS)
    for (const op of ['encrypt', 'decrypt', 'wrap', 'unwrap'])
      for (const c of [1, 32]) ids.push(`ext-${p}-${op}${c}`);
  return ids;
}

export interface ExternalMeasurement {
  id: string;
  what: string;
  result: LoadResult;
  /** The gateway's EKM attempts during the measurement (gateway rows only). */
  ekm?: EkmAttemptCounts;
}

interface Options {
  stackUrl: string;
  stackPid: number;
  /** The stack's EKM attempt counters (RunningStack.ekmAttempts). */
  ekmAttempts: () => EkmAttemptCounts;
  stateDir: string;
  ekmHttpsPort: number;
  token: string;
  ring: string;
  plaintext: string;
  durationS: number;
  warmupS: number;
  maxRequests: number;
  pick?: string[];
  log: (line: string) => void;
}

async function ekmCli(stateDir: string, args: string[]): Promise<string> {
  const child = track(
    spawn('npm', ['run', '--silent', 'ekm', '--', ...args], {
      cwd: ROOT,
      env: { ...process.env, OPENEKM_STATE_DIR: stateDir, OPENEKM_EKM_DATA_DIR: join(stateDir, 'ekm') },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`npm run ekm -- ${args.join(' ')} failed (${code}): ${out.slice(0, 500)}`);
  return out.trim();
}

/** One HTTPS POST to the EKM (setup only), trusting the local CA. */
function post(
  url: string,
  ca: Buffer,
  headers: Record<string, string>,
  body: string,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', ca, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) reject(new Error(`POST ${url} answered ${res.statusCode}: ${text}`));
          else resolve(JSON.parse(text) as Record<string, unknown>);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function benchExternal(o: Options): Promise<ExternalMeasurement[]> {
  const want = (id: string) => !o.pick || o.pick.includes(id);
  const ekmOrigin = `https://127.0.0.1:${o.ekmHttpsPort}`;
  const ekmInfo = JSON.parse(readFileSync(join(o.stateDir, 'ekm', 'server.json'), 'utf8')) as {
    httpsUrl: string;
    caCertPath: string;
  };
  if (ekmInfo.httpsUrl !== ekmOrigin)
    throw new Error(`the stack's EKM listens on ${ekmInfo.httpsUrl}, expected ${ekmOrigin}`);
  const ca = readFileSync(ekmInfo.caCertPath);

  o.log(`EXTERNAL setup: EKM key ${EKM_KEY_ID} (CLI), EXTERNAL keys and versions (API) …`);
  await ekmCli(o.stateDir, ['keys', 'create', EKM_KEY_ID]);
  // The gateway calls the EKM as this project's own identity (docs/security.md): grant it the key, as a partner
  // grants a key to one project.
  const identity = localEkmIdentity(o.ring.split('/')[1]!);
  await ekmCli(o.stateDir, ['access', 'grant', EKM_KEY_ID, identity]);
  const uris: Record<Protocol, string> = {
    google: `${ekmOrigin}/v0/keys/${EKM_KEY_ID}`,
    xks: `${ekmOrigin}/${LOCAL_XKS_PREFIX}/kms/xks/v1/keys/${EKM_KEY_ID}`,
  };

  // Gateway side: an EXTERNAL key per protocol, its version 1 primary, one round trip.
  const gateway: Record<Protocol, { keyName: string; versionName: string; ciphertext: string }> = {
    google: { keyName: '', versionName: '', ciphertext: '' },
    xks: { keyName: '', versionName: '', ciphertext: '' },
  };
  for (const p of PROTOCOLS) {
    const keyId = `ext-${p}`;
    const keyName = `${o.ring}/cryptoKeys/${keyId}`;
    await api(
      o.stackUrl,
      'POST',
      `/v1/${o.ring}/cryptoKeys?cryptoKeyId=${keyId}&skipInitialVersionCreation=true`,
      o.token,
      {
        purpose: 'ENCRYPT_DECRYPT',
        versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
      },
    );
    const version = await api(o.stackUrl, 'POST', `/v1/${keyName}/cryptoKeyVersions`, o.token, {
      externalProtectionLevelOptions: { externalKeyUri: uris[p] },
    });
    const versionName = String(version.name);
    const key = await api(o.stackUrl, 'GET', `/v1/${keyName}`, o.token);
    if (!key.primary) {
      await api(o.stackUrl, 'POST', `/v1/${keyName}:updatePrimaryVersion`, o.token, {
        cryptoKeyVersionId: versionName.split('/').pop(),
      });
    }
    const enc = await api(o.stackUrl, 'POST', `/v1/${keyName}:encrypt`, o.token, { plaintext: o.plaintext });
    const dec = await api(o.stackUrl, 'POST', `/v1/${keyName}:decrypt`, o.token, {
      ciphertext: enc.ciphertext,
    });
    if (dec.plaintext !== o.plaintext)
      throw new Error(`the ${p} EXTERNAL round trip did not return the plaintext`);
    gateway[p] = { keyName, versionName, ciphertext: String(enc.ciphertext) };
  }

  // Direct side: the gateway's own credentials, the bodies the gateway sends.
  const signingKeys = JSON.parse(readFileSync(join(o.stateDir, 'gateway-signing-keys.json'), 'utf8')) as {
    keys: JWK[];
  };
  const jwk = signingKeys.keys[0]!;
  const jwt = await new SignJWT({ email: identity, email_verified: true })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid!, typ: 'JWT' })
    .setIssuer(LOCAL_GATEWAY_ISSUER)
    .setSubject(identity)
    .setAudience(ekmOrigin)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(await importJWK(jwk, 'ES256'));
  const sealedDek = Buffer.alloc(SEALED_DEK_BYTES, 0x3c).toString('base64');
  const versionName = gateway.google.versionName;
  const aad = Buffer.from(versionName).toString('base64');
  const context = {
    relativeResourceName: versionName,
    fullResourceName: `//cloudkms.googleapis.com/${versionName}`,
    accessReasonContext: { reason: 'CUSTOMER_INITIATED_ACCESS' },
    isKeyHealthCheck: false,
  };
  const googleHeaders = { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' };
  const wrapBody = JSON.stringify({
    plaintext: sealedDek,
    additionalAuthenticatedData: aad,
    additionalContext: context,
  });
  const wrapped = await post(`${uris.google}:wrap`, ca, googleHeaders, wrapBody);
  const unwrapBody = JSON.stringify({
    wrappedBlob: wrapped.wrappedBlob,
    additionalAuthenticatedData: aad,
    additionalContext: context,
  });

  const xksCredential = {
    accessKeyId: readFileSync(join(o.stateDir, 'xks-access-key-id'), 'utf8').trim(),
    secretAccessKey: readFileSync(join(o.stateDir, 'xks-secret-access-key'), 'utf8').trim(),
  };
  const signer = new SignatureV4({
    service: 'kms-xks-proxy',
    region: 'us-east-1',
    credentials: xksCredential,
    sha256: Sha256,
    applyChecksum: false,
  });
  const xksMetadata = (kmsOperation: string) => ({
    awsPrincipalArn: identity,
    kmsOperation,
    kmsRequestId: 'bench',
    kmsKeyArn: gateway.xks.versionName,
  });
  const xksAad = Buffer.from(gateway.xks.versionName).toString('base64');
  const xksEncryptBody = JSON.stringify({
    requestMetadata: xksMetadata('Encrypt'),
    plaintext: sealedDek,
    encryptionAlgorithm: 'AES_GCM',
    additionalAuthenticatedData: xksAad,
    ciphertextDataIntegrityValueAlgorithm: 'SHA_256',
  });
  /** Headers for one XKS request, signed now (valid for five minutes, replayed for one measurement). */
  const xksHeaders = async (op: 'encrypt' | 'decrypt', body: string): Promise<Record<string, string>> => {
    const url = new URL(`${uris.xks}/${op}`);
    const signed = await signer.sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query: {},
      headers: { host: url.host, 'content-type': 'application/json' },
      body,
    });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k !== 'host') headers[k] = String(v);
    return headers;
  };
  const xksEncrypted = await post(
    `${uris.xks}/encrypt`,
    ca,
    await xksHeaders('encrypt', xksEncryptBody),
    xksEncryptBody,
  );
  const xksDecryptBody = JSON.stringify({
    requestMetadata: xksMetadata('Decrypt'),
    ciphertext: xksEncrypted.ciphertext,
    initializationVector: xksEncrypted.initializationVector,
    authenticationTag: xksEncrypted.authenticationTag,
    encryptionAlgorithm: 'AES_GCM',
    additionalAuthenticatedData: xksAad,
    ...(xksEncrypted.ciphertextMetadata === undefined
      ? {}
      : { ciphertextMetadata: xksEncrypted.ciphertextMetadata }),
  });
  await post(`${uris.xks}/decrypt`, ca, await xksHeaders('decrypt', xksDecryptBody), xksDecryptBody);

  // Measurements ----------------------------------------------------------------------------------------------
  const auth = { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' };
  const encryptBody = JSON.stringify({ plaintext: o.plaintext });
  type Plan = { id: string; what: string; spec: () => Promise<Omit<LoadSpec, 'durationS' | 'maxRequests'>> };
  const plan: Plan[] = [];
  for (const p of PROTOCOLS) {
    const g = gateway[p];
    for (const c of [1, 32]) {
      const direct = (op: 'wrap' | 'unwrap' | 'encrypt' | 'decrypt', body: string) => async () => {
        const path =
          p === 'google'
            ? `/v0/keys/${EKM_KEY_ID}:${op}`
            : `/${LOCAL_XKS_PREFIX}/kms/xks/v1/keys/${EKM_KEY_ID}/${op}`;
        const headers = p === 'google' ? googleHeaders : await xksHeaders(op as 'encrypt' | 'decrypt', body);
        return { url: ekmOrigin, method: 'POST' as const, path, headers, body, connections: c };
      };
      const gw = (op: 'encrypt' | 'decrypt', body: string) => async () => ({
        url: o.stackUrl,
        method: 'POST' as const,
        path: `/v1/${g.keyName}:${op}`,
        headers: auth,
        body,
        connections: c,
      });
      const name = PROTOCOL_NAME[p];
      plan.push(
        {
          id: `ext-${p}-encrypt${c}`,
          what: `EXTERNAL encrypt 1 KiB via gateway (${name})`,
          spec: gw('encrypt', encryptBody),
        },
        {
          id: `ext-${p}-wrap${c}`,
          what: `direct EKM ${p === 'google' ? 'wrap' : 'encrypt'} (${name})`,
          spec: p === 'google' ? direct('wrap', wrapBody) : direct('encrypt', xksEncryptBody),
        },
        {
          id: `ext-${p}-decrypt${c}`,
          what: `EXTERNAL decrypt 1 KiB via gateway (${name})`,
          spec: gw('decrypt', JSON.stringify({ ciphertext: g.ciphertext })),
        },
        {
          id: `ext-${p}-unwrap${c}`,
          what: `direct EKM ${p === 'google' ? 'unwrap' : 'decrypt'} (${name})`,
          spec: p === 'google' ? direct('unwrap', unwrapBody) : direct('decrypt', xksDecryptBody),
        },
      );
    }
  }
  // Overload: 4× the concurrency of the steady-state rows, each request with a 1 s deadline. Refusals (503,
  // the EKM client's concurrency bound) must come back before it; goodput is compared with the @32 row.
  for (const p of PROTOCOLS) {
    const g = gateway[p];
    plan.push({
      id: `ext-${p}-encrypt${OVERLOAD_CONNECTIONS}`,
      what: `EXTERNAL encrypt 1 KiB via gateway (${PROTOCOL_NAME[p]}), overload, 1 s deadline`,
      spec: async () => ({
        url: o.stackUrl,
        method: 'POST' as const,
        path: `/v1/${g.keyName}:encrypt`,
        headers: { ...auth, 'x-server-timeout': '1' },
        body: encryptBody,
        connections: OVERLOAD_CONNECTIONS,
      }),
    });
  }
  const out: ExternalMeasurement[] = [];
  for (const step of plan) {
    if (!want(step.id)) continue;
    const spec = await step.spec();
    o.log(`${step.what}, concurrency ${spec.connections}, ${o.durationS} s …`);
    const before = o.ekmAttempts();
    const result = await measure({
      ...spec,
      durationS: o.durationS,
      warmupS: o.warmupS,
      maxRequests: o.maxRequests,
      serverPid: o.stackPid,
    });
    const after = o.ekmAttempts();
    const ekm = {
      sent: after.sent - before.sent,
      calls: after.calls - before.calls,
      firstSent: after.firstSent - before.firstSent,
      refused: after.refused - before.refused,
    };
    out.push({ id: step.id, what: step.what, result, ...(ekm.calls > 0 ? { ekm } : {}) });
  }
  return out;
}

/** Ratio rows [ratio, value, how to read it] for the EXTERNAL measurements present in `r`. */
export function externalRatios(
  r: Record<string, LoadResult>,
  ekm: Record<string, EkmAttemptCounts>,
  fmtRatio: (n: number) => string,
  fmtMs: (n: number) => string,
): string[][] {
  const rows: string[][] = [];
  const verdict = (ok: boolean, known: boolean) => (known ? (ok ? 'meets' : 'MISSES') : '—');
  for (const p of PROTOCOLS) {
    const name = PROTOCOL_NAME[p];
    for (const [gw, direct] of [
      ['encrypt', 'wrap'],
      ['decrypt', 'unwrap'],
    ] as const) {
      for (const c of [1, 32]) {
        const ratio =
          (r[`ext-${p}-${gw}${c}`]?.opsPerSec ?? Number.NaN) /
          (r[`ext-${p}-${direct}${c}`]?.opsPerSec ?? Number.NaN);
        rows.push([
          `${name}: gateway ${gw} ops/s / direct ${direct} ops/s @${c}`,
          fmtRatio(ratio),
          `≥ ${TARGET_THROUGHPUT_RATIO.toFixed(2)} target (${verdict(ratio >= TARGET_THROUGHPUT_RATIO, Number.isFinite(ratio))})`,
        ]);
      }
      const added =
        (r[`ext-${p}-${gw}1`]?.p50Ms ?? Number.NaN) - (r[`ext-${p}-${direct}1`]?.p50Ms ?? Number.NaN);
      rows.push([
        `${name}: gateway ${gw} p50 − direct ${direct} p50 @1 (ms)`,
        fmtMs(added),
        `added latency, ≤ ${TARGET_ADDED_P50_MS} ms target (${verdict(added <= TARGET_ADDED_P50_MS, Number.isFinite(added))})`,
      ]);
    }
    const e32r = r[`ext-${p}-encrypt32`];
    const p99 = e32r?.p99Ms ?? Number.NaN;
    rows.push([
      `${name}: EXTERNAL encrypt p99 @32 (ms)`,
      fmtMs(p99),
      `≤ ${TARGET_P99_MS} ms target (${verdict(p99 <= TARGET_P99_MS, Number.isFinite(p99))}); non-2xx ${e32r ? e32r.non2xx + e32r.errors : '—'} (0 target)`,
    ]);
    const cpuRatio =
      (e32r?.serverCpuMsPerRequest ?? Number.NaN) / (r.encrypt32?.serverCpuMsPerRequest ?? Number.NaN);
    rows.push([
      `${name}: gateway CPU/req EXTERNAL encrypt / SOFTWARE encrypt @32`,
      fmtRatio(cpuRatio),
      `≤ ${TARGET_CPU_RATIO.toFixed(2)} target (${verdict(cpuRatio <= TARGET_CPU_RATIO, Number.isFinite(cpuRatio))}); the EKM runs in its own process`,
    ]);
    const over = r[`ext-${p}-encrypt${OVERLOAD_CONNECTIONS}`];
    const goodput = (over?.opsPerSec ?? Number.NaN) / (e32r?.opsPerSec ?? Number.NaN);
    rows.push([
      `${name}: overload goodput @${OVERLOAD_CONNECTIONS} / @32`,
      fmtRatio(goodput),
      `≥ ${TARGET_GOODPUT.toFixed(2)} target (${verdict(goodput >= TARGET_GOODPUT, Number.isFinite(goodput))}); refused ${over ? over.non2xx : '—'}, slowest answer ${over ? fmtMs(over.maxAnyMs) : '—'} ms vs the 1,000 ms deadline (${verdict((over?.maxAnyMs ?? Number.NaN) <= 1000, over !== undefined)})`,
    ]);
    for (const id of [`ext-${p}-encrypt32`, `ext-${p}-encrypt${OVERLOAD_CONNECTIONS}`]) {
      const c = ekm[id];
      // Attempts sent to the EKM per first attempt sent: 1.00 = no retries at all.
      const amplification = c ? c.sent / Math.max(1, c.firstSent) : Number.NaN;
      rows.push([
        `${name}: retry amplification @${id.endsWith('32') ? 32 : OVERLOAD_CONNECTIONS} (EKM attempts / calls)`,
        fmtRatio(amplification),
        `≤ ${TARGET_AMPLIFICATION.toFixed(2)} target (${verdict(amplification <= TARGET_AMPLIFICATION, Number.isFinite(amplification))}); ${c ? `${c.sent} attempts for ${c.firstSent} calls sent, ${c.refused} calls refused by the gateway` : '—'}`,
      ]);
    }
    const e32 = r[`ext-${p}-encrypt32`]?.opsPerSec ?? Number.NaN;
    rows.push([
      `${name}: EXTERNAL encrypt ops/s @32 / 1,800 target`,
      fmtRatio(e32 / TARGET_EXTERNAL_ENCRYPT_OPS),
      `≥ 1.00 meets the target (${verdict(e32 >= TARGET_EXTERNAL_ENCRYPT_OPS, Number.isFinite(e32))})`,
    ]);
  }
  return rows;
}
