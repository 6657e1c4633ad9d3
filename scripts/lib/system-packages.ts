/**
 * The system packages some tests need and npm cannot install: SoftHSM2 (the reference EKM's PKCS#11 key store) and
 * Chromium (the status page's browser test). `npm test` installs them with apt-get where it can (as root); where it
 * cannot, the tests that need them are skipped — each skip names the package and the command that installs it, and
 * the test runner prints one loud line per missing package before and after the run. In CI (`CI=true`) nothing is
 * skipped: a missing package fails its tests.
 *
 * `OPENEKM_TEST_WITHOUT=softhsm2,chromium` treats the listed packages as missing (to see the skip path, or to leave
 * those tests out on purpose).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { findSoftHsmModule } from '@openekm/reference-ekm/config';

export type SystemPackage = 'softhsm2' | 'chromium';

export interface SystemPackageInfo {
  /** What the tests need, in words. */
  what: string;
  /** The tests that need it. */
  tests: string;
  /** The command that installs it on Debian/Ubuntu. */
  install: string;
  /** The Debian packages `npm test` installs for it when it runs as root. */
  aptPackages: string[];
}

export const SYSTEM_PACKAGES: Record<SystemPackage, SystemPackageInfo> = {
  softhsm2: {
    what: 'SoftHSM2 (libsofthsm2.so)',
    tests: "the reference EKM's SoftHSM (PKCS#11) key-store tests",
    install: 'sudo apt-get install -y softhsm2',
    aptPackages: ['softhsm2'],
  },
  chromium: {
    what: 'Chromium',
    tests: "the status page's headless-browser test",
    install: 'sudo apt-get install -y chromium fonts-liberation',
    aptPackages: ['chromium', 'fonts-liberation'],
  },
};

const CHROMIUM_NAMES = ['chromium', 'chromium-browser'];
/** Debian's and Ubuntu's package path, when PATH does not have it. */
const CHROMIUM_FALLBACK = '/usr/bin/chromium';

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Chromium executable: `OPENEKM_CHROMIUM` if set, else `chromium` (or `chromium-browser`) on PATH, else
 * /usr/bin/chromium. Throws, saying how to install it, when there is none.
 */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.OPENEKM_CHROMIUM;
  if (override) {
    if (isExecutable(override)) return override;
    throw new Error(
      `OPENEKM_CHROMIUM=${override} is not an executable file: point it at Chromium, or unset it and \`apt-get install chromium\``,
    );
  }
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const name of CHROMIUM_NAMES) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  if (isExecutable(CHROMIUM_FALLBACK)) return CHROMIUM_FALLBACK;
  throw new Error(
    'Chromium not found (looked for OPENEKM_CHROMIUM, chromium and chromium-browser on PATH, /usr/bin/chromium): ' +
      'install it with `apt-get install chromium` (CI does), or point OPENEKM_CHROMIUM at a Chromium binary',
  );
}

function without(env: NodeJS.ProcessEnv): Set<string> {
  return new Set(
    (env.OPENEKM_TEST_WITHOUT ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/** Whether the package is installed (and not listed in OPENEKM_TEST_WITHOUT). */
export function isInstalled(pkg: SystemPackage, env: NodeJS.ProcessEnv = process.env): boolean {
  if (without(env).has(pkg)) return false;
  if (pkg === 'softhsm2') return findSoftHsmModule() !== undefined;
  try {
    findChromium(env);
    return true;
  } catch {
    return false;
  }
}

/** CI runs everything: `CI=true` (or `1`). */
export function runsEverything(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true' || env.CI === '1';
}

/** The one loud line for a missing package. */
export function missingLine(pkg: SystemPackage, env: NodeJS.ProcessEnv = process.env): string {
  const info = SYSTEM_PACKAGES[pkg];
  const forced = without(env).has(pkg) ? ' (OPENEKM_TEST_WITHOUT)' : '';
  return runsEverything(env)
    ? `MISSING ${pkg}${forced}: ${info.tests} will FAIL (CI=true runs everything). Install it: ${info.install}`
    : `SKIPPING ${info.tests}: ${info.what} is not installed${forced}. Install it: ${info.install}`;
}

/**
 * For a test's `skip` option: false when the package is installed or in CI (where the test then fails and says
 * what is missing), else the reason, naming the package and the install command.
 */
export function skipWithout(pkg: SystemPackage, env: NodeJS.ProcessEnv = process.env): string | false {
  if (isInstalled(pkg, env) || runsEverything(env)) return false;
  return `${pkg} is not installed: ${SYSTEM_PACKAGES[pkg].install}`;
}
