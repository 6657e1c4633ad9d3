/**
 * The logger's sinks: JSON lines to stdout by default, JSON to a file, and the human format of the local stack on a
 * terminal (one short line per request, warning and error; the JSON — requests, audit entries — only in the file).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger, humanRequestLine, type RequestLog } from '../../shared/log.js';

const dir = mkdtempSync(join(tmpdir(), 'openekm-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const REQUEST: RequestLog = {
  function: 'encrypt',
  requestId: 'r-1',
  method: 'POST',
  path: '/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:encrypt',
  status: 200,
  principal: 'user:alice@example.com',
  latencyMs: 3.25,
};

const lines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test('json (the default) writes every entry as one JSON line to the sink', () => {
  const out: string[] = [];
  const log = createLogger('info', (l) => out.push(l));
  log.request(REQUEST);
  log.entry({ logName: 'audit' });
  log.warn('careful', { a: 1 });
  assert.equal(out.length, 3);
  const req = JSON.parse(out[0]!);
  assert.equal(req.severity, 'INFO');
  assert.equal(req.httpRequest.status, 200);
  assert.equal(req.httpRequest.latency, '0.003250s');
  assert.equal(req.principal, 'user:alice@example.com');
  assert.deepEqual(JSON.parse(out[1]!), { logName: 'audit' });
  assert.equal(JSON.parse(out[2]!).severity, 'WARNING');
});

test('a file takes the JSON lines instead of stdout', () => {
  const file = join(dir, 'json', 'gateway.jsonl');
  const out: string[] = [];
  const log = createLogger('info', { file, write: (l) => out.push(l) });
  log.request(REQUEST);
  log.entry({ logName: 'audit' });
  log.close?.();
  assert.deepEqual(out, []);
  const written = lines(file);
  assert.equal(written.length, 2);
  assert.equal((written[0]!.httpRequest as { status: number }).status, 200);
});

test('human: one short line per request, warning and error on the console; JSON only in the file', () => {
  const file = join(dir, 'human', 'gateway.jsonl');
  const out: string[] = [];
  const log = createLogger('info', { format: 'human', file, write: (l) => out.push(l) });
  log.request(REQUEST);
  log.request({ ...REQUEST, status: 404, errorCode: 'NOT_FOUND', latencyMs: 1234, principal: undefined });
  log.entry({ logName: 'projects/p/logs/cloudaudit.googleapis.com%2Fdata_access' });
  log.info('EKM probe run', { targets: 4 });
  log.warn('EKM call failed: EXTERNAL_KEY_MANAGER_TIMEOUT', { uri: 'https://ekm/keys/k' });
  log.close?.();

  assert.equal(out.length, 3, out.join('\n'));
  assert.match(
    out[0]!,
    /^\d\d:\d\d:\d\d\.\d{3} POST \/v1\/projects\/p\/locations\/l\/keyRings\/r\/cryptoKeys\/k:encrypt 200 3\.3 ms user:alice@example\.com$/,
  );
  assert.match(out[1]!, / 404 NOT_FOUND 1\.23 s$/);
  assert.match(out[2]!, / WARNING EKM call failed: EXTERNAL_KEY_MANAGER_TIMEOUT$/);

  const written = lines(file);
  assert.equal(written.length, 5, 'requests, the audit entry, info and warning all in the file');
  assert.equal(written[2]!.logName, 'projects/p/logs/cloudaudit.googleapis.com%2Fdata_access');
});

test('the human request line: method, path, status, latency, principal', () => {
  const at = new Date(2026, 0, 2, 3, 4, 5, 6);
  assert.equal(
    humanRequestLine({ ...REQUEST, latencyMs: 42.4 }, at),
    '03:04:05.006 POST /v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:encrypt 200 42 ms user:alice@example.com',
  );
});
