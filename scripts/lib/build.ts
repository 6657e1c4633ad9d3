/**
 * The compiled functions (dist/) for what runs them as a deployment would — a spawned functions-framework, the
 * Firebase Functions emulator, the Lambda package: built with `npm run build` when missing or older than any
 * TypeScript source under functions/ or shared/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Runs `npm run build` when dist/functions/index.js is missing or stale; throws with the build's output. */
export function ensureBuilt(timeoutMs = 180_000): void {
  const entry = join(ROOT, 'dist/functions/index.js');
  const sources = Math.max(newestSource(join(ROOT, 'functions')), newestSource(join(ROOT, 'shared')));
  if (existsSync(entry) && statSync(entry).mtimeMs >= sources) return;
  try {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe', timeout: timeoutMs });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`npm run build failed:\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
  }
}
