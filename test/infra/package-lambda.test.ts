/**
 * scripts/package-lambda.ts, end to end: the Lambda zip is read back with an independent zip reader, unpacked in
 * a directory outside the repository (so nothing resolves from the repository's node_modules), and loaded by a
 * separate Node process with only the environment a Lambda would have. That proves the production dependencies
 * are complete, lambda.mjs fetches secrets into files before the functions load (a stand-in for the AWS SDK the
 * Lambda runtime provides), and routerLambda sends each path to the function that owns it. Only the gateway
 * ships: the closure of the root package's production dependencies, never the reference EKM workspace or its
 * dependencies. The Cloud Functions zip (--gcf) holds the compiled code and a deploy package.json and
 * package-lock.json (no workspace, no dev dependencies) that `npm ci` accepts as they are, and no node_modules.
 *
 * Uses dist/ (rebuilt when a source under functions/ or shared/ is newer, as the functions-framework test does).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { ensureBuilt } from '../../scripts/lib/build.js';

const ROOT = resolve(import.meta.dirname, '../..');
let work: string;
/** The package-lock.json of the Cloud Functions zip: its packages are what the Lambda zip must carry. */
let gcfLock: { packages: Record<string, { optional?: boolean }> } | undefined;

/** The reference EKM and what only it uses: none of it may be deployed. */
// The reference EKM and what only it uses never ship (pkcs11js and node-forge do: the gateway's HSM keys and
// RSA-PSS digest signing use them).
const NOT_SHIPPED = ['node_modules/@openekm/', 'reference-ekm/', 'node_modules/@aws-crypto/'];

function pack(out: string, ...extra: string[]): void {
  execFileSync(
    process.execPath,
    ['--import', 'tsx', 'scripts/package-lambda.ts', '--skip-build', '--out', out, ...extra],
    {
      cwd: ROOT,
      stdio: 'pipe',
      timeout: 180_000,
    },
  );
}

/** Every entry of a zip: name → { data, mode }, read from the central directory. */
function unzip(file: string): Map<string, { data: Buffer; mode: number }> {
  const buf = readFileSync(file);
  const end = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end >= 0, 'no end of central directory');
  const count = buf.readUInt16LE(end + 10);
  let p = buf.readUInt32LE(end + 16);
  const out = new Map<string, { data: Buffer; mode: number }>();
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(p), 0x02014b50, 'central directory entry');
    const method = buf.readUInt16LE(p + 10);
    const size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const mode = buf.readUInt32LE(p + 38) >>> 16;
    const local = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    const dataStart = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(dataStart, dataStart + size);
    out.set(name, { data: method === 8 ? inflateRawSync(raw) : Buffer.from(raw), mode });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

before(() => {
  ensureBuilt();
  work = mkdtempSync(join(tmpdir(), 'openekm-package-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

test('the Cloud Functions source zip: compiled code and package files, no dependencies', () => {
  pack(join(work, 'gcf.zip'), '--gcf');
  const entries = unzip(join(work, 'gcf.zip'));
  for (const name of ['dist/functions/index.js', 'package.json', 'package-lock.json'])
    assert.ok(entries.has(name), name);
  assert.ok([...entries.keys()].some((n) => n.startsWith('dist/shared/')));
  assert.ok(
    ![...entries.keys()].some(
      (n) => n.startsWith('node_modules/') || n.endsWith('.ts') || n.endsWith('.map'),
    ),
  );
  assert.equal(
    entries.get('dist/functions/index.js')!.data.toString(),
    readFileSync(join(ROOT, 'dist/functions/index.js'), 'utf8'),
  );
  assert.equal(entries.get('package.json')!.mode, 0o100644);
  // Reproducible: the same input gives the same bytes.
  pack(join(work, 'gcf2.zip'), '--gcf');
  assert.ok(readFileSync(join(work, 'gcf.zip')).equals(readFileSync(join(work, 'gcf2.zip'))));

  // The deploy package.json: the gateway's own, without the workspace, dev dependencies or build scripts.
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const manifest = JSON.parse(entries.get('package.json')!.data.toString());
  assert.ok(
    root.workspaces && root.devDependencies,
    'the root package.json has a workspace and dev dependencies',
  );
  for (const field of ['workspaces', 'devDependencies', 'scripts'])
    assert.equal(manifest[field], undefined, `no ${field}`);
  assert.deepEqual(manifest.dependencies, root.dependencies);
  assert.equal(manifest.main, root.main);
  assert.equal(manifest.type, 'module');
  gcfLock = JSON.parse(entries.get('package-lock.json')!.data.toString());
  const locked = Object.keys(gcfLock!.packages);
  assert.ok(locked.includes('node_modules/@google-cloud/firestore'));
  for (const prefix of NOT_SHIPPED)
    assert.ok(!locked.some((p) => `${p}/`.startsWith(prefix)), `${prefix} is not in the deploy lock`);
  // What Cloud Build runs: `npm ci` takes this package.json and lock as they are (offline: a dry run that would
  // have to resolve anything not in the lock fails).
  const unpacked = join(work, 'gcf');
  mkdirSync(unpacked);
  for (const name of ['package.json', 'package-lock.json'])
    writeFileSync(join(unpacked, name), entries.get(name)!.data);
  // Without the npm_* variables of an enclosing `npm test`, so that nothing points npm back at this checkout.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  const ci = execFileSync(
    'npm',
    ['ci', '--prefix', unpacked, '--dry-run', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'],
    { cwd: unpacked, stdio: 'pipe', timeout: 120_000, env },
  ).toString();
  const added = Number(/added (\d+) packages/.exec(ci)?.[1]);
  const required = locked.filter((p) => p !== '' && !gcfLock!.packages[p]!.optional).length;
  // Every locked package, less the optional ones for other platforms (native binaries).
  assert.ok(
    added >= required && added <= locked.length - 1,
    `npm ci would add ${added} of ${locked.length - 1}`,
  );
});

test('the Lambda zip loads on its own, fetches secrets into files, and routes every function', () => {
  pack(join(work, 'lambda.zip'));
  const entries = unzip(join(work, 'lambda.zip'));
  assert.ok(
    entries.has('lambda.mjs') && entries.has('dist/functions/index.js') && entries.has('package.json'),
  );
  const modules = [...entries.keys()].filter((n) => n.startsWith('node_modules/'));
  assert.ok(
    modules.some((n) => n.startsWith('node_modules/@google-cloud/firestore/')),
    'firestore is packaged',
  );
  assert.ok(
    !modules.some((n) => n.startsWith('node_modules/typescript/')),
    'dev dependencies are not packaged',
  );
  for (const prefix of NOT_SHIPPED)
    assert.ok(![...entries.keys()].some((n) => n.startsWith(prefix)), `${prefix} is not packaged`);
  // Exactly the closure the Cloud Functions lock names: every package in it, nothing outside it.
  if (gcfLock) {
    const closure = Object.entries(gcfLock.packages).filter(([p]) => p !== '');
    for (const [path, meta] of closure)
      assert.ok(meta.optional || entries.has(`${path}/package.json`), `${path} is packaged`);
    const paths = new Set(closure.map(([p]) => p));
    const owner = (name: string) => {
      for (let i = name.lastIndexOf('/'); i > 0; i = name.lastIndexOf('/', i - 1))
        if (paths.has(name.slice(0, i))) return true;
      return false;
    };
    const stray = modules.filter((n) => !owner(n));
    assert.deepEqual(stray, [], 'every packaged module file belongs to a locked production package');
  }

  const bundle = join(work, 'bundle');
  for (const [name, { data }] of entries) {
    mkdirSync(dirname(join(bundle, name)), { recursive: true });
    writeFileSync(join(bundle, name), data);
  }
  // What the Lambda runtime provides: the AWS SDK on NODE_PATH. A stand-in that serves two secrets.
  const sdk = join(work, 'runtime/@aws-sdk/client-secrets-manager');
  mkdirSync(sdk, { recursive: true });
  writeFileSync(
    join(sdk, 'index.js'),
    `class GetSecretValueCommand { constructor(input) { this.input = input; } }
class SecretsManagerClient {
  async send(c) {
    if (c.input.SecretId === 'arn:root') return { SecretString: 'root-1:${Buffer.alloc(32, 7).toString('base64')}' };
    throw new Error('no such secret ' + c.input.SecretId);
  }
}
module.exports = { SecretsManagerClient, GetSecretValueCommand };
`,
  );
  // Lambda's only writable place is /tmp, and lambda.mjs insists on it.
  const secrets = join(mkdtempSync('/tmp/openekm-secrets-'), 'files');
  const probe = join(work, 'probe.mjs');
  writeFileSync(
    probe,
    `const m = await import(${JSON.stringify(join(bundle, 'lambda.mjs'))});
const event = (method, path) => ({
  version: '2.0', routeKey: '$default', rawPath: path, rawQueryString: '', headers: { host: 'api.example.com' },
  requestContext: { http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 't' },
    requestId: 'r', stage: '$default', timeEpoch: 0 },
  isBase64Encoded: false,
});
const served = [];
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => {
  const fn = /"function":"(\\w+)"/.exec(String(chunk));
  if (fn) served.push(fn[1]);
  return true;
};
const paths = [
  ['GET', '/health'],
  ['GET', '/.well-known/openekm/jwks.json'],
  ['POST', '/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:encrypt'],
  ['POST', '/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1:encrypt'],
  ['POST', '/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:decrypt'],
  ['GET', '/v1/projects/p/locations/l/keyRings'],
  ['POST', '/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:setIamPolicy'],
  ['GET', '/nowhere'],
];
const out = [];
for (const [method, path] of paths) {
  const before = served.length;
  const r = await m.routerLambda(event(method, path), {});
  out.push({ path, status: r.statusCode, fn: served[before] });
}
write(JSON.stringify({ exports: Object.keys(m).sort(), out }) + '\\n');
`,
  );
  const result = execFileSync(process.execPath, [probe], {
    cwd: work,
    timeout: 60_000,
    env: {
      PATH: process.env.PATH,
      NODE_PATH: join(work, 'runtime'),
      METADATA_SERVER_DETECTION: 'none',
      OPENEKM_AWS_SECRET_FILES: JSON.stringify({ [`${secrets}/root-keys`]: 'arn:root' }),
      OPENEKM_ROOT_KEYS_FILE: `${secrets}/root-keys`,
      OPENEKM_TRUSTED_ISSUERS: JSON.stringify([
        { issuer: 'https://i', audiences: ['a'], jwks: { keys: [] } },
      ]),
      OPENEKM_LOG_LEVEL: 'info',
    },
  }).toString();
  const { exports, out } = JSON.parse(result.trim().split('\n').pop()!) as {
    exports: string[];
    out: { path: string; status: number; fn: string }[];
  };
  for (const h of ['routerLambda', 'keyAdminLambda', 'encryptLambda', 'decryptLambda', 'healthCheckLambda'])
    assert.ok(exports.includes(h), `lambda.mjs exports ${h}: ${exports}`);
  assert.deepEqual(
    out.map((o) => [o.path.replace('/v1/projects/p/locations/l/keyRings', '…'), o.fn]),
    [
      ['/health', 'healthCheck'],
      ['/.well-known/openekm/jwks.json', 'healthCheck'],
      ['…/r/cryptoKeys/k:encrypt', 'encrypt'],
      ['…/r/cryptoKeys/k/cryptoKeyVersions/1:encrypt', 'encrypt'],
      ['…/r/cryptoKeys/k:decrypt', 'decrypt'],
      ['…', 'keyAdmin'],
      ['…/r/cryptoKeys/k:setIamPolicy', 'keyAdmin'],
      ['/nowhere', 'keyAdmin'],
    ],
  );
  assert.equal(
    out[0]!.status,
    200,
    'GET /health answers: the configuration (root key from the secret file) loaded',
  );
  assert.equal(
    out[2]!.status,
    401,
    'encrypt without a token is refused by the function, not by a missing module',
  );
  assert.equal(statSync(`${secrets}/root-keys`).mode & 0o777, 0o600);
  rmSync(dirname(secrets), { recursive: true, force: true });
});

test('lambda.mjs refuses secret files outside /tmp', () => {
  const bundle = join(work, 'bundle');
  assert.ok(existsSync(join(bundle, 'lambda.mjs')), 'the previous test unpacked the bundle');
  assert.throws(
    () =>
      execFileSync(
        process.execPath,
        ['--input-type=module', '-e', `await import(${JSON.stringify(join(bundle, 'lambda.mjs'))})`],
        {
          cwd: work,
          stdio: 'pipe',
          timeout: 60_000,
          env: {
            PATH: process.env.PATH,
            NODE_PATH: join(work, 'runtime'),
            OPENEKM_AWS_SECRET_FILES: JSON.stringify({ '/etc/openekm/root-keys': 'arn:root' }),
          },
        },
      ),
    /is not under \/tmp\//,
  );
});
