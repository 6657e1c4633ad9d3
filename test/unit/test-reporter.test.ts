/**
 * The reporter `npm test` uses: one line per file, a failure in full under its file (with what the file wrote),
 * skip reasons, and a summary that a CI runner can read (the runner's `# tests/# pass/# fail` lines and
 * `N passed, N failed`). Runs Node's test runner with it on three small test files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';

const reporter = resolve(import.meta.dirname, '../../scripts/lib/test-reporter.mjs');
const dir = mkdtempSync(join(tmpdir(), 'openekm-reporter-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('one line per file, the failure in full, skip reasons and a CI-readable summary', () => {
  writeFileSync(
    join(dir, 'good.test.mjs'),
    "import { test } from 'node:test';\ntest('adds', () => {});\ntest('later', { skip: 'softhsm2 is not installed: sudo apt-get install -y softhsm2' }, () => {});\n",
  );
  writeFileSync(
    join(dir, 'bad.test.mjs'),
    "import assert from 'node:assert/strict';\nimport { describe, test } from 'node:test';\n" +
      "describe('group', () => { test('compares', () => { console.log('a clue'); assert.equal(1 + 1, 3); }); });\n",
  );
  writeFileSync(join(dir, 'broken.test.mjs'), "import './missing.mjs';\n");
  const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true', NO_COLOR: '1' };
  delete env.NODE_TEST_CONTEXT; // else the child reports to this runner
  const r = spawnSync(
    process.execPath,
    [
      '--test',
      `--test-reporter=${reporter}`,
      '--test-reporter-destination=stdout',
      'bad.test.mjs',
      'broken.test.mjs',
      'good.test.mjs',
    ],
    { cwd: dir, env, encoding: 'utf8', timeout: 60_000 },
  );
  const out = r.stdout;
  assert.equal(r.status, 1, out + r.stderr);
  assert.match(out, /^✔ good\.test\.mjs {2}1 passed, 1 skipped/m);
  assert.match(out, /^✖ bad\.test\.mjs {2}1 failed, 0 passed/m);
  assert.match(out, /^ {4}✖ group › compares$/m);
  assert.match(out, /3 !== 3|2 !== 3/, 'the assertion in full');
  assert.match(out, /a clue/, 'what the failing file wrote');
  assert.match(out, /^✖ broken\.test\.mjs {2}1 failed/m);
  assert.match(out, /the file itself failed/);
  assert.match(out, /1 × softhsm2 is not installed: sudo apt-get install -y softhsm2/);
  assert.match(out, /^# tests \d+$/m);
  assert.match(out, /^# pass 1$/m);
  assert.match(out, /^# fail 2$/m);
  assert.match(out, /^1 passed, 2 failed, 1 skipped, 0 cancelled \(3 files, /m);
  assert.ok(!out.includes('\u001b['), 'no terminal escapes outside a terminal');
  assert.equal(out.split('\n').filter((l) => /^[✔✖-] \S+\.test\.mjs/.test(l)).length, 3, 'one line per file');
});
