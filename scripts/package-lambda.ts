/**
 * Packages the functions for deployment (no zip program, no npm, no network):
 *
 *   npx tsx scripts/package-lambda.ts            AWS Lambda: .openekm/lambda.zip — dist/functions, dist/shared,
 *                                                 package.json, the production node_modules and lambda.mjs (the
 *                                                 handler module; docs/lambda.md)
 *   npx tsx scripts/package-lambda.ts --gcf      Cloud Functions: .openekm/function-source.zip — dist/functions,
 *                                                 dist/shared, package.json, package-lock.json; Cloud Build installs
 *                                                 the dependencies (infra/README.md, "Source")
 *
 * Options: --out <file> writes elsewhere; --skip-build uses dist/ as it is instead of running `npm run build`.
 *
 * What ships is the gateway alone: the closure of the root package's production `dependencies`, walked through
 * package-lock.json as Node resolves them. Dev dependencies and the reference EKM workspace (@openekm/reference-ekm,
 * with its own dependencies) never ship. Both zips carry a deploy package.json — the root one without
 * `workspaces`, `devDependencies` and `scripts` — and the GCF zip a package-lock.json cut to that closure, so
 * Cloud Build's `npm ci` installs exactly what the Lambda zip carries. The Lambda's node_modules are copied from
 * this checkout (so run `npm ci` first, on Linux x86_64 for an x86_64 Lambda: native packages are copied as
 * built). Zips are written by yazl and reproducible: entries sorted, timestamps fixed, so the same build gives
 * the same bytes (and the same object name in infra/).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ZipFile } from 'yazl';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');

/** The Lambda handler module at the zip's root: fetches secrets into files, then loads the functions. */
const LAMBDA_MJS = `// The AWS Lambda entry module, written by scripts/package-lambda.ts (docs/lambda.md).
// Handlers: lambda.keyAdminLambda, lambda.encryptLambda, lambda.decryptLambda, lambda.healthCheckLambda
// (API Gateway HTTP API v2 / REST v1 / ALB events; each serves its own function's routes), lambda.routerLambda
// (all four in one Lambda: picks the function from the path, as the load balancer does on Google Cloud) and
// lambda.healthProbeLambda (a scheduled event: the EKM probe and the scheduled tasks).
//
// OPENEKM_AWS_SECRET_FILES = {"/tmp/openekm/<file>": "<Secrets Manager secret ARN or name>", ...}: each secret is
// fetched at cold start, before the functions load, and written to its path (mode 0600), so that
// GOOGLE_APPLICATION_CREDENTIALS, OPENEKM_ROOT_KEYS_FILE, OPENEKM_SIGNING_KEYS_FILE and the EKM endpoints'
// {"file": ...} refs can name those paths. The AWS SDK comes with the Lambda Node.js runtime.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const spec = process.env.OPENEKM_AWS_SECRET_FILES;
if (spec) {
  let files;
  try {
    files = JSON.parse(spec);
  } catch {
    throw new Error('OPENEKM_AWS_SECRET_FILES is not valid JSON: give {"/tmp/openekm/<file>": "<secret ARN>"}.');
  }
  const { SecretsManagerClient, GetSecretValueCommand } = createRequire(import.meta.url)(
    '@aws-sdk/client-secrets-manager',
  );
  const client = new SecretsManagerClient({});
  await Promise.all(
    Object.entries(files).map(async ([path, secretId]) => {
      if (!path.startsWith('/tmp/')) throw new Error(\`OPENEKM_AWS_SECRET_FILES: \${path} is not under /tmp/.\`);
      const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
      const value = out.SecretString ?? Buffer.from(out.SecretBinary ?? []).toString('utf8');
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, value, { mode: 0o600 });
    }),
  );
}

// The handlers are typed code (functions/lambda.ts), loaded after the secrets are in place: one per function,
// routerLambda (all four in one Lambda, dispatched by the route table) and healthProbeLambda.
const handlers = await import('./dist/functions/lambda.js');
export const { keyAdminLambda, encryptLambda, decryptLambda, healthCheckLambda, routerLambda, healthProbeLambda } =
  handlers;
`;

interface Entry {
  name: string;
  data: Buffer;
  mode: number;
}

function args(): { gcf: boolean; out: string; skipBuild: boolean } {
  const argv = process.argv.slice(2);
  const gcf = argv.includes('--gcf');
  const i = argv.indexOf('--out');
  const out =
    i >= 0 && argv[i + 1]
      ? resolve(argv[i + 1]!)
      : join(ROOT, '.openekm', gcf ? 'function-source.zip' : 'lambda.zip');
  const unknown = argv.filter(
    (a, j) => !['--gcf', '--skip-build', '--out'].includes(a) && argv[j - 1] !== '--out',
  );
  if (unknown.length > 0) {
    process.stderr.write(
      `Unknown arguments: ${unknown.join(' ')}\nUsage: package-lambda.ts [--gcf] [--out file] [--skip-build]\n`,
    );
    process.exit(2);
  }
  return { gcf, out, skipBuild: argv.includes('--skip-build') };
}

/** Every regular file under `dir` (relative to ROOT), skipping symlinks and what `skip` refuses. */
function filesUnder(dir: string, skip: (rel: string) => boolean = () => false): Entry[] {
  const out: Entry[] = [];
  const walk = (abs: string) => {
    for (const name of readdirSync(abs)) {
      const p = join(abs, name);
      const rel = relative(ROOT, p).split('\\').join('/');
      if (skip(rel)) continue;
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile())
        out.push({ name: rel, data: readFileSync(p), mode: st.mode & 0o111 ? 0o755 : 0o644 });
    }
  };
  walk(join(ROOT, dir));
  return out;
}

interface LockPackage {
  version?: string;
  link?: boolean;
  resolved?: string;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [field: string]: unknown;
}

interface Lock {
  name: string;
  version: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockPackage>;
}

interface Manifest {
  dependencies?: Record<string, string>;
  allowScripts?: Record<string, boolean>;
  [field: string]: unknown;
}

const readJson = <T>(rel: string): T => JSON.parse(readFileSync(join(ROOT, rel), 'utf8')) as T;

/** Where Node finds `name` from the package at `from` ("" is the root): the nearest node_modules going up. */
function locate(lock: Lock, from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = base ? `${base}/node_modules/${name}` : `node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!base) return undefined;
    const up = base.lastIndexOf('/node_modules/');
    base = up >= 0 ? base.slice(0, up) : '';
  }
}

/**
 * The lock paths (node_modules/…) of the root's production dependencies and everything they depend on. A missing
 * optional or optional-peer dependency is skipped; any other missing one means the lock is out of date.
 */
function productionClosure(lock: Lock, rootDependencies: Record<string, string>): string[] {
  const found = new Set<string>();
  const visit = (from: string, deps: Record<string, string>, optional: (name: string) => boolean) => {
    for (const name of Object.keys(deps)) {
      const path = locate(lock, from, name);
      if (!path) {
        if (optional(name)) continue;
        throw new Error(
          `${name} (needed by ${from || 'the root package'}) is not in package-lock.json: run npm install.`,
        );
      }
      if (found.has(path)) continue;
      const meta = lock.packages[path]!;
      if (meta.link)
        throw new Error(`${name} is a workspace link; the gateway must not depend on a workspace.`);
      found.add(path);
      visit(path, meta.dependencies ?? {}, () => false);
      visit(path, meta.optionalDependencies ?? {}, () => true);
      visit(path, meta.peerDependencies ?? {}, (n) => meta.peerDependenciesMeta?.[n]?.optional === true);
    }
  };
  visit('', rootDependencies, () => false);
  return [...found].sort();
}

/** The root package.json as a deployment needs it: no workspaces, dev dependencies or build scripts. */
function deployManifest(root: Manifest, closure: string[]): Manifest {
  const { workspaces, devDependencies, scripts, allowScripts, ...rest } = root;
  const shipped = new Set(
    closure.map((p) => p.slice(p.lastIndexOf('node_modules/') + 'node_modules/'.length)),
  );
  const kept = Object.entries(allowScripts ?? {}).filter(([name]) =>
    shipped.has(name.replace(/(.)@.*$/, '$1')),
  );
  return kept.length > 0 ? { ...rest, allowScripts: Object.fromEntries(kept) } : rest;
}

/** package-lock.json cut to the deploy manifest and the production closure, so that `npm ci` accepts it. */
function deployLock(lock: Lock, manifest: Manifest, closure: string[]): Lock {
  const { name, version, license, engines } = lock.packages['']!;
  const top = { name, version, license, dependencies: manifest.dependencies, engines };
  const packages: Record<string, LockPackage> = { '': JSON.parse(JSON.stringify(top)) as LockPackage };
  for (const path of closure) {
    const { dev, devOptional, ...meta } = lock.packages[path]!;
    // Optional for dev or prod ("devOptional") is plainly optional once the dev side is gone.
    packages[path] = devOptional ? { ...meta, optional: true } : meta;
  }
  return {
    name: lock.name,
    version: lock.version,
    lockfileVersion: lock.lockfileVersion,
    requires: true,
    packages,
  };
}

/** The installed files of the closure's packages, each without its nested node_modules. */
function productionModules(lock: Lock, closure: string[]): Entry[] {
  const out: Entry[] = [];
  for (const path of closure) {
    if (!existsSync(join(ROOT, path))) {
      if (lock.packages[path]!.optional) continue; // another platform's binary, say
      throw new Error(`${path} is in package-lock.json but not installed: run npm ci first.`);
    }
    out.push(
      ...filesUnder(path, (rel) => rel.startsWith(`${path}/node_modules/`) || rel === `${path}/node_modules`),
    );
  }
  return out;
}

/** 1980-01-01 00:00 local time (the earliest zip date; local because zip dates have no zone): fixed. */
const ZIP_DATE = new Date(1980, 0, 1, 0, 0, 0);

/** A zip of `entries`, sorted by name, with fixed dates and Unix modes: the same entries give the same bytes. */
async function zip(entries: Entry[]): Promise<Buffer> {
  const file = new ZipFile();
  const seen = new Set<string>();
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (seen.has(e.name)) throw new Error(`${e.name} is packaged twice`);
    seen.add(e.name);
    // A DOS timestamp only (no extended-timestamp field) and a regular file's Unix mode.
    file.addBuffer(e.data, e.name, {
      mtime: ZIP_DATE,
      forceDosTimestamp: true,
      mode: 0o100000 | e.mode,
      compressionLevel: 9,
    });
  }
  file.end();
  const chunks: Buffer[] = [];
  for await (const chunk of file.outputStream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// --- Main -------------------------------------------------------------------------------------------------------

const { gcf, out, skipBuild } = args();
if (!skipBuild) execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
for (const d of ['dist/functions/index.js', 'dist/shared']) {
  if (!existsSync(join(ROOT, d)))
    throw new Error(`${d} is missing: run npm run build (or drop --skip-build).`);
}
if (!gcf && (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch))) {
  throw new Error(
    `Packaging for Lambda on ${process.platform}/${process.arch}: native packages would not run there. Package on Linux (x64 or arm64).`,
  );
}

const compiled = [...filesUnder('dist/functions'), ...filesUnder('dist/shared')].filter(
  (e) => !e.name.endsWith('.map'),
);
const lock = readJson<Lock>('package-lock.json');
const rootManifest = readJson<Manifest>('package.json');
const closure = productionClosure(lock, rootManifest.dependencies ?? {});
const manifest = deployManifest(rootManifest, closure);
const json = (name: string, value: unknown): Entry => ({
  name,
  data: Buffer.from(`${JSON.stringify(value, null, 2)}\n`),
  mode: 0o644,
});
const entries: Entry[] = gcf
  ? [
      ...compiled,
      json('package.json', manifest),
      json('package-lock.json', deployLock(lock, manifest, closure)),
    ]
  : [
      ...compiled,
      json('package.json', manifest),
      ...productionModules(lock, closure),
      { name: 'lambda.mjs', data: Buffer.from(LAMBDA_MJS), mode: 0o644 },
    ];

const bytes = await zip(entries);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, bytes);
const unpacked = entries.reduce((n, e) => n + e.data.length, 0);
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
process.stdout.write(
  `${relative(process.cwd(), out) || out}: ${entries.length} files, ${mib(bytes.length)} (${mib(unpacked)} unpacked)\n` +
    (gcf
      ? 'Cloud Functions source: set var.source_zip to this file (infra/README.md).\n'
      : `Lambda: runtime nodejs20.x, architecture ${process.arch === 'arm64' ? 'arm64' : 'x86_64'}, handlers lambda.routerLambda (or lambda.keyAdminLambda, lambda.encryptLambda, lambda.decryptLambda, lambda.healthCheckLambda) and lambda.healthProbeLambda (docs/lambda.md).\n`),
);
