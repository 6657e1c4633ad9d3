/**
 * Runs the test suite with Node's test runner against a real Firestore emulator: starts one (unless
 * FIRESTORE_EMULATOR_HOST is set), runs every test/**\/*.test.ts file (or the files given), stops it again.
 *
 * Output: script./lib/test-reporter.mjs (one line per file, failures in full, a summary ending in the runner's
 * `# tests/# pass/# fail` lines); OPENEKM_TEST_REPORTER=spec|tap|dot selects one of Node's own reporters instead.
 * Before and after the run it prints one loud line for every system package whose tests are skipped (or, in CI,
 * will fail) because the package is missing: scripts/lib/system-packages.ts.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EmulatorMissingError, startFirestoreEmulator } from './lib/firestore-emulator.js';
import { isInstalled, missingLine, SYSTEM_PACKAGES, type SystemPackage } from './lib/system-packages.js';

function findTests(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((entry) => {
      const p = join(dir, entry);
      return statSync(p).isDirectory() ? findTests(p) : p.endsWith('.test.ts') ? [p] : [];
    })
    .sort();
}

const files = process.argv.slice(2).length > 0 ? process.argv.slice(2) : findTests('test');
const missing = (Object.keys(SYSTEM_PACKAGES) as SystemPackage[]).filter((p) => !isInstalled(p));
const loud = () => {
  for (const p of missing) process.stderr.write(`\n!! ${missingLine(p)}\n`);
};
loud();
let emulator: Awaited<ReturnType<typeof startFirestoreEmulator>> | undefined;
if (!process.env.FIRESTORE_EMULATOR_HOST) {
  try {
    emulator = await startFirestoreEmulator();
  } catch (err) {
    process.stderr.write(`${err instanceof EmulatorMissingError ? err.message : (err as Error).message}\n`);
    process.exit(1);
  }
}
const env = {
  ...process.env,
  FIRESTORE_EMULATOR_HOST: process.env.FIRESTORE_EMULATOR_HOST ?? emulator!.host,
  METADATA_SERVER_DETECTION: 'none',
  OPENEKM_LOG_LEVEL: process.env.OPENEKM_LOG_LEVEL ?? 'error',
};
const builtIn = process.env.OPENEKM_TEST_REPORTER;
const reporter = builtIn ?? fileURLToPath(new URL('./lib/test-reporter.mjs', import.meta.url));
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-timeout=240000',
    `--test-reporter=${reporter}`,
    '--test-reporter-destination=stdout',
    ...files,
  ],
  {
    stdio: 'inherit',
    env,
  },
);
const stop = () => child.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const code: number = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
await emulator?.stop();
loud();
process.exit(code);
