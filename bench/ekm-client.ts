/**
 * `npx tsx bench/ekm-client.ts`: the CPU the gateway's EKM client spends per call, measured in this process
 * against the reference EKM in its own process (so the EKM's CPU is not counted): XKS encrypt calls (SigV4
 * signed) and Google EKM wraps (our JWT, from the token cache) through the real client path, for
 *   - ky over undici's own fetch on the endpoint's pool (what the gateway uses), HTTP/2 and HTTP/1.1,
 *   - ky over Node's global fetch given the pool as dispatcher, and
 *   - ky over a hand-built fetch shim (undici request() answered as a Response: Request, Headers and Response
 *     objects built twice per call), the previous transport, kept here as the comparison.
 * Prints calls/s and client CPU µs per call (process.cpuUsage) for each, at concurrency 16.
 * Knobs: BENCH_EKM_CALLS (per variant, default 3000).
 *
 * To see where the CPU goes, run it under the profiler and open the .cpuprofile in Chrome DevTools:
 *   node --import tsx --cpu-prof --cpu-prof-dir=prof bench/ekm-client.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ky from 'ky';
import { Agent, request } from 'undici';
import { localEkmIdentity, startLocalEkm } from '../scripts/lib/local-ekm.js';
import { localGatewayEnv } from '../scripts/lib/local-state.js';
import { GatewayIdentity } from '../shared/access/outgoing.js';
import { loadConfig } from '../shared/config.js';
import { type EkmEndpoint, resolveKeyUri } from '../shared/ekm/endpoints.js';
import { GoogleEkmProtocol } from '../shared/ekm/google-ekm.js';
import type { EkmCallContext } from '../shared/ekm/protocols.js';
import { EkmTransport } from '../shared/ekm/transport.js';
import { XksProtocol } from '../shared/ekm/xks.js';

process.env.METADATA_SERVER_DETECTION = 'none';
const CALLS = Number(process.env.BENCH_EKM_CALLS ?? 3000);
const CONCURRENCY = 16;

/** The previous transport's fetch: undici request() on the pool, re-wrapped as a WHATWG Response. */
function shimFetch(dispatcher: Agent): typeof fetch {
  return async (input, init) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const headers: Record<string, string> = {};
    req.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const res = await request(req.url, {
      method: req.method as 'POST',
      headers,
      body: req.body ? await req.text() : undefined,
      signal: req.signal,
      dispatcher,
    });
    const text = await res.body.text();
    const answered = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') answered.set(k, v);
    return new Response(text, { status: res.statusCode, headers: answered });
  };
}

/** An EkmTransport whose send() goes through ky with the shim (same pool options as before: HTTP/1.1). */
class ShimTransport extends EkmTransport {
  private readonly shims = new Map<string, typeof fetch>();
  override async send(
    endpoint: EkmEndpoint,
    url: string,
    init: { method: 'POST' | 'GET'; headers: Record<string, string>; body?: string },
    signal: AbortSignal,
  ) {
    let f = this.shims.get(endpoint.prefix);
    if (!f) {
      f = shimFetch(new Agent({ connect: { ca: endpoint.ca }, connections: 64, pipelining: 1 }));
      this.shims.set(endpoint.prefix, f);
    }
    const res = await ky(url, {
      ...init,
      timeout: endpoint.timeoutMs,
      retry: 0,
      throwHttpErrors: false,
      signal,
      fetch: f,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
  }
}

async function run(name: string, call: () => Promise<unknown>): Promise<string> {
  for (let i = 0; i < 200; i++) await call(); // warm-up
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CALLS) await call();
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const perCall = (used.user + used.system) / CALLS;
  return `| ${name} | ${Math.round(CALLS / seconds)} | ${Math.round(perCall)} |`;
}

const dir = mkdtempSync(join(tmpdir(), 'openekm-bench-client-'));
const local = await startLocalEkm({ dir, httpPort: 0, httpsPort: 0, mode: 'test', log: () => {} });
try {
  const env = { ...(await localGatewayEnv('127.0.0.1:1', dir)), ...local.env };
  const config = loadConfig(env);
  for (const e of config.ekmEndpoints) e.timeoutMs = 5000;
  const identity = new GatewayIdentity(config.gatewayIdentity!);
  await local.ekm.admin.createKey('bench');
  // The gateway calls as the project's own EKM identity (docs/security.md).
  await local.ekm.admin.grant('bench', localEkmIdentity('bench'));
  const ctx: EkmCallContext = {
    versionName: 'projects/bench/locations/us-east1/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
    reason: 'CUSTOMER_INITIATED_ACCESS',
    principal: 'user:bench@example.com',
    requestId: 'bench',
    aad: Buffer.alloc(32, 1),
  };
  const sealed = Buffer.alloc(60, 7);
  const rows: string[] = [];
  const variants: Array<[string, () => EkmTransport, 'https' | 'http']> = [
    ['ky + undici fetch, HTTP/2 over TLS', () => new EkmTransport({ http2: true }), 'https'],
    ['ky + undici fetch, HTTP/1.1 over TLS', () => new EkmTransport({ http2: false }), 'https'],
    [
      'ky + Node fetch(dispatcher), HTTP/1.1 over TLS',
      () => new EkmTransport({ http2: false, fetch: 'node' }),
      'https',
    ],
    ['ky + request() shim (previous), HTTP/1.1 over TLS', () => new ShimTransport(), 'https'],
    ['ky + undici fetch, HTTP/1.1 plain (loopback)', () => new EkmTransport({ http2: false }), 'http'],
  ];
  for (const [name, make, scheme] of variants) {
    const transport = make();
    const xks = new XksProtocol(transport);
    const google = new GoogleEkmProtocol(transport, identity);
    const xk = resolveKeyUri(config.ekmEndpoints, local.keyUri('bench', 'xks', scheme));
    const gk = resolveKeyUri(config.ekmEndpoints, local.keyUri('bench', 'google', scheme));
    rows.push(await run(`XKS encrypt, ${name}`, () => xks.wrap(xk, sealed, ctx, AbortSignal.timeout(5000))));
    rows.push(
      await run(`Google EKM wrap, ${name}`, () => google.wrap(gk, sealed, ctx, AbortSignal.timeout(5000))),
    );
    await transport.close();
  }
  process.stdout.write(
    [
      `EKM client cost, ${CALLS} calls per row at concurrency ${CONCURRENCY}, reference EKM in its own process:`,
      '',
      '| client path | calls/s | client CPU µs/call |',
      '|---|---:|---:|',
      ...rows,
      '',
    ].join('\n'),
  );
} finally {
  await local.ekm.stop();
  rmSync(dir, { recursive: true, force: true });
}
