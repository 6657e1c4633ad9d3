/**
 * The test reporter `npm test` uses (a custom reporter for Node's test runner): one line per test file as it
 * finishes, every failure in full under its file (with what the file wrote to stdout/stderr), the skipped tests
 * with their reasons, and a summary. On a terminal it also keeps a progress line; elsewhere (CI, a pipe) it writes
 * plain lines and ends with the runner's own `# tests`, `# pass`, `# fail` … lines and a `N passed, N failed` line
 * that a CI runner can read.
 */
// Plain JavaScript: Node's test runner loads reporters before any --import hook, so this file cannot be TypeScript.
import { relative } from 'node:path';
import { inspect } from 'node:util';

const tty = process.stdout.isTTY === true && process.env.CI !== 'true' && process.env.CI !== '1';
const colour = tty && !process.env.NO_COLOR;
const paint = (code, s) => (colour ? `\x1b[${code}m${s}\x1b[0m` : s);
const green = (s) => paint(32, s);
const red = (s) => paint(31, s);
const yellow = (s) => paint(33, s);
const dim = (s) => paint(2, s);
const bold = (s) => paint(1, s);

const SUBTESTS_FAILED = /^\d+ subtests? failed$/;
const OUTPUT_LINES = 40;

function errorText(error) {
  const e = error;
  const inner = e && e.code === 'ERR_TEST_FAILURE' && e.cause !== undefined ? e.cause : error;
  const text =
    inner instanceof Error ? (inspect(inner, { depth: 4, colors: colour }) ?? String(inner)) : String(inner);
  return text
    .split('\n')
    .filter((l) => !/^\s+at (.*\()?node:|^\s+at new Promise|^\s+at Array\.map/.test(l))
    .map((l) => `      ${l}`)
    .join('\n');
}

function seconds(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** @param {AsyncIterable<{type: string, data: any}>} source */
export default async function* reporter(source) {
  const files = new Map();
  /** Files already printed: anything they still send is ignored. */
  const done = new Set();
  /** The test files in the order they were queued (and are reported). */
  const order = [];
  const running = new Set();
  const skips = new Map();
  const failedTitles = [];
  const totals = {};
  let filesTotal = 0;
  let filesDone = 0;
  let progressShown = false;
  const started = Date.now();

  const stateOf = (file) => {
    let s = files.get(file);
    if (!s) {
      s = {
        passed: 0,
        failed: 0,
        skipped: 0,
        names: [],
        failures: [],
        output: [],
        enqueued: 0,
        completed: 0,
        end: null,
      };
      files.set(file, s);
    }
    return s;
  };
  const clearProgress = () => {
    if (!progressShown) return '';
    progressShown = false;
    return '\r\x1b[K';
  };
  const progress = () => {
    if (!tty) return '';
    progressShown = true;
    const now = [...running].map((f) => relative(process.cwd(), f)).join(', ');
    const head = `  ${filesDone}/${filesTotal} files  `;
    const room = Math.max(0, (process.stdout.columns ?? 100) - 1 - head.length);
    return `\r\x1b[K${head}${dim(now.length > room ? `${now.slice(0, Math.max(0, room - 1))}…` : now)}`;
  };

  /** The line (and failures) of a finished file. */
  const fileDone = (file, d) => {
    running.delete(file);
    filesDone++;
    const s = stateOf(file);
    const fileError = d.details?.error;
    // A file can fail with no failed test (it threw while loading, or exited non-zero).
    if (fileError && s.failed === 0) {
      s.failed++;
      s.failures.push(`    ${red('✖')} the file itself failed\n${errorText(fileError)}`);
      failedTitles.push(`${relative(process.cwd(), file)}: the file itself failed`);
    }
    const counts = [
      s.failed ? red(`${s.failed} failed`) : '',
      `${s.passed} passed`,
      s.skipped ? yellow(`${s.skipped} skipped`) : '',
    ]
      .filter(Boolean)
      .join(', ');
    const mark = s.failed ? red('✖') : s.passed === 0 && s.skipped > 0 ? yellow('-') : green('✔');
    let out = `${clearProgress()}${mark} ${relative(process.cwd(), file)}  ${counts}  ${dim(seconds(d.details?.duration_ms ?? 0))}\n`;
    if (s.failed) {
      out += `${s.failures.join('\n')}\n`;
      if (s.output.length) {
        out += `    ${dim(`what the file wrote (last ${OUTPUT_LINES} lines):`)}\n${s.output.map((l) => `      ${dim(l)}`).join('\n')}\n`;
      }
    }
    files.delete(file);
    done.add(file);
    return out + progress();
  };

  for await (const event of source) {
    const d = event.data ?? {};
    const isFile = d.file !== undefined && d.name === d.file && d.nesting === 0;
    if (isFile && event.type === 'test:enqueue') order.push(d.file);
    // A test's `file` is where it was declared, which for a suite shared by several test files (a function that
    // declares tests, imported by each) is not the test file. The runner reports one test file after another, in
    // the order they were queued, so a test declared elsewhere belongs to the first test file not yet finished.
    const file = isFile || order.includes(d.file) ? d.file : d.file && order.find((f) => !done.has(f));
    if (file && done.has(file)) continue;
    switch (event.type) {
      case 'test:enqueue':
        if (isFile) filesTotal++;
        else if (file && d.nesting === 0) stateOf(file).enqueued++;
        break;
      case 'test:dequeue':
        // Tests start in this order (one at a time within a file): it gives each test its suites' names.
        if (isFile) {
          running.add(file);
          yield progress();
        } else if (file) stateOf(file).names[d.nesting ?? 0] = d.name ?? '';
        break;
      case 'test:stdout':
      case 'test:stderr':
        if (file) {
          const out = stateOf(file).output;
          out.push(
            ...String(d.message ?? '')
              .replace(/\n$/, '')
              .split('\n'),
          );
          if (out.length > OUTPUT_LINES) out.splice(0, out.length - OUTPUT_LINES);
        }
        break;
      // A file's own test:complete comes when its process exits, but its tests' events may be reported later (the
      // runner reports one file at a time): a file is done when it has ended and all its top-level tests have.
      case 'test:complete': {
        if (!file) break;
        const s = stateOf(file);
        if (isFile) {
          s.end = d;
          // Done when its tests have all reported (they may come later; a file that failed to load has none and is
          // listed at the end).
          if (s.enqueued > 0 && s.completed >= s.enqueued) yield fileDone(file, d);
          break;
        }
        const nesting = d.nesting ?? 0;
        if (nesting === 0) s.completed++;
        s.names[nesting] = d.name ?? '';
        const title = s.names.slice(0, nesting + 1).join(' › ');
        const suite = d.details?.type === 'suite';
        if (d.skip !== undefined && d.skip !== false) {
          const reason = typeof d.skip === 'string' ? d.skip : 'skipped';
          skips.set(reason, (skips.get(reason) ?? 0) + 1);
          s.skipped++;
        } else if (d.details?.passed) {
          if (!suite) s.passed++;
        } else {
          const err = d.details?.error;
          const cause = err?.cause instanceof Error ? err.cause.message : String(err?.message ?? '');
          // A suite that failed only because a test in it failed is already reported through that test.
          if (!(suite && SUBTESTS_FAILED.test(cause))) {
            s.failed++;
            s.failures.push(`    ${red('✖')} ${title}\n${errorText(d.details?.error)}`);
            failedTitles.push(`${relative(process.cwd(), file)}: ${title}`);
          }
        }
        if (s.end && nesting === 0 && s.completed >= s.enqueued) yield fileDone(file, s.end);
        break;
      }
      case 'test:diagnostic':
        if (d.nesting === 0 && !file) {
          const m = /^(\w+) (.*)$/.exec(String(d.message ?? ''));
          if (m) totals[m[1]] = m[2];
        }
        break;
      default:
        break;
    }
  }

  // Files whose tests never reported (a file that failed while loading has none) end the list.
  for (const [file, s] of files) yield fileDone(file, s.end ?? { details: {} });
  let out = clearProgress();
  const n = (k) => Number(totals[k] ?? 0);
  if (failedTitles.length) {
    out += `\n${bold(red(`${failedTitles.length} failed:`))}\n${failedTitles.map((t) => `  ${red('✖')} ${t}`).join('\n')}\n`;
  }
  if (skips.size) {
    out += `\n${bold(yellow('skipped:'))}\n`;
    for (const [reason, count] of skips) out += `  ${yellow('-')} ${count} × ${reason}\n`;
  }
  const skipped = [...skips.values()].reduce((a, b) => a + b, 0);
  const elapsed = seconds(Number(totals.duration_ms ?? Date.now() - started));
  out += '\n';
  for (const k of ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo', 'duration_ms']) {
    if (totals[k] !== undefined) out += dim(`# ${k} ${totals[k]}\n`);
  }
  const summary = `${n('pass')} passed, ${n('fail')} failed, ${skipped} skipped, ${n('cancelled')} cancelled (${filesDone} files, ${elapsed})`;
  out += `${n('fail') || n('cancelled') ? bold(red(summary)) : bold(green(summary))}\n`;
  yield out;
}
