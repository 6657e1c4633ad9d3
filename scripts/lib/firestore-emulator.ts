/**
 * Starts Google's Firestore emulator (java) on loopback and stops it again, killing by the PID we started.
 * Run directly with java so that stopping it leaves nothing behind (the vendor launcher script does not exec).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

export class EmulatorMissingError extends Error {}

const HOW_TO_INSTALL = [
  'The Firestore emulator was not found. Install one of:',
  '  - the Google Cloud CLI component:  gcloud components install cloud-firestore-emulator',
  "  - the Debian/Ubuntu package from Google's apt repository:  apt-get install google-cloud-cli-firestore-emulator",
  '  - or start any Firestore emulator yourself and export FIRESTORE_EMULATOR_HOST=127.0.0.1:<port>.',
  'It needs Java 11 or newer.',
].join('\n');

function findEmulatorJar(): string {
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
  /** The java process. */
  pid: number;
  stop(): Promise<void>;
  /**
   * Writes the project's documents as a Firestore export into `directory` (made if needed) under `name`, through
   * the emulator's export endpoint: `directory/name/name.overall_export_metadata` and its data files.
   */
  exportTo(project: string, directory: string, name: string): Promise<void>;
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
  options: {
    port?: number;
    log?: (line: string) => void;
    /** A Firestore export's `.overall_export_metadata` file to load at start (the emulator's --import-data). */
    importFrom?: string;
    /**
     * Run java in its own process group, so a Ctrl-C on the terminal reaches only this process, which can then save
     * the data before stopping the emulator. It is killed when this process exits.
     */
    ownProcessGroup?: boolean;
  } = {},
): Promise<RunningEmulator> {
  const jar = findEmulatorJar();
  const port = options.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  const args = [
    '-cp',
    jar,
    'com.google.cloud.datastore.emulator.firestore.CloudFirestore',
    'start',
    '--host=127.0.0.1',
    `--port=${port}`,
  ];
  if (options.importFrom) args.push(`--import-data=${resolve(options.importFrom)}`);
  const child = spawn('java', args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.ownProcessGroup === true,
  });
  if (options.ownProcessGroup) {
    const killOnExit = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
  }
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
  const exportTo = async (project: string, directory: string, name: string) => {
    mkdirSync(directory, { recursive: true });
    const res = await fetch(`http://${host}/emulator/v1/projects/${encodeURIComponent(project)}:export`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        database: `projects/${project}/databases/(default)`,
        export_directory: resolve(directory),
        export_name: name,
      }),
      signal: AbortSignal.timeout(30_000),
    });
    if (!res.ok)
      throw new Error(`The Firestore emulator's export failed: HTTP ${res.status} ${await res.text()}`);
  };
  return { host, pid: child.pid!, stop, exportTo };
}

const SNAPSHOT = 'snapshot';

/** The snapshot's metadata file in `dir`, if there is one (after an interrupted swap, the previous snapshot). */
export function findSnapshot(dir: string): string | undefined {
  for (const name of [SNAPSHOT, `${SNAPSHOT}.previous`]) {
    const metadata = join(dir, name, `${SNAPSHOT}.overall_export_metadata`);
    if (existsSync(metadata)) return metadata;
  }
  return undefined;
}

function digestOf(dir: string): string {
  const hash = createHash('sha256');
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (!entry.name.endsWith('export_metadata')) hash.update(entry.name).update(readFileSync(p));
    }
  };
  walk(dir);
  return hash.digest('hex');
}

export interface PersistentEmulator extends RunningEmulator {
  /** Whether the emulator started from a saved snapshot. */
  restored: boolean;
  /** Saves a snapshot now (the periodic save and stop() call this). */
  save(): Promise<void>;
}

/**
 * A Firestore emulator whose data lives in `dir` across restarts: it starts from the last snapshot there, saves a
 * new one every `saveEverySeconds` (only when the data changed) and once more when stopped. A snapshot is a
 * Firestore export of `project`, written next to the old one and swapped in by renames, so a crash at any moment
 * leaves the last complete snapshot; an unclean stop loses at most the last `saveEverySeconds`.
 */
export async function startPersistentFirestoreEmulator(options: {
  dir: string;
  project: string;
  port?: number;
  saveEverySeconds?: number;
  log?: (line: string) => void;
  /** Called when a periodic save fails (the emulator keeps running). */
  onSaveError?: (err: Error) => void;
}): Promise<PersistentEmulator> {
  const { dir, project } = options;
  // Private: the documents hold sealed key material and who may use which key.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const snapshot = findSnapshot(dir);
  const emulator = await startFirestoreEmulator({
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(snapshot ? { importFrom: snapshot } : {}),
    ownProcessGroup: true,
  });
  const current = join(dir, SNAPSHOT);
  let lastDigest = existsSync(current) ? digestOf(current) : '';
  let saving: Promise<void> | undefined;
  const saveOnce = async () => {
    const staging = join(dir, `.saving-${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    try {
      await emulator.exportTo(project, staging, SNAPSHOT);
      const fresh = join(staging, SNAPSHOT);
      const digest = digestOf(fresh);
      if (digest === lastDigest) return;
      const previous = join(dir, `${SNAPSHOT}.previous`);
      rmSync(previous, { recursive: true, force: true });
      if (existsSync(current)) renameSync(current, previous);
      renameSync(fresh, current);
      rmSync(previous, { recursive: true, force: true });
      lastDigest = digest;
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  };
  // One save at a time: a save asked for while one runs waits for it and then runs.
  const save = async () => {
    while (saving) await saving.catch(() => undefined);
    saving = saveOnce();
    try {
      await saving;
    } finally {
      saving = undefined;
    }
  };
  const timer = setInterval(
    () => {
      save().catch((err: Error) => options.onSaveError?.(err));
    },
    (options.saveEverySeconds ?? 5) * 1000,
  );
  timer.unref();
  return {
    host: emulator.host,
    pid: emulator.pid,
    restored: snapshot !== undefined,
    exportTo: emulator.exportTo,
    save,
    async stop() {
      clearInterval(timer);
      try {
        await save();
      } finally {
        await emulator.stop();
      }
    },
  };
}
