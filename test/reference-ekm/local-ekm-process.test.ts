/**
 * The local stack's reference EKM in its own process (scripts/lib/local-ekm.ts): it answers, its admin API in the
 * parent reaches it, stop() ends it, and a parent that is killed outright leaves no orphan behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startLocalEkm } from '../../scripts/lib/local-ekm.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('the child EKM serves, its admin API works from the parent, and stop() ends it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'openekm-child-'));
  try {
    const local = await startLocalEkm({ dir, httpPort: 0, httpsPort: 0, mode: 'test', log: () => {} });
    assert.notEqual(local.pid, process.pid);
    assert.ok(alive(local.pid));
    const live = await fetch(`${local.ekm.httpUrl}/healthz`);
    assert.equal(live.status, 200);
    await local.ekm.admin.createKey('child-key');
    // The key made by the parent is known to the child at once (an unauthenticated wrap is refused as such,
    // not as an unknown key).
    const res = await fetch(`${local.ekm.googleEkmHttpBaseUrl}/keys/child-key:wrap`, {
      method: 'POST',
      body: '{}',
    });
    assert.equal(res.status, 401);
    const missing = await fetch(`${local.ekm.xksBaseUrl('openekm')}/keys/nope/metadata`, {
      method: 'POST',
      body: '{}',
    });
    assert.ok(missing.status >= 400);
    await local.ekm.stop();
    await until('the EKM process to end', () => !alive(local.pid));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a parent killed with SIGKILL leaves no EKM process behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'openekm-orphan-'));
  try {
    const script = `
      const { startLocalEkm } = await import(${JSON.stringify(new URL('../../scripts/lib/local-ekm.ts', import.meta.url).href)});
      const local = await startLocalEkm({ dir: ${JSON.stringify(dir)}, httpPort: 0, httpsPort: 0, mode: 'test', log: () => {} });
      process.stdout.write(JSON.stringify({ pid: local.pid }) + '\\n');
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      parent.stdout!.on('data', (c) => {
        out += c;
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      parent.once('exit', (code) => reject(new Error(`the parent exited early (${code})`)));
    });
    const { pid } = JSON.parse(line) as { pid: number };
    assert.ok(alive(pid));
    parent.kill('SIGKILL');
    await until('the orphaned EKM to stop', () => !alive(pid));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
