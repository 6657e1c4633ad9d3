/**
 * Living with the local stack: its Firestore data survives a restart (saved at stop, and every few seconds so an
 * unclean stop loses little), and a second `npm start` on ports in use says plainly that OpenEKM seems to be
 * running already and which variables choose the ports — before starting anything.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { findSnapshot, startPersistentFirestoreEmulator } from '../../scripts/lib/firestore-emulator.js';

const root = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'openekm-local-stack-'));
after(() => rmSync(work, { recursive: true, force: true }));

const PROJECT = 'demo-persist';

async function put(host: string, id: string, value: string): Promise<void> {
  const res = await fetch(
    `http://${host}/v1/projects/${PROJECT}/databases/(default)/documents/things?documentId=${id}`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fields: { value: { stringValue: value } } }),
    },
  );
  assert.equal(res.status, 200, await res.text());
}

async function get(host: string, id: string): Promise<string | undefined> {
  const res = await fetch(`http://${host}/v1/projects/${PROJECT}/databases/(default)/documents/things/${id}`);
  if (res.status === 404) return undefined;
  const doc = (await res.json()) as { fields: { value: { stringValue: string } } };
  return doc.fields.value.stringValue;
}

test('Firestore data survives a clean restart, and a periodic save covers an unclean stop', async () => {
  const dir = join(work, 'firestore');
  const first = await startPersistentFirestoreEmulator({ dir, project: PROJECT, saveEverySeconds: 1 });
  assert.equal(first.restored, false);
  try {
    await put(first.host, 'a', 'kept at stop');
  } finally {
    await first.stop();
  }
  assert.ok(findSnapshot(dir), 'a snapshot is written at stop');

  const second = await startPersistentFirestoreEmulator({ dir, project: PROJECT, saveEverySeconds: 1 });
  try {
    assert.equal(second.restored, true);
    assert.equal(await get(second.host, 'a'), 'kept at stop');
    await put(second.host, 'b', 'kept by the periodic save');
    // Wait for a periodic save to include it.
    const deadline = Date.now() + 15_000;
    while (!snapshotHolds(dir, 'kept by the periodic save')) {
      assert.ok(Date.now() < deadline, 'the periodic save did not write the new document');
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    // An unclean stop: the emulator dies without the final save, which then fails and keeps the last snapshot.
    process.kill(second.pid, 'SIGKILL');
    await assert.rejects(second.stop());
  }

  const third = await startPersistentFirestoreEmulator({ dir, project: PROJECT, saveEverySeconds: 60 });
  try {
    assert.equal(third.restored, true);
    assert.equal(await get(third.host, 'a'), 'kept at stop');
    assert.equal(await get(third.host, 'b'), 'kept by the periodic save');
  } finally {
    await third.stop();
  }
});

/** Whether the saved snapshot in `dir` holds `text` (looked for in the export's data files). */
function snapshotHolds(dir: string, text: string): boolean {
  const data = join(dir, 'snapshot', 'all_namespaces', 'all_kinds');
  try {
    return readdirSync(data).some(
      (f) => f.startsWith('output-') && readFileSync(join(data, f)).includes(text),
    );
  } catch {
    return false;
  }
}

function runStack(env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts'], {
      cwd: root,
      env: { ...process.env, FIRESTORE_EMULATOR_HOST: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (out += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? 1, out });
    });
  });
}

test('a second npm start on ports in use names them and their variables, and starts nothing', async () => {
  // Something answering like OpenEKM on the gateway port, and a plain listener on the EKM's HTTPS port.
  const gateway: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"SERVING","firestore":"OK"}');
  });
  const other: Server = createServer((_req, res) => res.end('hello'));
  await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  const free = createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const freePort = (free.address() as AddressInfo).port;
  await new Promise((r) => free.close(r));
  try {
    const state = join(work, 'state');
    const r = await runStack({
      PORT: String((gateway.address() as AddressInfo).port),
      OPENEKM_EKM_HTTP_PORT: String(freePort),
      OPENEKM_EKM_HTTPS_PORT: String((other.address() as AddressInfo).port),
      OPENEKM_STATE_DIR: state,
    });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /OpenEKM seems to be running already/);
    assert.match(r.out, /the gateway .*\(PORT\)/);
    assert.match(r.out, /the reference EKM, HTTPS \(OPENEKM_EKM_HTTPS_PORT\)/);
    assert.doesNotMatch(r.out, /\(OPENEKM_EKM_HTTP_PORT\)\n/, 'the free port is not listed');
    assert.match(r.out, /PORT=\d+ OPENEKM_EKM_HTTP_PORT=\d+ OPENEKM_EKM_HTTPS_PORT=\d+/);
    assert.doesNotMatch(r.out, /EADDRINUSE|ready at/);

    // A live stack.pid in the state directory: the same answer, naming the process.
    writeFileSync(join(state, 'stack.pid'), `${process.pid}\n`);
    const again = await runStack({
      PORT: String(freePort),
      OPENEKM_EKM_HTTP_PORT: String(freePort),
      OPENEKM_EKM_HTTPS_PORT: String(freePort),
      OPENEKM_STATE_DIR: state,
    });
    assert.equal(again.code, 1, again.out);
    assert.match(again.out, new RegExp(`OpenEKM seems to be running already \\(process ${process.pid}`));
  } finally {
    await new Promise((r) => gateway.close(r));
    await new Promise((r) => other.close(r));
  }
});
