/**
 * Tests that need a system package npm cannot install (SoftHSM2, Chromium) are skipped when it is missing — each
 * skip naming the package and its install command — and never skipped in CI, where they fail instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { missingLine, runsEverything, skipWithout } from '../../scripts/lib/system-packages.js';

const root = resolve(import.meta.dirname, '../..');

test('a missing package skips with its name and install command, outside CI only', () => {
  const missing = { OPENEKM_TEST_WITHOUT: 'softhsm2, chromium', PATH: process.env.PATH };
  assert.equal(
    skipWithout('softhsm2', missing),
    'softhsm2 is not installed: sudo apt-get install -y softhsm2',
  );
  assert.equal(
    skipWithout('chromium', missing),
    'chromium is not installed: sudo apt-get install -y chromium fonts-liberation',
  );
  assert.match(missingLine('softhsm2', missing), /^SKIPPING .*SoftHSM2.*sudo apt-get install -y softhsm2$/);

  for (const ci of ['true', '1']) {
    const env = { ...missing, CI: ci };
    assert.equal(runsEverything(env), true);
    assert.equal(skipWithout('softhsm2', env), false, 'CI runs the test, which then fails');
    assert.match(missingLine('chromium', env), /^MISSING chromium.*will FAIL.*apt-get install -y chromium/);
  }
  assert.match(
    String(skipWithout('chromium', { OPENEKM_CHROMIUM: '/nonexistent/chromium', PATH: '' })),
    /^chromium is not installed/,
    'a Chromium that is not there counts as missing',
  );
});

test('the SoftHSM key-store tests are reported as skipped, with the reason, when SoftHSM2 is missing', () => {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENEKM_TEST_WITHOUT: 'softhsm2', NODE_OPTIONS: '' };
  delete env.CI;
  delete env.NODE_TEST_CONTEXT; // else the child reports to this runner, not as TAP
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=tap', 'test/reference-ekm/key-stores.test.ts'],
    { cwd: root, env, encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const skips = r.stdout.split('\n').filter((l) => l.includes('# SKIP'));
  assert.equal(skips.length, 2, r.stdout);
  for (const l of skips) {
    assert.match(l, /softhsm/);
    assert.match(l, /# SKIP softhsm2 is not installed: sudo apt-get install -y softhsm2/);
  }
  assert.match(r.stdout, /^ok \d+ - software: AES-256-GCM round trips/m, 'the software back end still runs');
});
