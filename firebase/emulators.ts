/**
 * OpenEKM in the Firebase Emulator Suite: the Functions emulator (firebase-tools, installed apart from the root
 * package in firebase/node_modules) serving the four built functions (firebase/functions → dist/) against a
 * Firestore emulator that we start ourselves (firebase-tools 15 refuses to run its Java emulators on Java < 21).
 *
 * As a library: startFunctionsEmulator() for the test. As a program (`npx tsx firebase/emulators.ts`): the
 * emulator stack for a laptop — Firestore emulator (unless FIRESTORE_EMULATOR_HOST points at one), the reference
 * EKM, and `firebase emulators:start --only functions` with the local stack's identity (.openekm/); Ctrl-C stops
 * everything it started. See docs/firebase.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureBuilt } from '../scripts/lib/build.js';
import { EmulatorMissingError, freePort, startFirestoreEmulator } from '../scripts/lib/firestore-emulator.js';
import { startLocalEkm } from '../scripts/lib/local-ekm.js';
import { localGatewayEnv, stateDir } from '../scripts/lib/local-state.js';

/** Builds dist/ when it is missing or stale (the codebase re-exports it). */
export { ensureBuilt };

export const ROOT = resolve(import.meta.dirname, '..');
export const FIREBASE_DIR = join(ROOT, 'firebase');
/** The functions codebase named in firebase.json. */
export const CODEBASE_DIR = join(FIREBASE_DIR, 'functions');
/** A demo- project needs no credentials, and the emulator then never calls a real Google service. */
export const PROJECT_ID = 'demo-openekm';
export const REGION = 'us-central1';
export const FUNCTION_NAMES = ['keyAdmin', 'encrypt', 'decrypt', 'healthCheck'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];
export const INSTALL_COMMAND = 'npm ci --ignore-scripts --no-audit --no-fund --prefix firebase';

export class ToolingMissingError extends Error {}

/** The firebase CLI of the isolated install; a ToolingMissingError saying how to install it when it is missing. */
export function firebaseCli(): string {
  const cli = join(FIREBASE_DIR, 'node_modules/firebase-tools/lib/bin/firebase.js');
  const needed = [
    cli,
    join(FIREBASE_DIR, 'node_modules/firebase-functions/package.json'),
    join(FIREBASE_DIR, 'node_modules/firebase-admin/package.json'),
  ];
  const missing = needed.filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new ToolingMissingError(
      [
        'The Firebase emulator tooling is not installed (firebase/node_modules is missing or incomplete).',
        'It is kept out of the root package.json; install it once, from the repository root, with:',
        `  ${INSTALL_COMMAND}`,
        '(firebase-tools, firebase-functions and firebase-admin from firebase/package-lock.json: ~300 MB, about a minute.)',
      ].join('\n'),
    );
  }
  return cli;
}

/** The URL of one function in the Functions emulator; the API path follows it (…/encrypt/v1/projects/…:encrypt). */
export function functionUrl(port: number, name: FunctionName): string {
  return `http://127.0.0.1:${port}/${PROJECT_ID}/${REGION}/${name}`;
}

/** The environment every emulator process gets: offline, no metadata server, no start-up message fetch. */
export const OFFLINE_ENV = {
  CI: 'true',
  npm_config_offline: 'true',
  METADATA_SERVER_DETECTION: 'none',
} as const;

export interface RunningFunctionsEmulator {
  port: number;
  pid: number;
  url(name: FunctionName): string;
  /** Everything the emulator printed (its own lines and the functions' log lines). */
  output: string[];
  stop(): Promise<void>;
}

export interface FunctionsEmulatorOptions {
  /** The functions' environment (OPENEKM_*, FIRESTORE_EMULATOR_HOST), on top of this process's. */
  env: Record<string, string>;
  /**
   * Free loopback ports: `true` runs with a copy of firebase.json whose every emulator port is a free one (for
   * tests); `false` (default) runs with firebase.json as it is (Functions emulator on 127.0.0.1:5001).
   */
  ephemeralPorts?: boolean;
  /** Each line of output as it arrives (default: collected only). */
  log?: (line: string) => void;
  readyTimeoutMs?: number;
}

/**
 * Starts `firebase emulators:start --only functions --project demo-openekm` in its own process group and resolves
 * once it reports all emulators ready. stop() ends the whole group (the CLI and the function workers it spawned).
 */
export async function startFunctionsEmulator(
  options: FunctionsEmulatorOptions,
): Promise<RunningFunctionsEmulator> {
  const cli = firebaseCli();
  const config = JSON.parse(readFileSync(join(ROOT, 'firebase.json'), 'utf8')) as {
    functions: Array<{ source: string }>;
    emulators: Record<string, unknown> & { functions: { host: string; port: number } };
  };
  let port = config.emulators.functions.port;
  let workDir = ROOT;
  let tempDir: string | undefined;
  let configCopy: string | undefined;
  const args = [cli, 'emulators:start', '--only', 'functions', '--project', PROJECT_ID];
  if (options.ephemeralPorts) {
    // firebase-tools takes ports from the configuration only, so this runs with a copy of firebase.json whose
    // ports are free ones. The project directory is the copy's directory and a codebase source may not leave it
    // (nor be absolute), so the copy sits in firebase/ (ignored by firebase/.gitignore) with source "functions".
    // The CLI runs in a temporary directory, where a firebase-debug.log would land.
    tempDir = mkdtempSync(join(tmpdir(), 'openekm-firebase-'));
    port = await freePort();
    const emulators: Record<string, unknown> = {
      ...config.emulators,
      functions: { host: '127.0.0.1', port },
    };
    for (const name of ['hub', 'logging', 'eventarc', 'tasks']) {
      emulators[name] = { host: '127.0.0.1', port: await freePort() };
    }
    const copy = {
      ...config,
      functions: config.functions.map((f) => ({
        ...f,
        source: relative(FIREBASE_DIR, resolve(ROOT, f.source)),
      })),
      emulators,
    };
    configCopy = join(FIREBASE_DIR, `.emulators-${process.pid}-${port}.json`);
    writeFileSync(configCopy, JSON.stringify(copy, null, 2));
    args.push('--config', configCopy);
    workDir = tempDir;
  }
  const output: string[] = [];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: workDir,
    env: { ...process.env, ...options.env, ...OFFLINE_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pid = child.pid!;
  let ready = false;
  let pending = '';
  const onData = (d: Buffer) => {
    pending += d.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      output.push(line);
      options.log?.(line);
      if (line.includes('All emulators ready')) ready = true;
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // the group is already gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    // The CLI stops its workers on a clean shutdown; whatever of its group is left (a worker, or the CLI itself
    // after 10 s) is killed.
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // nothing left
    }
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    if (configCopy) rmSync(configCopy, { force: true });
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 90_000);
  while (!ready) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      const why =
        child.exitCode !== null || child.signalCode !== null
          ? `exited (${child.exitCode ?? child.signalCode}) before it was ready`
          : `was not ready within ${options.readyTimeoutMs ?? 90_000} ms`;
      await stop();
      throw new Error(`firebase emulators:start ${why}:\n${[...output, pending].join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, pid, url: (name) => functionUrl(port, name), output, stop };
}

/** `npm run emulators`: the emulator stack for a laptop, stopped with Ctrl-C. */
async function main(): Promise<void> {
  const stops: Array<() => Promise<void>> = [];
  let stopping = false;
  const shutdown = async (code: number) => {
    if (!stopping) {
      stopping = true;
      for (const s of stops.reverse()) await s().catch(() => undefined);
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  try {
    firebaseCli();
    ensureBuilt();
    let firestoreHost = process.env.FIRESTORE_EMULATOR_HOST;
    if (!firestoreHost) {
      const firestore = await startFirestoreEmulator();
      stops.push(firestore.stop);
      firestoreHost = firestore.host;
    }
    const local = await startLocalEkm({
      httpPort: Number(process.env.OPENEKM_EKM_HTTP_PORT ?? 8190),
      httpsPort: Number(process.env.OPENEKM_EKM_HTTPS_PORT ?? 8191),
    });
    stops.push(() => local.ekm.stop());
    const env: Record<string, string> = {
      ...(await localGatewayEnv(firestoreHost)),
      ...local.env,
      OPENEKM_LOG_LEVEL: process.env.OPENEKM_LOG_LEVEL ?? 'info',
    };
    const functions = await startFunctionsEmulator({ env, log: (l) => process.stdout.write(`${l}\n`) });
    stops.push(functions.stop);
    process.stdout.write(
      [
        '',
        `OpenEKM in the Firebase Functions emulator (project ${PROJECT_ID}, region ${REGION}):`,
        ...FUNCTION_NAMES.map((n) => `  ${n.padEnd(12)} ${functions.url(n)}`),
        `  e.g.         ${functions.url('encrypt')}/v1/projects/{project}/locations/{location}/keyRings/{ring}/cryptoKeys/{key}:encrypt`,
        `  Firestore:   ${firestoreHost} (project ${env.OPENEKM_FIRESTORE_PROJECT})`,
        `  EKM:         ${local.ekm.httpUrl}; keys: npm run --silent ekm -- keys create KEY_ID`,
        `  token:       npm run --silent token   (state in ${stateDir()})`,
        '',
      ].join('\n'),
    );
  } catch (err) {
    const known = err instanceof EmulatorMissingError || err instanceof ToolingMissingError;
    process.stderr.write(
      `${known ? (err as Error).message : `Failed to start: ${(err as Error).message}`}\n`,
    );
    await shutdown(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
