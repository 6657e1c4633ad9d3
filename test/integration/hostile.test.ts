/**
 * A hostile caller against every entry point: the one-port server (`node dist/functions/server.js`, the
 * container and `npm start`), the functions framework (`functions-framework --target=…`, Cloud Functions), the
 * AWS Lambda handler, and the in-process local stack. Each attack is refused with a google.rpc envelope that says
 * what was wrong, never a 5xx or plain text, and nothing of the request (secrets in a body, forged addresses)
 * reaches the logs:
 *
 * - a gzip bomb (20 MB of zeros in ~20 KB, `content-encoding: gzip`, no token), with and without Content-Length:
 *   refused before anything is inflated or authenticated, and the serving process's peak memory does not grow;
 * - a chunked body without Content-Length that never ends: refused after the limit, never buffered;
 * - forged forwarding headers (X-Forwarded-For, Forwarded, X-Real-IP) and a forged x-request-id: the audit entry
 *   records the connection's address and an insertId of the gateway's own;
 * - malformed JSON carrying a secret: a fixed message with at most a position;
 * - odd request targets (`//anything`, absolute-form, `*`, broken percent-encoding, …).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { routerLambda } from '../../functions/lambda.js';
import { ensureBuilt } from '../../scripts/lib/build.js';
import { freePort } from '../../scripts/lib/firestore-emulator.js';
import { localGatewayEnv } from '../../scripts/lib/local-state.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BOMB = gzipSync(Buffer.alloc(20 * 1024 * 1024));
const SECRET = 'U2VjcmV0UGFzc3dvcmQtZG8tbm90LWxvZw';
const FORGED_IP = '203.0.113.77';
const FORGED_ID = 'forged-insert-id-0001';

let s: TestStack;
let token: string;
let loc: string;

interface Served {
  name: string;
  url: string;
  port: number;
  child?: ChildProcess;
  output: string[];
}
const served: Served[] = [];

async function waitUntilServing(p: Served): Promise<void> {
  const deadline = Date.now() + 45_000;
  while (Date.now() < deadline) {
    if (p.child && p.child.exitCode !== null) break;
    try {
      await fetch(`${p.url}/health`, { signal: AbortSignal.timeout(2000) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 150));
    }
  }
  throw new Error(`${p.name} did not start within 45 s:\n${p.output.join('')}`);
}

async function startChild(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<Served> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    args.map((a) => a.replace('{port}', String(port))),
    { cwd: ROOT, env: { ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const p: Served = { name, url: `http://127.0.0.1:${port}`, port, child, output: [] };
  child.stdout!.on('data', (d: Buffer) => p.output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => p.output.push(d.toString()));
  served.push(p);
  // Should this test process end without its after hook (a timeout), the servers end with it.
  process.once('exit', () => child.kill('SIGKILL'));
  await waitUntilServing(p);
  return p;
}

before(async () => {
  s = await startTestStack();
  token = await s.token();
  loc = `/v1/projects/${s.project}/locations/us-east1`;
  const ring = await s.call('POST', `${loc}/keyRings?keyRingId=hostile`, {});
  assert.equal(ring.status, 200, JSON.stringify(ring.json));
  const key = await s.call('POST', `${loc}/keyRings/hostile/cryptoKeys?cryptoKeyId=k`, {
    purpose: 'ENCRYPT_DECRYPT',
  });
  assert.equal(key.status, 200, JSON.stringify(key.json));
  served.push({
    name: 'local stack (in-process)',
    url: s.url,
    port: Number(new URL(s.url).port),
    output: [],
  });

  ensureBuilt(120_000);
  const env = {
    ...process.env,
    ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST!, s.stateDir)),
    OPENEKM_FIRESTORE_PROJECT: s.project,
    OPENEKM_LOG_LEVEL: 'info',
    OPENEKM_EKM_QUOTA: '{"enabled": false}',
  };
  // The framework's own CLI (its package "bin"), run by node directly so that its pid is the serving process.
  const framework = join(
    dirname(createRequire(import.meta.url).resolve('@google-cloud/functions-framework')),
    'main.js',
  );
  await Promise.all([
    startChild('one-port server', ['dist/functions/server.js'], env),
    startChild(
      'functions framework',
      [framework, '--target=keyAdmin', '--port={port}', `--source=${ROOT}`],
      env,
    ),
  ]);
});

after(async () => {
  for (const p of served) {
    const child = p.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }
  await s?.stop();
});

interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
}

function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  while (i < body.length) {
    const eol = body.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = Number.parseInt(body.subarray(i, eol).toString(), 16);
    if (!size) break;
    out.push(body.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

function parseReply(data: Buffer): RawReply {
  const end = data.indexOf('\r\n\r\n');
  assert.ok(end > 0, `an HTTP answer: ${data.toString().slice(0, 200)}`);
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = data.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  else if (headers['content-length']) body = body.subarray(0, Number(headers['content-length']));
  const text = body.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text, json };
}

/**
 * One request written byte for byte on a fresh connection. `stream` keeps sending chunks of a chunked body until
 * the server answers (or `stream` bytes went out) — a client that never finishes its body.
 */
function rawRequest(
  port: number,
  head: string,
  body?: Buffer,
  stream?: { chunk: Buffer; maxBytes: number },
): Promise<RawReply & { sent: number }> {
  return new Promise((resolveReply, reject) => {
    const socket = connect(port, '127.0.0.1');
    const data: Buffer[] = [];
    let sent = 0;
    let answered = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${head.split('\r\n')[0]}`));
    }, 30_000);
    const done = () => {
      clearTimeout(timer);
      try {
        resolveReply({ ...parseReply(Buffer.concat(data)), sent });
      } catch (err) {
        reject(err);
      }
    };
    socket.on('data', (d: Buffer) => {
      data.push(d);
      const all = Buffer.concat(data);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return;
      const reply = parseReply(all);
      const length = Number(reply.headers['content-length'] ?? Number.NaN);
      const complete =
        reply.headers['transfer-encoding'] === 'chunked'
          ? all.subarray(end).includes('\r\n0\r\n\r\n')
          : Number.isFinite(length) && all.length - end - 4 >= length;
      if (complete && !answered) {
        answered = true;
        socket.destroy();
        done();
      }
    });
    let failure: Error | undefined;
    socket.on('error', (err) => {
      failure = err;
    });
    // A server that answers and closes while the client still writes makes the client's writes fail (EPIPE,
    // ECONNRESET): the answer is what arrived before the connection closed.
    socket.on('close', () => {
      if (answered) return;
      answered = true;
      if (data.length > 0) done();
      else {
        clearTimeout(timer);
        reject(failure ?? new Error('the connection closed without an answer'));
      }
    });
    socket.on('connect', async () => {
      socket.write(head);
      if (body) socket.write(body);
      if (!stream) return;
      try {
        while (!answered && !socket.destroyed && sent < stream.maxBytes) {
          const frame = Buffer.concat([
            Buffer.from(`${stream.chunk.length.toString(16)}\r\n`),
            stream.chunk,
            Buffer.from('\r\n'),
          ]);
          sent += stream.chunk.length;
          if (!socket.write(frame)) {
            await new Promise<void>((r) => {
              const t = setTimeout(r, 200);
              socket.once('drain', () => {
                clearTimeout(t);
                r();
              });
            });
          }
        }
      } catch {
        // The server closed the connection after answering: the answer is read from what arrived.
      }
    });
  });
}

function assertEnvelope(
  r: { status: number; json: any; body?: string },
  status: number,
  code: string,
  message: RegExp,
) {
  assert.equal(r.status, status, r.body ?? JSON.stringify(r.json));
  assert.ok(r.json?.error, `a google.rpc envelope: ${r.body ?? JSON.stringify(r.json)}`);
  assert.equal(r.json.error.code, status);
  assert.equal(r.json.error.status, code);
  assert.match(r.json.error.message, message);
}

/** Peak resident memory of a process (VmHWM), in bytes; undefined where /proc is not available. */
async function peakRss(pid: number): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

function logsOf(p: Served): string {
  return p.child ? p.output.join('') : s.logs.join('\n');
}

const bombHead = (path: string, chunked: boolean) =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n${
    chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${BOMB.length}`
  }\r\nConnection: close\r\n\r\n`;

describe('a gzip bomb is refused before it is inflated or authenticated', () => {
  for (const i of [0, 1, 2]) {
    test(`entry point ${i}`, async (t) => {
      const p = served[i]!;
      t.diagnostic(p.name);
      const path = `${loc}/keyRings/hostile/cryptoKeys/k:encrypt`;
      const before = p.child ? await peakRss(p.child.pid!) : undefined;
      for (let n = 0; n < 6; n++) {
        const r = await rawRequest(p.port, bombHead(path, false), BOMB);
        assertEnvelope(r, 400, 'INVALID_ARGUMENT', /Compressed request bodies are not accepted/);
      }
      // Without Content-Length (chunked), as one chunk.
      const chunkedBody = Buffer.concat([
        Buffer.from(`${BOMB.length.toString(16)}\r\n`),
        BOMB,
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
      const chunked = await rawRequest(p.port, bombHead(path, true), chunkedBody);
      assertEnvelope(chunked, 400, 'INVALID_ARGUMENT', /Compressed request bodies are not accepted/);
      if (p.child && before !== undefined) {
        const grown = (await peakRss(p.child.pid!))! - before;
        // Inflating even one bomb costs 20 MB; seven of them, as the issue measured, several times that.
        assert.ok(grown < 16 * 1024 * 1024, `${p.name}: peak memory grew by ${grown} bytes`);
      }
    });
  }
});

test('a chunked body without Content-Length that never ends is refused at the limit, never buffered', async () => {
  for (const p of served) {
    const before = p.child ? await peakRss(p.child.pid!) : undefined;
    const r = await rawRequest(
      p.port,
      `POST ${loc}/keyRings?keyRingId=never-ends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      undefined,
      { chunk: Buffer.alloc(64 * 1024, 0x20), maxBytes: 64 * 1024 * 1024 },
    );
    assertEnvelope(r, 400, 'INVALID_ARGUMENT', /limit is 1048576 bytes/);
    assert.ok(
      r.sent < 64 * 1024 * 1024,
      `${p.name} answered before the client gave up (${r.sent} bytes sent)`,
    );
    if (p.child && before !== undefined) {
      // What is read past the limit is thrown away as it arrives (garbage the collector has yet to take, at most
      // the 16 MiB read before the answer), never kept: buffering would hold all 64 MiB the client sends.
      const grown = (await peakRss(p.child.pid!))! - before;
      assert.ok(grown < 40 * 1024 * 1024, `${p.name}: peak memory grew by ${grown} bytes`);
    }
  }
});

function auditLines(p: Served): any[] {
  return logsOf(p)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return {};
      }
    })
    .filter((e) => e.protoPayload);
}

test('forged forwarding headers and request ids do not reach the audit entry as facts', async () => {
  for (const p of served) {
    const path = `${loc}/keyRings/hostile`;
    const forged = {
      authorization: `Bearer ${token}`,
      'x-forwarded-for': `${FORGED_IP}, 198.51.100.1`,
      forwarded: `for=${FORGED_IP};proto=https`,
      'x-real-ip': FORGED_IP,
      'x-request-id': FORGED_ID,
    };
    for (let n = 0; n < 2; n++) {
      const r = await fetch(p.url + path, { headers: forged, signal: AbortSignal.timeout(20_000) });
      assert.equal(r.status, 200, `${p.name}: ${await r.text()}`);
      assert.equal(r.headers.get('x-request-id'), FORGED_ID, 'the caller still gets its id back');
    }
    // Logs may be written just after the answer by a separate process.
    const deadline = Date.now() + 5000;
    let entries: any[] = [];
    while (Date.now() < deadline) {
      entries = auditLines(p).filter(
        (e) => e['logging.googleapis.com/labels']?.callerRequestId === FORGED_ID,
      );
      if (entries.length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(entries.length, 2, `${p.name}: two audit entries labelled with the caller's id`);
    for (const e of entries) {
      assert.notEqual(e.insertId, FORGED_ID, `${p.name}: insertId is the gateway's own`);
      assert.match(e.insertId, /^[0-9a-f-]{36}$/);
      assert.equal(e.protoPayload.requestMetadata.callerIp, '127.0.0.1', p.name);
    }
    assert.notEqual(entries[0].insertId, entries[1].insertId, 'a repeated x-request-id repeats no insertId');
    assert.ok(!logsOf(p).includes(FORGED_IP), `${p.name}: the forged address is nowhere in the logs`);
  }
});

test('malformed JSON carrying a secret: a fixed message, and the secret is nowhere in the logs', async () => {
  const bodies = [
    `{"plaintext":${SECRET}}`,
    `{"plaintext":"${SECRET}`,
    `{"plaintext":"${SECRET}",}`,
    `{"plaintext" "${SECRET}"}`,
    `{"plaintext":"${SECRET}"} ${SECRET}`,
    `{"labels":{"a":"${SECRET}\u0001"}}`,
  ];
  for (const p of served) {
    // The framework process serves keyAdmin only: a create there parses its body the same way.
    const path =
      p.name === 'functions framework'
        ? `${loc}/keyRings?keyRingId=secret`
        : `${loc}/keyRings/hostile/cryptoKeys/k:encrypt`;
    for (const body of bodies) {
      const r = await fetch(p.url + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(20_000),
      });
      const json = (await r.json()) as any;
      assertEnvelope(
        { status: r.status, json },
        400,
        'INVALID_ARGUMENT',
        /^Invalid JSON payload received: [A-Za-z ',:{}()\][]+( at position \d+)?\. Send a JSON object\.$/,
      );
      assert.ok(!JSON.stringify(json).includes(SECRET.slice(0, 8)), `${p.name}: ${JSON.stringify(json)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
    const logs = logsOf(p);
    assert.match(logs, /Invalid JSON payload received/, `${p.name}: the refusals were logged`);
    assert.ok(!logs.includes(SECRET.slice(0, 8)), `${p.name}: no part of the secret in the logs`);
  }
});

const ODD_TARGETS = [
  ['GET', '//anything'],
  ['GET', '///'],
  ['GET', '//v1//projects'],
  ['GET', 'http://evil.example/v1/projects/p/locations/l/keyRings'],
  ['OPTIONS', '*'],
  ['GET', '/%'],
  ['GET', '/v1/projects/%E0%A4%A/locations'],
  ['GET', '/v1/%2e%2e/%2e%2e/etc/passwd'],
  ['GET', '/v1/projects/p%00/locations/l/keyRings'],
  ['GET', `/${'a/'.repeat(2000)}`],
  ['POST', '/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:'],
  ['GET', '/health/../v1/projects/p/locations/l/keyRings'],
] as const;
/**
 * Targets Node's HTTP parser refuses before any application code runs. The one-port server answers them with the
 * envelope; under the functions framework Node's own bare 400 answers (and Google's front end refuses them first).
 */
const UNPARSABLE_TARGETS = [
  ['GET', '?only=query'],
  ['GET', '/a b'],
] as const;

test('odd request targets get a google.rpc envelope on every entry point, never a 500 or plain text', async () => {
  const wrong: string[] = [];
  for (const p of served) {
    const targets = p.name === 'functions framework' ? ODD_TARGETS : [...ODD_TARGETS, ...UNPARSABLE_TARGETS];
    for (const [method, target] of targets) {
      const r = await rawRequest(
        p.port,
        `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      const what = `${p.name}: ${method} ${target.slice(0, 60)} → ${r.status} ${r.body.slice(0, 200)}`;
      const envelope =
        r.status >= 400 &&
        r.status < 500 &&
        r.json?.error?.status &&
        r.json.error.code === r.status &&
        /^application\/json/.test(r.headers['content-type'] ?? '');
      if (!envelope) wrong.push(what);
    }
  }
  assert.deepEqual(wrong, []);
});

describe('the Lambda handler', () => {
  const lambdaContext = {
    functionName: 'openekm',
    awsRequestId: 'lambda-req',
    getRemainingTimeInMillis: () => 30_000,
    callbackWaitsForEmptyEventLoop: true,
  };
  function event(
    method: string,
    rawPath: string,
    opts: { body?: string; base64?: boolean; headers?: Record<string, string> } = {},
  ) {
    return {
      version: '2.0',
      routeKey: '$default',
      rawPath,
      rawQueryString: '',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...opts.headers },
      requestContext: {
        http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '192.0.2.10', userAgent: 'hostile' },
        requestId: 'lambda',
        routeKey: '$default',
        stage: '$default',
        timeEpoch: Date.now(),
      },
      body: opts.body,
      isBase64Encoded: opts.base64 ?? false,
    };
  }
  async function invoke(e: Record<string, unknown>) {
    const out = (await routerLambda(e, lambdaContext)) as {
      statusCode: number;
      body: string;
      isBase64Encoded: boolean;
      headers: Record<string, string>;
    };
    const text = out.isBase64Encoded ? Buffer.from(out.body, 'base64').toString('utf8') : out.body;
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: out.statusCode, json, body: text, headers: out.headers };
  }

  test('a gzip bomb event is refused', async () => {
    const r = await invoke(
      event('POST', `${loc}/keyRings/hostile/cryptoKeys/k:encrypt`, {
        body: BOMB.toString('base64'),
        base64: true,
        headers: { 'content-encoding': 'gzip', authorization: '' },
      }),
    );
    assertEnvelope(r, 400, 'INVALID_ARGUMENT', /Compressed request bodies are not accepted/);
  });

  test('an oversize body event is refused at the limit', async () => {
    const r = await invoke(
      event('POST', `${loc}/keyRings/hostile/cryptoKeys/k:encrypt`, {
        body: JSON.stringify({ plaintext: Buffer.alloc(1024 * 1024).toString('base64') }),
        headers: { authorization: '' },
      }),
    );
    assertEnvelope(r, 400, 'INVALID_ARGUMENT', /limit is 1048576 bytes/);
  });

  test('forged forwarding headers: the audit entry records the source address API Gateway saw', async () => {
    const r = await invoke(
      event('GET', `${loc}/keyRings/hostile`, {
        headers: { 'x-forwarded-for': FORGED_IP, 'x-request-id': 'lambda-forged-id' },
      }),
    );
    assert.equal(r.status, 200, r.body);
    const entry = s.logs
      .map((l) => JSON.parse(l))
      .find((e) => e['logging.googleapis.com/labels']?.callerRequestId === 'lambda-forged-id');
    assert.ok(entry, 'the audit entry');
    assert.equal(entry.protoPayload.requestMetadata.callerIp, '192.0.2.10');
    assert.notEqual(entry.insertId, 'lambda-forged-id');
  });

  test('malformed JSON carrying a secret and odd paths', async () => {
    const r = await invoke(
      event('POST', `${loc}/keyRings/hostile/cryptoKeys/k:encrypt`, { body: `{"plaintext":${SECRET}}` }),
    );
    assertEnvelope(r, 400, 'INVALID_ARGUMENT', /^Invalid JSON payload received/);
    assert.ok(!r.body.includes(SECRET.slice(0, 8)));
    for (const path of ['//anything', '///', '/%', '/v1/projects/%E0%A4%A/locations', '*']) {
      const odd = await invoke(event('GET', path));
      assert.ok(odd.status >= 400 && odd.status < 500, `${path}: ${odd.status} ${odd.body}`);
      assert.ok(odd.json?.error?.status, `${path}: ${odd.body}`);
    }
    assert.ok(!s.logs.join('\n').includes(SECRET.slice(0, 8)));
  });
});
