/**
 * The container image (Dockerfile, docs/container.md). No container runtime runs here, so the image definition is
 * read and checked — base image on the Node line package.json declares, production dependencies only, a non-root
 * user, the one-port entry point, nothing of the local state in the build context — and then the entry point runs
 * outside a container the way the image runs it: from a directory holding only what the final stage copies, with
 * only the production dependencies, as an unprivileged user, against the test Firestore emulator.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { after, test } from 'node:test';
import { ensureBuilt } from '../../scripts/lib/build.js';
import { freePort } from '../../scripts/lib/firestore-emulator.js';
import { localGatewayEnv, mintLocalToken } from '../../scripts/lib/local-state.js';

const root = resolve(import.meta.dirname, '../..');

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions with continuation lines joined and comments dropped, numbered by stage. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\w+)\s+(.*)$/.exec(full);
    assert.ok(m, `not an instruction: ${full}`);
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage += 1;
    out.push({ keyword, args: m[2]!, stage });
  }
  return out;
}

const instructions = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const finalStage = Math.max(...instructions.map((i) => i.stage));
const final = instructions.filter((i) => i.stage === finalStage);
const of = (list: Instruction[], keyword: string) => list.filter((i) => i.keyword === keyword);

test('the image is built on the Node line package.json declares, in two stages', () => {
  const engines = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).engines.node as string;
  const major = /(\d+)/.exec(engines)![1];
  const froms = of(instructions, 'FROM');
  assert.ok(froms.length >= 2, 'a build stage and a runtime stage');
  for (const f of froms)
    assert.match(f.args, new RegExp(`^node:${major}(\\.[\\d.]+)?-(alpine|slim|bookworm-slim)\\b`));
  const build = instructions.filter((i) => i.stage < finalStage);
  assert.ok(
    of(build, 'RUN').some((r) => /\bnpm run build\b/.test(r.args)),
    'the build stage compiles',
  );
});

test('the final stage: production dependencies only, the compiled gateway, a non-root user, node dist/functions/server.js', () => {
  const runs = of(final, 'RUN').map((r) => r.args);
  assert.ok(
    runs.some((r) => /\bnpm ci\b/.test(r) && /--omit=dev\b/.test(r)),
    `npm ci --omit=dev in the final stage: ${runs.join(' | ')}`,
  );
  assert.ok(!runs.some((r) => /\bnpm (install|i)\b/.test(r)), 'npm ci, never npm install');

  const copies = of(final, 'COPY').map((c) => c.args);
  for (const c of copies) {
    if (c.startsWith('--from=')) assert.match(c, /^--from=\w+ \/app\/dist\/\w+ \.\/dist\/\w+$/, c);
    else assert.match(c, /^package\.json package-lock\.json \.\/$/, c);
  }

  const users = of(final, 'USER');
  assert.equal(users.length, 1, 'one USER in the final stage');
  assert.ok(!['root', '0', '0:0'].includes(users[0]!.args.trim()), `USER ${users[0]!.args} is not root`);
  const cmdIndex = final.findIndex((i) => i.keyword === 'CMD');
  assert.ok(cmdIndex > final.indexOf(users[0]!), 'USER comes before CMD');

  const cmd = JSON.parse(final[cmdIndex]!.args) as string[];
  assert.ok(Array.isArray(cmd), 'CMD in exec form (signals reach node, no shell)');
  assert.equal(cmd[0], 'node');
  assert.equal(cmd.at(-1), 'dist/functions/server.js');
  assert.ok(
    of(final, 'COPY').some((c) => c.args.includes('dist/functions')),
    'the entry point is copied into the image',
  );

  for (const env of of(instructions, 'ENV').map((e) => e.args)) {
    assert.doesNotMatch(env, /ROOT_KEYS|SIGNING_KEYS|SECRET|TOKEN/, 'no secrets baked into the image');
  }
});

test('.dockerignore lets only the sources into the build context, never the local state', () => {
  const patterns = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  assert.equal(patterns[0], '*', 'everything is excluded first');
  const included = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\/$/, ''));
  for (const secret of ['.openekm', 'node_modules', 'dist', '.git', 'test', 'bench']) {
    assert.ok(!included.some((p) => p === secret || p.startsWith(`${secret}/`)), `${secret} stays out`);
  }
  // Everything the build copies from the context is let in, and exists.
  for (const copy of of(instructions, 'COPY').filter((c) => !c.args.startsWith('--from='))) {
    const sources = copy.args.split(/\s+/).slice(0, -1);
    for (const s of sources) {
      assert.ok(included.includes(s), `${s} is in the build context`);
      assert.ok(existsSync(join(root, s)), `${s} exists`);
    }
  }
});

/** The production dependencies (npm ls --omit=dev), linked into `dir`/node_modules as npm ci --omit=dev lays them out. */
function linkProductionDependencies(dir: string): void {
  const listing = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const top = join(root, 'node_modules');
  for (const path of new Set(listing.split('\n').filter(Boolean))) {
    const rel = relative(top, path);
    if (rel.startsWith('..') || rel === '') continue;
    const parts = rel.split('/');
    // Only top-level packages: nested node_modules come along inside their parent package.
    const name = parts[0]!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
    if (rel !== name) continue;
    const target = join(dir, 'node_modules', name);
    mkdirSync(join(target, '..'), { recursive: true });
    if (!existsSync(target)) symlinkSync(path, target, 'dir');
  }
}

const serverSource = join(root, 'functions/server.ts');
const NO_SERVER =
  'functions/server.ts does not exist yet: the image CMD needs dist/functions/server.js, so its run is skipped';
if (!existsSync(serverSource))
  process.stderr.write(`\n!! SKIPPING the container entry-point run: ${NO_SERVER}\n`);

const work = mkdtempSync(join(tmpdir(), 'openekm-container-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('the entry point serves the four functions on $PORT from what the image holds, as a non-root user', {
  skip: !existsSync(serverSource) && NO_SERVER,
  timeout: 300_000,
}, async () => {
  ensureBuilt();
  assert.ok(
    existsSync(join(root, 'dist/functions/server.js')),
    'npm run build makes dist/functions/server.js',
  );

  // /app as the final stage has it: package files, production node_modules, dist/functions, dist/shared.
  const app = join(work, 'app');
  mkdirSync(join(app, 'dist'), { recursive: true });
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(root, f), join(app, f));
  for (const d of ['functions', 'shared'])
    cpSync(join(root, 'dist', d), join(app, 'dist', d), { recursive: true });
  linkProductionDependencies(app);
  assert.ok(!existsSync(join(app, 'node_modules/typescript')), 'no development dependencies');

  // Configuration as files in a secrets directory, readable by the unprivileged user.
  const secrets = join(work, 'secrets');
  mkdirSync(secrets);
  const project = `demo-container-${process.pid}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    ...(await localGatewayEnv(process.env.FIRESTORE_EMULATOR_HOST!, secrets)),
    OPENEKM_FIRESTORE_PROJECT: project,
    OPENEKM_LOG_LEVEL: 'warn',
    PORT: String(await freePort()),
  };
  const nonRoot = process.getuid?.() === 0;
  if (nonRoot) {
    for (const p of [work, secrets, app]) chmodSync(p, 0o755);
    execFileSync('chown', ['-R', '65534:65534', secrets]);
    chownSync(work, 0, 0);
  }
  const child = spawn(process.execPath, ['--enable-source-maps', 'dist/functions/server.js'], {
    cwd: app,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(nonRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  let output = '';
  child.stdout.on('data', (b) => (output += b));
  child.stderr.on('data', (b) => (output += b));
  try {
    const base = `http://127.0.0.1:${env.PORT}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      assert.equal(child.exitCode, null, `the server exited:\n${output}`);
      const ok = await fetch(`${base}/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      assert.ok(Date.now() < deadline, `no answer on $PORT within 60 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const token = await mintLocalToken({ dir: secrets });
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, json: (await res.json()) as Record<string, string> };
    };
    const loc = `/v1/projects/${project}/locations/us-east1`;
    assert.equal((await call('POST', `${loc}/keyRings?keyRingId=r`, {})).status, 200);
    const key = await call('POST', `${loc}/keyRings/r/cryptoKeys?cryptoKeyId=k`, {
      purpose: 'ENCRYPT_DECRYPT',
    });
    assert.equal(key.status, 200, JSON.stringify(key.json));
    const enc = await call('POST', `${loc}/keyRings/r/cryptoKeys/k:encrypt`, {
      plaintext: Buffer.from('from the image').toString('base64'),
    });
    assert.equal(enc.status, 200, JSON.stringify(enc.json));
    const dec = await call('POST', `${loc}/keyRings/r/cryptoKeys/k:decrypt`, {
      ciphertext: enc.json.ciphertext,
    });
    assert.equal(dec.status, 200, JSON.stringify(dec.json));
    assert.equal(Buffer.from(dec.json.plaintext!, 'base64').toString(), 'from the image');
    assert.equal((await fetch(`${base}/health/ready`)).status, 200, 'readiness checks Firestore');
    assert.equal(basename(app), 'app');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
  }
});
