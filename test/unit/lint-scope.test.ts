/**
 * `npm test` lints the project's sources only: a scratch file a user saves in the clone (the README's Node snippet
 * as try-client.mjs, a state directory) must not fail it, while a lint error in the project's code still does.
 * Runs the project's biome with the project's biome.json on a small copy of the layout.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';

const root = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'openekm-lint-'));
after(() => rmSync(work, { recursive: true, force: true }));

const BAD = 'var x = 1; debugger; const  y=2\n';

function biome(): { code: number; out: string } {
  const r = spawnSync(join(root, 'node_modules/.bin/biome'), ['check', '.'], { cwd: work, encoding: 'utf8' });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

test('biome checks the project directories and ignores scratch files in the clone', () => {
  copyFileSync(join(root, 'biome.json'), join(work, 'biome.json'));
  copyFileSync(join(root, '.gitignore'), join(work, '.gitignore'));
  mkdirSync(join(work, 'shared'));
  mkdirSync(join(work, '.openekm-dev'));
  writeFileSync(join(work, 'shared/ok.ts'), 'export const a = 1;\n');
  writeFileSync(join(work, 'try-client.mjs'), BAD);
  writeFileSync(join(work, 'scratch.ts'), BAD);
  writeFileSync(join(work, '.openekm-dev/notes.json'), '{"a":1,}');

  const clean = biome();
  assert.equal(clean.code, 0, `scratch files must not fail the lint:\n${clean.out}`);
  assert.doesNotMatch(clean.out, /try-client|scratch\.ts|notes\.json/);

  writeFileSync(join(work, 'shared/bad.ts'), BAD);
  const dirty = biome();
  assert.notEqual(dirty.code, 0, 'a lint error in the project sources fails');
  assert.match(dirty.out, /shared\/bad\.ts/);
  assert.doesNotMatch(dirty.out, /try-client/);
});
