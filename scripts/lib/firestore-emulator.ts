/**
 * Starts Google's Firestore emulator (java) on loopback and stops it again, killing by the PID we started.
 * Run directly with java so that stopping it leaves nothing behind (the vendor launcher script does not exec).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export class EmulatorMissingError extends Error {}

const HOW_TO_INSTALL = [
  'The Firestore emulator was not found. Install one of:',
  '  - the Google Cloud CLI component:  gcloud components install cloud-firestore-emulator',
  "  - the Debian/Ubuntu package from Google's apt repository:  apt-get install google-cloud-cli-firestore-emulator",
  '  - or start any Firestore emulator yourself and export FIRESTORE_EMULATOR_HOST=127.0.0.1:<port>.',
  'It needs Java 11 or newer.',
].join('\n');

export function findEmulatorJar(): string {
  const candidates: string[] = [];
  if (process.env.OPENEKM_FIRESTORE_EMULATOR_JAR) candidates.push(process.env.OPENEKM_FIRESTORE_EMULATOR_JAR);
  try {
    const root = execFileSync('gcloud', ['info', '--format=value(installation.sdk_root)'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, CLOUDSDK_CORE_DISABLE_PROMPTS: '1' },
      timeout: 20_000,
    }).trim();
    if (root) candidates.push(join(root, 'platform/cloud-firestore-emulator/cloud-firestore-emulator.jar'));
  } catch {
    // gcloud not installed: try the usual places
  }
  candidates.push(
    '/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar',
    '/usr/share/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar',
  );
  const jar = candidates.find((c) => existsSync(c));
  if (!jar) throw new EmulatorMissingError(HOW_TO_INSTALL);
  return jar;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export interface RunningEmulator {
  host: string;
  stop(): Promise<void>;
}

async function waitReady(host: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`The Firestore emulator exited early (code ${child.exitCode}).`);
    try {
      const res = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(500) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`The Firestore emulator did not become ready within ${timeoutMs} ms.`);
}

export async function startFirestoreEmulator(
  options: { port?: number; log?: (line: string) => void } = {},
): Promise<RunningEmulator> {
  const jar = findEmulatorJar();
  const port = options.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  const child = spawn(
    'java',
    [
      '-cp',
      jar,
      'com.google.cloud.datastore.emulator.firestore.CloudFirestore',
      'start',
      '--host=127.0.0.1',
      `--port=${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  const collect = (b: Buffer) => {
    for (const l of b.toString('utf8').split('\n'))
      if (l.trim()) {
        lines.push(l);
        if (lines.length > 50) lines.shift();
        options.log?.(l);
      }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitReady(host, child, 60_000);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${lines.join('\n')}`);
  }
  return { host, stop };
}
