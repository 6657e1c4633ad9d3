/**
 * Packages the functions for deployment, with Node built-ins only (no zip program, no npm, no network):
 *
 *   npx tsx scripts/package-lambda.ts            AWS Lambda: .openekm/lambda.zip — dist/functions, dist/shared,
 *                                                 package.json, the production node_modules and lambda.mjs (the
 *                                                 handler module; docs/lambda.md)
 *   npx tsx scripts/package-lambda.ts --gcf      Cloud Functions: .openekm/function-source.zip — dist/functions,
 *                                                 dist/shared, package.json, package-lock.json; Cloud Build installs
 *                                                 the dependencies (infra/README.md, "Source")
 *
 * Options: --out <file> writes elsewhere; --skip-build uses dist/ as it is instead of running `npm run build`.
 * The production node_modules are the installed packages package-lock.json does not mark `dev`, copied from this
 * checkout's node_modules (so run `npm ci` first, on Linux x86_64 for an x86_64 Lambda: native packages are
 * copied as built). The zip is reproducible: entries sorted, timestamps fixed, so the same build gives the same
 * bytes (and the same object name in infra/).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { deflateRawSync } from 'node:zlib';

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

function file(rel: string): Entry {
  return { name: rel, data: readFileSync(join(ROOT, rel)), mode: 0o644 };
}

/** The installed packages that package-lock.json does not mark dev-only, each without its nested node_modules. */
function productionModules(): Entry[] {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean }>;
  };
  const out: Entry[] = [];
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || meta.dev) continue;
    if (!existsSync(join(ROOT, path))) {
      if (meta.optional) continue; // another platform's binary, say
      throw new Error(`${path} is in package-lock.json but not installed: run npm ci first.`);
    }
    out.push(
      ...filesUnder(path, (rel) => rel.startsWith(`${path}/node_modules/`) || rel === `${path}/node_modules`),
    );
  }
  return out;
}

// --- A minimal, reproducible zip writer (PKZIP 2.0: deflate or store, no ZIP64) ---------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** 1980-01-01 00:00, the earliest DOS date: fixed so the same input gives the same zip. */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

function zip(entries: Entry[]): Buffer {
  if (entries.length >= 0xffff) throw new Error(`${entries.length} files: too many for a zip without ZIP64`);
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const name = Buffer.from(e.name, 'utf8');
    const deflated = deflateRawSync(e.data, { level: 9 });
    const stored = deflated.length >= e.data.length;
    const body = stored ? e.data : deflated;
    const crc = crc32(e.data);
    if (offset + body.length > 0xffffffff) throw new Error('the zip would exceed 4 GiB');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(stored ? 0 : 8, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE((3 << 8) | 20, 4); // made by Unix, so the permissions below count
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x0800, 8);
    cd.writeUInt16LE(stored ? 0 : 8, 10);
    cd.writeUInt16LE(DOS_TIME, 12);
    cd.writeUInt16LE(DOS_DATE, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(((0o100000 | e.mode) << 16) >>> 0, 38); // regular file, rw-r--r-- or rwxr-xr-x
    cd.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    central.push(cd, name);
    offset += local.length + name.length + body.length;
  }
  const cdSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...central, end]);
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
const entries: Entry[] = gcf
  ? [...compiled, file('package.json'), file('package-lock.json')]
  : [
      ...compiled,
      file('package.json'),
      ...productionModules(),
      { name: 'lambda.mjs', data: Buffer.from(LAMBDA_MJS), mode: 0o644 },
    ];

const bytes = zip(entries);
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
