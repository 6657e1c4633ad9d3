/**
 * The EKM status page served at `GET /health/status`: one self-contained HTML document drawn from the same
 * `EkmHealthReport` that `GET /health/ekm` answers. No scripts, no external resources (a meta CSP says so), inline
 * CSS, SVG charts drawn here on the server, and a meta refresh at the probe interval.
 *
 * Every string taken from the report goes through `escapeHtml`: target names are operator-controlled.
 */
import type { EkmHealthReport, LatencySummary, ProbePoint, TargetReport, TargetState } from './report.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Problems first: the order targets are listed in. */
const STATE_ORDER: Record<TargetState, number> = { DOWN: 0, UNKNOWN: 1, UP: 2 };
const STATE_TEXT: Record<TargetState, { icon: string; help: string }> = {
  UP: { icon: '✓', help: 'the latest probe succeeded' },
  DOWN: { icon: '✕', help: 'the latest probe failed' },
  UNKNOWN: { icon: '?', help: 'never probed, or the latest probe is stale' },
};
/** The refresh interval never goes below this, whatever the probe interval says. */
const MIN_REFRESH_SECONDS = 10;

// Chart geometry, in SVG user units; the charts scale to the card's width and keep their aspect ratio.
const CHART_W = 720;
const AVAIL_H = 40;
const LATENCY_H = 180;
const LATENCY_PAD = 6;

// ---------------------------------------------------------------------------------------------------------------
// Small pure helpers (exported for the tests)
// ---------------------------------------------------------------------------------------------------------------

/** Text or attribute value → HTML-safe text. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function parseTime(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : null;
}

/** RFC 3339 → `2026-11-29 20:14:04 UTC`; an unparseable value is returned as given (still to be escaped). */
export function formatTime(iso: string): string {
  const t = parseTime(iso);
  if (t === null) return iso;
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** How long before `nowIso` the time `iso` was: `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function formatAge(iso: string, nowIso: string): string {
  const t = parseTime(iso);
  const now = parseTime(nowIso);
  if (t === null || now === null) return '';
  const s = Math.floor((now - t) / 1000);
  if (s < -5) return 'in the future';
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A share 0..1 → `99.72%` (rounded down, so a single failure never shows as 100%); null → `—`. */
export function formatPercent(share: number | null): string {
  if (share === null || !Number.isFinite(share)) return '—';
  const clamped = Math.min(1, Math.max(0, share));
  if (clamped === 1) return '100%';
  return `${(Math.floor(clamped * 10000) / 100).toFixed(2)}%`;
}

/** Milliseconds → `4.2 ms`, `123 ms`, `1.23 s`; null → `—`. */
export function formatMs(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '—';
  if (ms < 10) return `${(Math.round(ms * 10) / 10).toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Seconds → `30 s`, `5 min`, `90 s`, `2 h`. */
export function formatInterval(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return '—';
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 120 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${Math.round(seconds)} s`;
}

/** The smallest 1, 2 or 5 × 10^k that is ≥ `value` (the latency chart's top). */
export function niceCeil(value: number): number {
  if (!Number.isFinite(value) || value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

function round1(n: number): string {
  return String(Math.round(n * 10) / 10);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function refreshSeconds(report: EkmHealthReport): number {
  const s = report.probeIntervalSeconds;
  return Number.isFinite(s) && s > MIN_REFRESH_SECONDS ? Math.round(s) : MIN_REFRESH_SECONDS;
}

// ---------------------------------------------------------------------------------------------------------------
// Charts
// ---------------------------------------------------------------------------------------------------------------

interface Window24h {
  start: number;
  end: number;
}

function chartWindow(report: EkmHealthReport): Window24h {
  const end = parseTime(report.generatedAt) ?? Date.now();
  return { start: end - DAY_MS, end };
}

/** x in chart units of a time in the window, clamped to the chart. */
function xOf(t: number, w: Window24h): number {
  return Math.min(CHART_W, Math.max(0, ((t - w.start) / (w.end - w.start)) * CHART_W));
}

/**
 * One bar per run of consecutive probes with the same outcome (a probe covers one probe interval from its time;
 * a gap longer than 1.5 intervals ends a run and stays empty): a day at one probe a minute is a handful of
 * rectangles, not 1440.
 */
export function availabilityRuns(
  history: ProbePoint[],
  intervalSeconds: number,
  w: Window24h,
): Array<{ ok: boolean; x: number; width: number; probes: number }> {
  const intervalMs = Math.max(1, intervalSeconds) * 1000;
  const runs: Array<{ ok: boolean; from: number; to: number; probes: number }> = [];
  for (const point of history) {
    const t = parseTime(point.time);
    if (t === null) continue;
    const last = runs.at(-1);
    if (last && last.ok === point.ok && t - (last.to - intervalMs) <= intervalMs * 1.5) {
      last.to = t + intervalMs;
      last.probes++;
    } else {
      if (last && last.to > t) last.to = t;
      runs.push({ ok: point.ok, from: t, to: t + intervalMs, probes: 1 });
    }
  }
  return runs.map((r) => {
    const x = xOf(r.from, w);
    // Never thinner than one unit, so a single failed probe in a day still shows.
    const width = Math.max(1, xOf(r.to, w) - x);
    return { ok: r.ok, x: Math.min(x, CHART_W - width), width, probes: r.probes };
  });
}

function availabilityChart(target: TargetReport, report: EkmHealthReport): string {
  const w = chartWindow(report);
  const runs = availabilityRuns(target.history, report.probeIntervalSeconds, w);
  const total = target.history.length;
  const ok = target.history.filter((p) => p.ok).length;
  const label =
    total === 0
      ? 'Availability over the last 24 hours: no probes'
      : `Availability over the last 24 hours: ${ok} of ${plural(total, 'probe')} succeeded (${formatPercent(ok / total)})`;
  const bars = runs
    .map(
      (r) =>
        `<rect class="${r.ok ? 'bar-ok' : 'bar-fail'}" x="${round1(r.x)}" y="0" width="${round1(r.width)}" height="${AVAIL_H}" data-ok="${r.ok}" data-probes="${r.probes}"/>`,
    )
    .join('');
  return `<figure class="chart">
<figcaption>Availability, last 24 h <span class="legend"><span class="key key-ok"></span>succeeded <span class="key key-fail"></span>failed</span></figcaption>
<svg data-chart="availability" data-points="${total}" data-failed="${total - ok}" role="img" aria-label="${escapeHtml(label)}" viewBox="0 0 ${CHART_W} ${AVAIL_H}" preserveAspectRatio="xMidYMid meet" focusable="false"><title>${escapeHtml(label)}</title><rect class="chart-bg" x="0" y="0" width="${CHART_W}" height="${AVAIL_H}"/>${bars}</svg>
${axisLabels(total)}
</figure>`;
}

function latencyChart(target: TargetReport, report: EkmHealthReport): string {
  const w = chartWindow(report);
  const points = target.history
    .filter((p) => p.ok && Number.isFinite(p.latencyMs))
    .map((p) => ({ t: parseTime(p.time), ms: Math.max(0, p.latencyMs) }))
    .filter((p): p is { t: number; ms: number } => p.t !== null);
  const top = niceCeil(Math.max(0, ...points.map((p) => p.ms)));
  const plotH = LATENCY_H - 2 * LATENCY_PAD;
  const yOf = (ms: number) => LATENCY_PAD + plotH - (Math.min(ms, top) / top) * plotH;
  const coords = points.map((p) => `${round1(xOf(p.t, w))},${round1(yOf(p.ms))}`);
  const label =
    points.length === 0
      ? 'Latency over the last 24 hours: no successful probes'
      : `Latency of ${plural(points.length, 'successful probe')} over the last 24 hours, 0 to ${formatMs(top)}; p50 ${formatMs(target.day.p50Ms)}, p99 ${formatMs(target.day.p99Ms)}`;
  const grid = [0.5, 1]
    .map((f) => {
      const y = round1(yOf(top * f));
      return `<line class="grid" x1="0" x2="${CHART_W}" y1="${y}" y2="${y}"/>`;
    })
    .join('');
  // A lone point is not a line: mark the latest one so a single probe still shows.
  const last = coords.at(-1)?.split(',');
  const marker = last ? `<circle class="latest" cx="${last[0]}" cy="${last[1]}" r="3"/>` : '';
  const line = coords.length > 0 ? `<polyline class="latency" points="${coords.join(' ')}"/>` : '';
  return `<figure class="chart">
<figcaption>Latency of successful probes, last 24 h${points.length > 0 ? ` <span class="scale">top: ${escapeHtml(formatMs(top))}</span>` : ''}</figcaption>
<svg data-chart="latency" data-points="${points.length}" data-max-ms="${top}" role="img" aria-label="${escapeHtml(label)}" viewBox="0 0 ${CHART_W} ${LATENCY_H}" preserveAspectRatio="xMidYMid meet" focusable="false"><title>${escapeHtml(label)}</title><rect class="chart-bg" x="0" y="0" width="${CHART_W}" height="${LATENCY_H}"/>${grid}${line}${marker}</svg>
${axisLabels(points.length)}
</figure>`;
}

function axisLabels(points: number): string {
  const empty = points === 0 ? '<span class="empty-chart">no data</span>' : '';
  return `<div class="axis" aria-hidden="true"><span>24 h ago</span>${empty}<span>now</span></div>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Page parts
// ---------------------------------------------------------------------------------------------------------------

function stateBadge(state: TargetState): string {
  const s = STATE_TEXT[state] ?? STATE_TEXT.UNKNOWN;
  return `<span class="badge badge-${state.toLowerCase()}" data-role="state" title="${escapeHtml(s.help)}"><span aria-hidden="true">${s.icon}</span> ${escapeHtml(state)}</span>`;
}

function timeWithAge(iso: string, nowIso: string): string {
  const age = formatAge(iso, nowIso);
  return `<time datetime="${escapeHtml(iso)}">${escapeHtml(formatTime(iso))}</time>${age ? ` <span class="age">(${escapeHtml(age)})</span>` : ''}`;
}

function summaryTable(target: TargetReport): string {
  const row = (name: string, f: (s: LatencySummary) => string) =>
    `<tr><th scope="row">${name}</th><td>${escapeHtml(f(target.hour))}</td><td>${escapeHtml(f(target.day))}</td></tr>`;
  return `<table class="numbers">
<caption class="visually-hidden">Availability and latency of ${escapeHtml(target.name)}</caption>
<thead><tr><td></td><th scope="col">Last hour</th><th scope="col">Last 24 h</th></tr></thead>
<tbody>
${row('Availability', (s) => formatPercent(s.availability))}
${row('Probes', (s) => String(s.count))}
${row('Latency p50', (s) => formatMs(s.p50Ms))}
${row('Latency p95', (s) => formatMs(s.p95Ms))}
${row('Latency p99', (s) => formatMs(s.p99Ms))}
</tbody>
</table>`;
}

function targetCard(target: TargetReport, index: number, report: EkmHealthReport): string {
  const headingId = `target-${index + 1}`;
  const now = report.generatedAt;
  const lastProbe = target.lastProbeTime ? timeWithAge(target.lastProbeTime, now) : 'never';
  const lastSuccess = target.lastSuccess
    ? `${timeWithAge(target.lastSuccess.time, now)}, ${escapeHtml(formatMs(target.lastSuccess.latencyMs))}`
    : 'none in the last 24 h';
  const lastFailure = target.lastFailure
    ? `${timeWithAge(target.lastFailure.time, now)}<br><span class="domain" data-role="failure-domain">${escapeHtml(target.lastFailure.domain)}</span>${target.lastFailure.message ? ` <span class="message">${escapeHtml(target.lastFailure.message)}</span>` : ''}`
    : 'none in the last 24 h';
  const kind = target.kind === 'connection' ? 'EKM connection' : 'EKM endpoint';
  return `<article class="target state-${escapeHtml(target.state.toLowerCase())}" data-target-id="${escapeHtml(target.id)}" data-state="${escapeHtml(target.state)}" aria-labelledby="${headingId}">
<header class="target-head">
<h2 id="${headingId}"><span class="kind">${kind}</span> <span class="name" data-role="name">${escapeHtml(target.name)}</span></h2>
${stateBadge(target.state)}
</header>
<dl class="facts">
<div><dt>Replica</dt><dd data-role="replica">${escapeHtml(target.replica)}</dd></div>
<div><dt>Protocol</dt><dd data-role="protocol">${escapeHtml(target.protocol)}</dd></div>
<div><dt>Last probe</dt><dd>${lastProbe}</dd></div>
<div><dt>Last success</dt><dd data-role="last-success">${lastSuccess}</dd></div>
<div><dt>Last failure</dt><dd data-role="last-failure">${lastFailure}</dd></div>
</dl>
${summaryTable(target)}
${availabilityChart(target, report)}
${latencyChart(target, report)}
</article>`;
}

function countStates(targets: TargetReport[]): Record<TargetState, number> {
  const counts: Record<TargetState, number> = { UP: 0, DOWN: 0, UNKNOWN: 0 };
  for (const t of targets) counts[t.state in counts ? t.state : 'UNKNOWN']++;
  return counts;
}

function headline(counts: Record<TargetState, number>, total: number): string {
  if (total === 0) return 'No EKM targets';
  if (counts.DOWN > 0) return `${counts.DOWN} of ${plural(total, 'target')} DOWN`;
  if (counts.UNKNOWN > 0) return `${counts.UNKNOWN} of ${plural(total, 'target')} UNKNOWN`;
  return total === 1 ? 'The EKM target is UP' : `All ${total} targets UP`;
}

function summary(report: EkmHealthReport, counts: Record<TargetState, number>): string {
  const total = report.targets.length;
  const overall: TargetState | 'NONE' =
    total === 0 ? 'NONE' : counts.DOWN > 0 ? 'DOWN' : counts.UNKNOWN > 0 ? 'UNKNOWN' : 'UP';
  const chips = (['UP', 'DOWN', 'UNKNOWN'] as const)
    .map(
      (s) =>
        `<li class="chip badge-${s.toLowerCase()}" data-summary="${s}"><span aria-hidden="true">${STATE_TEXT[s].icon}</span> ${s} <strong>${counts[s]}</strong></li>`,
    )
    .join('');
  return `<section class="summary" aria-labelledby="summary-heading" data-overall="${overall}">
<h2 id="summary-heading" class="headline">${escapeHtml(headline(counts, total))}</h2>
<ul class="chips" aria-label="Targets by state">${chips}</ul>
<p class="meta">Generated <time datetime="${escapeHtml(report.generatedAt)}">${escapeHtml(formatTime(report.generatedAt))}</time> · probes every ${escapeHtml(formatInterval(report.probeIntervalSeconds))} · this page refreshes every ${escapeHtml(formatInterval(refreshSeconds(report)))} · <a href="ekm">JSON</a></p>
</section>`;
}

function emptyState(): string {
  return `<section class="empty" data-empty="true">
<h2>No EKM targets</h2>
<p>No EKM endpoint is declared and no EKM connection exists, so there is nothing to probe. Declare endpoints with <code>OPENEKM_EKM_ENDPOINTS</code> or create an EKM connection; each target appears here after its first probe.</p>
</section>`;
}

const CSS = `
:root{color-scheme:light dark;--bg:#f6f8fa;--card:#fff;--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--chart:#eef1f4;
--up:#116329;--down:#b3261e;--unknown:#57606a;--ok-bar:#1a7f37;--fail-bar:#cf222e;--lat:#0550ae}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;
--chart:#21262d;--ok-bar:#2da44e;--fail-bar:#f85149;--lat:#58a6ff}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:80rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:0 0 .75rem}
h2{font-size:1.125rem;margin:0}
a{color:var(--lat)}
.summary,.target,.empty{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem;margin-bottom:1rem}
.headline{font-size:1.25rem;margin-bottom:.5rem}
.chips{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;margin:0 0 .5rem;padding:0}
.chip,.badge{display:inline-block;color:#fff;border-radius:999px;padding:.125rem .75rem;font-weight:600;white-space:nowrap}
.badge-up{background:var(--up)}.badge-down{background:var(--down)}.badge-unknown{background:var(--unknown)}
.meta{color:var(--muted);margin:0;font-size:.875rem}
.targets{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,30rem),1fr))}
.target{margin:0;border-left-width:.5rem;min-width:0}
.state-up{border-left-color:var(--up)}.state-down{border-left-color:var(--down)}.state-unknown{border-left-color:var(--unknown)}
.target-head{display:flex;flex-wrap:wrap;align-items:flex-start;justify-content:space-between;gap:.5rem;margin-bottom:.75rem}
.target-head h2{min-width:0;flex:1 1 12rem}
.kind{display:block;font-size:.8125rem;font-weight:400;color:var(--muted)}
.name,dd,.message{overflow-wrap:anywhere;word-break:break-word}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,13rem),1fr));gap:.5rem 1rem;margin:0 0 .75rem}
.facts dt{font-size:.8125rem;color:var(--muted)}
.facts dd{margin:0}
.age{color:var(--muted);font-size:.875rem}
.domain{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-weight:600;color:var(--down)}
.message{color:var(--muted);font-size:.875rem}
@media (prefers-color-scheme:dark){.domain{color:#ff7b72}}
.numbers{border-collapse:collapse;width:100%;margin-bottom:.75rem;font-variant-numeric:tabular-nums}
.numbers th,.numbers td{padding:.25rem .5rem;border-bottom:1px solid var(--line);text-align:right}
.numbers th[scope=row]{text-align:left;font-weight:400;color:var(--muted)}
.numbers thead th{font-size:.875rem}
.chart{margin:0 0 .75rem}
.chart figcaption{font-size:.875rem;color:var(--muted);display:flex;flex-wrap:wrap;justify-content:space-between;gap:.25rem .75rem}
.chart svg{display:block;width:100%;height:auto;border-radius:.25rem}
.chart-bg{fill:var(--chart)}
.bar-ok{fill:var(--ok-bar)}.bar-fail{fill:var(--fail-bar)}
.grid{stroke:var(--line);stroke-width:1;stroke-dasharray:4 4}
.latency{fill:none;stroke:var(--lat);stroke-width:2;stroke-linejoin:round}
.latest{fill:var(--lat)}
.key{display:inline-block;width:.75rem;height:.75rem;border-radius:2px;vertical-align:-1px;margin:0 .25rem 0 .5rem}
.key-ok{background:var(--ok-bar)}.key-fail{background:var(--fail-bar)}
.axis{display:flex;justify-content:space-between;font-size:.8125rem;color:var(--muted)}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
code{overflow-wrap:anywhere}
@media (max-width:30rem){main{padding:.5rem}.summary,.target,.empty{padding:.75rem}}
`;

/** The status page for `report`: a complete HTML5 document. */
export function renderStatusPage(report: EkmHealthReport): string {
  const targets = [...report.targets].sort(
    (a, b) =>
      (STATE_ORDER[a.state] ?? 1) - (STATE_ORDER[b.state] ?? 1) ||
      a.name.localeCompare(b.name) ||
      a.replica.localeCompare(b.replica),
  );
  const counts = countStates(targets);
  const title = `${headline(counts, targets.length)} · OpenEKM status`;
  const body =
    targets.length === 0
      ? emptyState()
      : `<section class="targets" aria-label="EKM targets">\n${targets.map((t, i) => targetCard(t, i, report)).join('\n')}\n</section>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<meta http-equiv="refresh" content="${refreshSeconds(report)}">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
<main>
<h1>OpenEKM · EKM status</h1>
${summary(report, counts)}
${body}
</main>
</body>
</html>
`;
}
