import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EkmHealthReport, ProbePoint, TargetReport } from '../../../shared/health/report.js';
import {
  availabilityRuns,
  escapeHtml,
  formatAge,
  formatInterval,
  formatMs,
  formatPercent,
  formatTime,
  niceCeil,
  renderStatusPage,
} from '../../../shared/health/status-page.js';

const NOW = Date.parse('2026-11-29T20:00:00Z');
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();
const MIN = 60_000;
const XSS = '<script>alert(1)</script>';

/** `count` probes one minute apart ending now, oldest first; `fails(i)` marks the i-th from the end as failed. */
function history(count: number, fails: (minutesAgo: number) => boolean = () => false): ProbePoint[] {
  const points: ProbePoint[] = [];
  for (let m = count - 1; m >= 0; m--) {
    const ok = !fails(m);
    points.push({
      time: iso(m * MIN),
      ok,
      latencyMs: ok ? 20 + (m % 7) : 2000,
      ...(ok ? {} : { domain: 'EKM_TIMEOUT' }),
    });
  }
  return points;
}

function target(overrides: Partial<TargetReport> & { id: string }): TargetReport {
  return {
    kind: 'endpoint',
    name: `https://${overrides.id}.example.com/v0/`,
    replica: `${overrides.id}.example.com:443`,
    protocol: 'google-ekm-v0',
    state: 'UP',
    lastProbeTime: iso(0),
    lastSuccess: { time: iso(0), latencyMs: 21.4 },
    lastFailure: null,
    hour: { count: 60, availability: 1, p50Ms: 21.4, p95Ms: 35.25, p99Ms: 48 },
    day: { count: 1440, availability: 0.99861, p50Ms: 22, p95Ms: 1234, p99Ms: 4.56 },
    history: history(10),
    ...overrides,
  };
}

function report(targets: TargetReport[], probeIntervalSeconds = 60): EkmHealthReport {
  return { generatedAt: new Date(NOW).toISOString(), probeIntervalSeconds, targets };
}

/** The `<article>` of one target (articles do not nest). */
function card(html: string, id: string): string {
  const m = new RegExp(`<article[^>]*data-target-id="${id}"[^>]*>[\\s\\S]*?</article>`).exec(html);
  assert.ok(m, `no article for target ${id}`);
  return m[0];
}

function chart(html: string, kind: 'availability' | 'latency'): string {
  const m = new RegExp(`<svg[^>]*data-chart="${kind}"[^>]*>[\\s\\S]*?</svg>`).exec(html);
  assert.ok(m, `no ${kind} chart`);
  return m[0];
}

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
}

const VOID = new Set(['meta', 'link', 'br', 'img', 'hr', 'input', 'source', 'wbr']);

/**
 * A small well-formedness check without an HTML parser: every element closed in order (void elements and
 * self-closed SVG elements aside), attributes quoted and not repeated, no stray `<` or `>` in text.
 */
function assertWellFormed(html: string): void {
  const withoutStyle = html.replace(/<style>[^<]*<\/style>/, '<style></style>');
  const stack: string[] = [];
  const tagRe = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z][a-zA-Z0-9:-]*(?:="[^"]*")?)*)\s*(\/?)>/g;
  let last = 0;
  for (const m of withoutStyle.matchAll(tagRe)) {
    const text = withoutStyle.slice(last, m.index);
    assert.doesNotMatch(
      text.replace(/^<!DOCTYPE html>/, ''),
      /[<>]/,
      `stray < or > in text: ${text.slice(0, 80)}`,
    );
    last = m.index + m[0].length;
    const [, closing, rawName, attrs, selfClosing] = m;
    const name = rawName!.toLowerCase();
    const names = [...attrs!.matchAll(/\s*([a-zA-Z][a-zA-Z0-9:-]*)(?:="[^"]*")?/g)].map((a) => a[1]);
    assert.equal(new Set(names).size, names.length, `repeated attribute in ${m[0].slice(0, 120)}`);
    if (closing) {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    } else if (!selfClosing && !VOID.has(name)) {
      stack.push(name);
    }
  }
  assert.doesNotMatch(withoutStyle.slice(last), /[<>]/, 'stray < or > after the last tag');
  assert.deepEqual(stack, [], 'unclosed elements');
}

describe('status page helpers', () => {
  test('escapeHtml escapes the five HTML-special characters', () => {
    assert.equal(
      escapeHtml(`<a href="x" title='y'>&amp;</a>`),
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;',
    );
  });

  test('times, ages, percentages, latencies and intervals', () => {
    assert.equal(formatTime('2026-11-29T20:14:04.123Z'), '2026-11-29 20:14:04 UTC');
    assert.equal(formatTime('not a time'), 'not a time');
    const now = iso(0);
    assert.equal(formatAge(iso(2_000), now), 'just now');
    assert.equal(formatAge(iso(42_000), now), '42 s ago');
    assert.equal(formatAge(iso(5 * MIN + 10_000), now), '5 min ago');
    assert.equal(formatAge(iso(3 * 60 * MIN), now), '3 h ago');
    assert.equal(formatAge(iso(3 * 24 * 60 * MIN), now), '3 d ago');
    assert.equal(formatAge(iso(-60_000), now), 'in the future');
    assert.equal(formatAge('garbage', now), '');
    assert.equal(formatPercent(1), '100%');
    assert.equal(formatPercent(0.99999), '99.99%', 'one failure in many never rounds up to 100%');
    assert.equal(formatPercent(0.5), '50.00%');
    assert.equal(formatPercent(0), '0.00%');
    assert.equal(formatPercent(null), '—');
    assert.equal(formatMs(4.56), '4.6 ms');
    assert.equal(formatMs(123.4), '123 ms');
    assert.equal(formatMs(1234), '1.23 s');
    assert.equal(formatMs(null), '—');
    assert.equal(formatMs(Number.NaN), '—');
    assert.equal(formatInterval(30), '30 s');
    assert.equal(formatInterval(90), '90 s');
    assert.equal(formatInterval(300), '5 min');
    assert.equal(formatInterval(7200), '2 h');
    assert.deepEqual([0, 0.3, 1, 7, 20, 21, 450, 1001].map(niceCeil), [1, 0.5, 1, 10, 20, 50, 500, 2000]);
  });

  test('availability bars: one per run of equal outcomes, a gap in the probes ends a run', () => {
    const w = { start: NOW - 24 * 60 * MIN, end: NOW };
    // 13 ok, 2 failed, 5 ok (minutes 50..31 ago), 28 minutes without probes, then 3 ok.
    const probe = (minutesAgo: number, ok: boolean): ProbePoint => ({
      time: iso(minutesAgo * MIN),
      ok,
      latencyMs: 20,
    });
    const points = [
      ...Array.from({ length: 20 }, (_, i) => probe(50 - i, i < 13 || i > 14)),
      ...[2, 1, 0].map((m) => probe(m, true)),
    ];
    const runs = availabilityRuns(points, 60, w);
    assert.deepEqual(
      runs.map((r) => [r.ok, r.probes]),
      [
        [true, 13],
        [false, 2],
        [true, 5],
        [true, 3],
      ],
    );
    for (const r of runs) assert.ok(r.x >= 0 && r.width >= 1 && r.x + r.width <= 720.0001, JSON.stringify(r));
  });
});

describe('renderStatusPage', () => {
  test('a complete, self-contained, well-formed HTML5 document', () => {
    const html = renderStatusPage(
      report([
        target({ id: 'a' }),
        target({ id: 'b', state: 'DOWN', name: XSS }),
        target({ id: 'c', state: 'UNKNOWN', history: [] }),
      ]),
    );
    assert.ok(html.startsWith('<!DOCTYPE html>\n<html lang="en">'));
    assert.match(html, /<meta charset="utf-8">/);
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(html, /<title>[^<]+<\/title>/);
    assert.equal(html.match(/<h1>/g)?.length, 1);
    assertWellFormed(html);
    // Nothing to fetch from anywhere: no scripts, no src, only data: and relative links, and a CSP that says so.
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /\ssrc=/i);
    assert.doesNotMatch(html, /https?:\/\/(?!\w+\.example\.com\/v0\/)/, 'no URL except the target names');
    assert.deepEqual(
      [...html.matchAll(/\shref="([^"]*)"/g)].map((m) => m[1]),
      ['data:,', 'ekm'],
    );
    assert.match(
      html,
      /http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'/,
    );
    assert.doesNotMatch(html, /@import|url\(/, 'the CSS loads nothing');
    const ids = [...html.matchAll(/\sid="([^"]*)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length, 'ids are unique');
    for (const m of html.matchAll(/aria-labelledby="([^"]*)"/g)) assert.ok(ids.includes(m[1]), m[1]);
    for (const svg of html.matchAll(/<svg[^>]*>/g)) {
      assert.equal(attr(svg[0], 'role'), 'img', svg[0]);
      assert.ok(attr(svg[0], 'aria-label'), svg[0]);
    }
    assert.equal(html.match(/<svg/g)?.length, 6, 'two charts per target');
    assert.equal(html.match(/<svg[^>]*><title>/g)?.length, 6, 'every chart has a <title>');
  });

  test('escapes every string taken from the report', () => {
    const html = renderStatusPage(
      report([
        target({
          id: 'x"><b>id',
          state: 'DOWN',
          name: XSS,
          replica: 'evil"host&<i>',
          lastFailure: { time: iso(MIN), domain: '<img src=x onerror=alert(2)>', message: `it's <b>bad</b>` },
        }),
      ]),
    );
    assert.doesNotMatch(html, /<script|<img|<i>|<b>/);
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the name is shown as text');
    assert.ok(html.includes('data-target-id="x&quot;&gt;&lt;b&gt;id"'));
    assert.ok(html.includes('evil&quot;host&amp;&lt;i&gt;'));
    assert.ok(html.includes('&lt;img src=x onerror=alert(2)&gt;'));
    assert.ok(html.includes('it&#39;s &lt;b&gt;bad&lt;/b&gt;'));
    assertWellFormed(html);
  });

  test('an empty report says there are no targets', () => {
    const html = renderStatusPage(report([]));
    assertWellFormed(html);
    assert.match(html, /data-empty="true"/);
    assert.match(html, /<title>No EKM targets/);
    assert.match(html, /<h2>No EKM targets<\/h2>/);
    assert.doesNotMatch(html, /data-target-id|<svg/);
    for (const s of ['UP', 'DOWN', 'UNKNOWN']) {
      assert.match(
        html,
        new RegExp(`data-summary="${s}">[^<]*<span[^>]*>[^<]*</span> ${s} <strong>0</strong>`),
      );
    }
    assert.match(html, /data-overall="NONE"/);
  });

  test('states: labelled in text, counted in the summary, problems listed first', () => {
    const html = renderStatusPage(
      report([
        target({ id: 'up-b', name: 'b' }),
        target({ id: 'unknown', state: 'UNKNOWN', lastProbeTime: null, lastSuccess: null, history: [] }),
        target({ id: 'up-a', name: 'a' }),
        target({ id: 'down', state: 'DOWN' }),
      ]),
    );
    assert.deepEqual(
      [...html.matchAll(/data-target-id="([^"]*)" data-state="([^"]*)"/g)].map((m) => `${m[1]}:${m[2]}`),
      ['down:DOWN', 'unknown:UNKNOWN', 'up-a:UP', 'up-b:UP'],
    );
    for (const [id, state] of [
      ['down', 'DOWN'],
      ['unknown', 'UNKNOWN'],
      ['up-a', 'UP'],
    ]) {
      const badge =
        /<span class="badge ([\w-]+)" data-role="state"[^>]*><span aria-hidden="true">[^<]*<\/span> (\w+)<\/span>/.exec(
          card(html, id!),
        );
      assert.ok(badge, `state badge of ${id}`);
      assert.equal(badge[1], `badge-${state!.toLowerCase()}`);
      assert.equal(badge[2], state, 'the state is written out, not only coloured');
    }
    assert.match(html, /data-summary="UP">.*?<strong>2<\/strong>/);
    assert.match(html, /data-summary="DOWN">.*?<strong>1<\/strong>/);
    assert.match(html, /data-summary="UNKNOWN">.*?<strong>1<\/strong>/);
    assert.match(html, /<title>1 of 4 targets DOWN · OpenEKM status<\/title>/);
    assert.match(html, /data-overall="DOWN"/);
    assert.match(card(html, 'unknown'), /<dt>Last probe<\/dt><dd>never<\/dd>/);

    const allUp = renderStatusPage(report([target({ id: 'a' }), target({ id: 'b' })]));
    assert.match(allUp, /<title>All 2 targets UP/);
    assert.match(allUp, /data-overall="UP"/);
  });

  test('shows the numbers: summary, last success and failure, percentiles, availability', () => {
    const html = renderStatusPage(
      report(
        [
          target({
            id: 't',
            state: 'DOWN',
            kind: 'connection',
            name: 'projects/p/locations/l/ekmConnections/c',
            replica: 'xks.example.net:8443',
            protocol: 'aws-xks-v1',
            lastSuccess: { time: iso(19 * MIN), latencyMs: 30 },
            lastFailure: {
              time: iso(0),
              domain: 'EXTERNAL_KEY_MANAGER_UNREACHABLE',
              message: 'connect ECONNREFUSED',
            },
            hour: { count: 60, availability: 0.6833, p50Ms: 21.4, p95Ms: 35.25, p99Ms: 1500 },
          }),
        ],
        30,
      ),
    );
    assert.match(html, /Generated <time datetime="2026-11-29T20:00:00.000Z">2026-11-29 20:00:00 UTC<\/time>/);
    assert.match(html, /probes every 30 s/);
    assert.match(html, /<meta http-equiv="refresh" content="30">/);
    const c = card(html, 't');
    assert.match(c, /EKM connection/);
    assert.match(c, /<dd data-role="replica">xks\.example\.net:8443<\/dd>/);
    assert.match(c, /<dd data-role="protocol">aws-xks-v1<\/dd>/);
    assert.match(
      c,
      /data-role="last-success"><time datetime="[^"]+">2026-11-29 19:41:00 UTC<\/time> <span class="age">\(19 min ago\)<\/span>, 30 ms/,
    );
    assert.match(
      c,
      /data-role="last-failure">.*2026-11-29 20:00:00 UTC.*data-role="failure-domain">EXTERNAL_KEY_MANAGER_UNREACHABLE<\/span> <span class="message">connect ECONNREFUSED</,
    );
    const rows = Object.fromEntries(
      [...c.matchAll(/<tr><th scope="row">([^<]+)<\/th><td>([^<]*)<\/td><td>([^<]*)<\/td><\/tr>/g)].map(
        (m) => [m[1], [m[2], m[3]]],
      ),
    );
    assert.deepEqual(rows, {
      Availability: ['68.33%', '99.86%'],
      Probes: ['60', '1440'],
      'Latency p50': ['21 ms', '22 ms'],
      'Latency p95': ['35 ms', '1.23 s'],
      'Latency p99': ['1.50 s', '4.6 ms'],
    });
  });

  test('a probe interval shorter than 10 s does not refresh the page faster than every 10 s', () => {
    assert.match(renderStatusPage(report([], 2)), /<meta http-equiv="refresh" content="10">/);
    assert.match(renderStatusPage(report([], 0)), /<meta http-equiv="refresh" content="10">/);
  });

  test('charts: one availability bar per run, one latency point per successful probe', () => {
    // A day at one probe a minute, failed 5 times in 3 separate runs.
    const fails = (m: number) => m === 100 || m === 101 || m === 102 || m === 500 || m === 1000;
    const html = renderStatusPage(
      report([
        target({ id: 'day', history: history(1440, fails) }),
        target({ id: 'none', state: 'UNKNOWN', history: [] }),
        target({ id: 'one', history: history(1) }),
      ]),
    );
    const avail = chart(card(html, 'day'), 'availability');
    assert.equal(attr(avail, 'data-points'), '1440');
    assert.equal(attr(avail, 'data-failed'), '5');
    const bars = [...avail.matchAll(/<rect class="bar-(ok|fail)"[^>]*data-probes="(\d+)"/g)];
    assert.deepEqual(
      bars.map((b) => b[1]),
      ['ok', 'fail', 'ok', 'fail', 'ok', 'fail', 'ok'],
    );
    assert.equal(
      bars.reduce((n, b) => n + Number(b[2]), 0),
      1440,
      'the bars account for every probe',
    );
    assert.match(
      avail,
      /aria-label="Availability over the last 24 hours: 1435 of 1440 probes succeeded \(99\.65%\)"/,
    );

    const latency = chart(card(html, 'day'), 'latency');
    assert.equal(attr(latency, 'data-points'), '1435');
    const points = /<polyline class="latency" points="([^"]*)"/.exec(latency)![1]!.split(' ');
    assert.equal(points.length, 1435);
    const xs = points.map((p) => Number(p.split(',')[0]));
    const ys = points.map((p) => Number(p.split(',')[1]));
    assert.ok(
      xs.every((x, i) => x >= 0 && x <= 720 && (i === 0 || x >= xs[i - 1]!)),
      'x grows with time inside the chart',
    );
    assert.ok(xs[0]! < 1 && xs.at(-1) === 720, 'the day spans the chart');
    assert.ok(
      ys.every((y) => y >= 0 && y <= 180),
      'y inside the chart',
    );
    // Latencies 20..26 ms: the chart's top is 50 ms, the slowest point is about half way up.
    assert.equal(attr(latency, 'data-max-ms'), '50');
    assert.equal(Math.min(...ys), Number((6 + 168 - (26 / 50) * 168).toFixed(1)));

    const none = card(html, 'none');
    assert.equal(attr(chart(none, 'availability'), 'data-points'), '0');
    assert.equal(attr(chart(none, 'latency'), 'data-points'), '0');
    assert.doesNotMatch(none, /<polyline|bar-ok|bar-fail/);
    assert.match(none, /aria-label="Availability over the last 24 hours: no probes"/);

    const one = card(html, 'one');
    assert.equal(chart(one, 'availability').match(/bar-ok/g)?.length, 1);
    assert.match(chart(one, 'latency'), /<circle class="latest" cx="720" /, 'a single probe still shows');
  });
});
