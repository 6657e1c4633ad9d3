/**
 * The status page in a real browser: headless Chromium loads it from a throw-away loopback server at a phone and
 * a desktop viewport, and nothing may leave 127.0.0.1. Checks what only a browser can tell: the layout fits a
 * phone, the charts have a size, the page draws something, the hostile target name stays text.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContextOptions } from 'playwright-core';
import { skipWithout } from '../../scripts/lib/system-packages.js';
import type { EkmHealthReport, ProbePoint, TargetReport } from '../../shared/health/report.js';
import { renderStatusPage } from '../../shared/health/status-page.js';
import {
  blockNonLoopback,
  countPixels,
  decodePng,
  distinctColours,
  findChromium,
  isLoopbackUrl,
  launchChromium,
  pngSize,
} from '../helpers/browser.js';

const XSS = '<script>alert(1)</script>';
const MIN = 60_000;
const NOW = Date.parse('2026-11-29T20:00:00Z');
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();
/** The status page's badge colours (--up, --down in status-page.ts), to find in the screenshots. */
const UP_RGB: [number, number, number] = [0x11, 0x63, 0x29];
const DOWN_RGB: [number, number, number] = [0xb3, 0x26, 0x1e];

/** Probes one minute apart over `minutes` minutes ending now, oldest first. */
function probes(minutes: number, failed: (minutesAgo: number) => string | null): ProbePoint[] {
  return Array.from({ length: minutes }, (_, i) => {
    const m = minutes - 1 - i;
    const domain = failed(m);
    return domain
      ? { time: iso(m * MIN), ok: false, latencyMs: 2000, domain }
      : { time: iso(m * MIN), ok: true, latencyMs: 18 + 6 * Math.sin(m / 40) + (m % 180 === 0 ? 60 : 0) };
  });
}

function realisticReport(): EkmHealthReport {
  const up = probes(1440, (m) => (m === 700 || m === 701 ? 'EXTERNAL_KEY_MANAGER_TIMEOUT' : null));
  const down = probes(180, (m) => (m < 12 || m === 95 ? 'EXTERNAL_KEY_MANAGER_UNREACHABLE' : null));
  const targets: TargetReport[] = [
    {
      id: 'ep-primary',
      kind: 'endpoint',
      name: 'https://ekm-primary.example.com:443/v0/projects/payments-production-eu-west/keys/',
      replica: 'ekm-primary.example.com:443',
      protocol: 'google-ekm-v0',
      state: 'UP',
      lastProbeTime: iso(0),
      lastSuccess: { time: iso(0), latencyMs: 18.2 },
      lastFailure: {
        time: iso(700 * MIN),
        domain: 'EXTERNAL_KEY_MANAGER_TIMEOUT',
        message: 'no answer in 2000 ms',
      },
      hour: { count: 60, availability: 1, p50Ms: 18.4, p95Ms: 23.9, p99Ms: 24.1 },
      day: { count: 1440, availability: 1438 / 1440, p50Ms: 18.1, p95Ms: 24.2, p99Ms: 78 },
      history: up,
    },
    {
      id: 'conn-xks-b',
      kind: 'connection',
      name: 'projects/payments/locations/europe-west1/ekmConnections/xks-eu',
      replica: 'xks-b.example.net:8443',
      protocol: 'aws-xks-v1',
      state: 'DOWN',
      lastProbeTime: iso(0),
      lastSuccess: { time: iso(12 * MIN), latencyMs: 31 },
      lastFailure: {
        time: iso(0),
        domain: 'EXTERNAL_KEY_MANAGER_UNREACHABLE',
        message: 'connect ECONNREFUSED 10.20.30.40:8443',
      },
      hour: { count: 60, availability: 48 / 60, p50Ms: 29, p95Ms: 41, p99Ms: 44 },
      day: { count: 180, availability: 167 / 180, p50Ms: 28, p95Ms: 40, p99Ms: 47 },
      history: down,
    },
    {
      id: 'ep-new',
      kind: 'endpoint',
      name: 'https://ekm-new.example.org/v0/',
      replica: 'ekm-new.example.org',
      protocol: 'google-ekm-v0',
      state: 'UNKNOWN',
      lastProbeTime: null,
      lastSuccess: null,
      lastFailure: null,
      hour: { count: 0, availability: null, p50Ms: null, p95Ms: null, p99Ms: null },
      day: { count: 0, availability: null, p50Ms: null, p95Ms: null, p99Ms: null },
      history: [],
    },
    {
      id: 'conn-xss',
      kind: 'connection',
      name: XSS,
      replica: 'xks-a.example.net:8443',
      protocol: 'aws-xks-v1',
      state: 'UP',
      lastProbeTime: iso(0),
      lastSuccess: { time: iso(0), latencyMs: 25 },
      lastFailure: null,
      hour: { count: 30, availability: 1, p50Ms: 24, p95Ms: 26, p99Ms: 27 },
      day: { count: 30, availability: 1, p50Ms: 24, p95Ms: 26, p99Ms: 27 },
      history: probes(30, () => null),
    },
  ];
  return { generatedAt: iso(0), probeIntervalSeconds: 60, targets };
}

const REPORT = realisticReport();

/** What the test reads of one target element in the page. */
interface TargetInPage {
  id: string;
  state: string;
  /** The state badge's rendered text, null when it is not visible. */
  stateText: string | null;
  name: string;
  charts: Record<string, { visible: boolean; width: number; height: number; role: string | null }>;
}
const HTML = renderStatusPage(REPORT);
const PATH = '/health/status';

const VIEWPORTS: Array<{ name: string; phone: boolean; options: BrowserContextOptions }> = [
  {
    name: 'phone (390×844)',
    phone: true,
    options: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  },
  {
    name: 'desktop (1280×800)',
    phone: false,
    options: {
      viewport: { width: 1280, height: 800 },
      deviceScaleFactor: 1,
      isMobile: false,
      hasTouch: false,
    },
  },
];

describe('status page in headless Chromium', { timeout: 30_000, skip: skipWithout('chromium') }, () => {
  let browser: Browser | undefined;
  let server: Server | undefined;
  let origin = '';
  const served: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      served.push(`${req.method} ${req.url}`);
      if (req.method === 'GET' && req.url === PATH) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(HTML);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      }
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  });

  test('the loopback guard lets 127.0.0.1 through and nothing else', async () => {
    assert.ok(isLoopbackUrl(`${origin}${PATH}`));
    assert.ok(isLoopbackUrl('data:,'));
    for (const url of [
      'http://localhost:1/',
      'https://example.com/',
      'http://127.0.0.2/',
      'ftp://127.0.0.1/',
      'x',
    ]) {
      assert.equal(isLoopbackUrl(url), false, url);
    }
    assert.throws(
      () => findChromium({ OPENEKM_CHROMIUM: '/nonexistent/chromium' }),
      /apt-get install chromium/,
    );

    const context = await browser!.newContext();
    try {
      const guard = await blockNonLoopback(context);
      const page = await context.newPage();
      const failed = page.waitForEvent('requestfailed');
      await page.setContent('<img src="http://openekm-test.invalid/pixel.png" alt="">');
      assert.equal((await failed).url(), 'http://openekm-test.invalid/pixel.png');
      assert.deepEqual(guard.blocked, ['http://openekm-test.invalid/pixel.png']);
    } finally {
      await context.close();
    }
  });

  for (const { name, phone, options } of VIEWPORTS) {
    test(`renders every target at a ${name} viewport`, async () => {
      const context = await browser!.newContext({
        ...options,
        colorScheme: 'light',
        serviceWorkers: 'block',
      });
      try {
        const guard = await blockNonLoopback(context);
        const page = await context.newPage();
        const requested: string[] = [];
        const problems: string[] = [];
        const dialogs: string[] = [];
        page.on('request', (r) => requested.push(r.url()));
        page.on('console', (m) => {
          if (m.type() === 'error' || m.type() === 'warning')
            problems.push(`console ${m.type()}: ${m.text()}`);
        });
        page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
        page.on('dialog', (d) => {
          dialogs.push(d.message());
          void d.dismiss();
        });
        served.length = 0;

        const response = await page.goto(`${origin}${PATH}`, { waitUntil: 'load' });
        assert.equal(response?.status(), 200);
        assert.equal(await page.title(), '1 of 4 targets DOWN · OpenEKM status');

        // One element per target, with its state as an attribute and as visible text, and two visible charts.
        // Read in one round trip: a loaded 2-core CI machine makes every browser call slow.
        const seen = await page.evaluate<
          TargetInPage[]
        >(`[...document.querySelectorAll('[data-target-id]')].map((el) => {
          const state = el.querySelector('[data-role="state"]');
          const charts = {};
          for (const svg of el.querySelectorAll('svg[data-chart]')) {
            const box = svg.getBoundingClientRect();
            charts[svg.dataset.chart] = { visible: svg.checkVisibility(), width: box.width, height: box.height, role: svg.getAttribute('role') };
          }
          return {
            id: el.dataset.targetId,
            state: el.dataset.state,
            stateText: state && state.checkVisibility() ? state.innerText : null,
            name: el.querySelector('[data-role="name"]').textContent,
            charts,
          };
        })`);
        assert.deepEqual(
          seen.map((t) => t.id).sort(),
          REPORT.targets.map((t) => t.id).sort(),
          'one element per target',
        );
        for (const t of REPORT.targets) {
          const el = seen.find((s) => s.id === t.id)!;
          assert.equal(el.state, t.state, t.id);
          assert.match(
            el.stateText ?? '(hidden)',
            new RegExp(`^\\W*${t.state}$`),
            `visible state text of ${t.id}`,
          );
          assert.equal(el.name, t.name);
          assert.deepEqual(Object.keys(el.charts).sort(), ['availability', 'latency'], t.id);
          for (const [kind, chart] of Object.entries(el.charts)) {
            assert.ok(
              chart.visible && chart.width > 100 && chart.height >= 10 && chart.role === 'img',
              `${kind} chart of ${t.id}: ${JSON.stringify(chart)}`,
            );
          }
        }
        assert.equal(await page.locator('[data-target-id]').count(), REPORT.targets.length);
        assert.equal(await page.locator('h1').count(), 1);
        assert.equal(await page.locator('article h2').count(), REPORT.targets.length);
        assert.equal(
          await page.locator('svg[data-chart] polyline').count(),
          3,
          'no latency line without probes',
        );
        const downDomain = page.locator('[data-target-id="conn-xks-b"] [data-role="failure-domain"]');
        assert.equal(await downDomain.textContent(), 'EXTERNAL_KEY_MANAGER_UNREACHABLE');
        assert.ok(await downDomain.isVisible());

        // The hostile name is text: no script element, no dialog.
        assert.equal(await page.evaluate<number>('document.scripts.length'), 0);
        assert.equal(await page.getByText(XSS, { exact: true }).count(), 1);

        // Fits the screen, and text stays readable.
        const fit = async () =>
          page.evaluate<{ scrollWidth: number; innerWidth: number }>(
            '({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })',
          );
        const { scrollWidth, innerWidth } = await fit();
        assert.equal(innerWidth, options.viewport!.width);
        assert.ok(
          scrollWidth <= innerWidth,
          `no horizontal scrolling: scrollWidth ${scrollWidth} > ${innerWidth}`,
        );
        const smallestFont = await page.evaluate<number>(`(() => {
          let min = Infinity;
          for (const el of document.body.querySelectorAll('*')) {
            const hasText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
            if (hasText && el.getClientRects().length > 0) min = Math.min(min, parseFloat(getComputedStyle(el).fontSize));
          }
          return min;
        })()`);
        assert.ok(smallestFont >= 12, `smallest visible text is ${smallestFont}px`);

        // A screenshot of the viewport, in device pixels, that shows something: many colours, both badges.
        const png = await page.screenshot();
        const dpr = options.deviceScaleFactor ?? 1;
        assert.deepEqual(pngSize(png), {
          width: options.viewport!.width * dpr,
          height: options.viewport!.height * dpr,
        });
        const image = decodePng(png);
        assert.ok(distinctColours(image) > 50, `a blank page has few colours: ${distinctColours(image)}`);
        assert.ok(countPixels(image, UP_RGB) > 200, 'the UP colour is on screen');
        assert.ok(countPixels(image, DOWN_RGB) > 200, 'the DOWN colour is on screen');

        if (phone) {
          // The narrowest phones too.
          await page.setViewportSize({ width: 360, height: 740 });
          const narrow = await fit();
          assert.equal(narrow.innerWidth, 360);
          assert.ok(
            narrow.scrollWidth <= 360,
            `no horizontal scrolling at 360 px: scrollWidth ${narrow.scrollWidth}`,
          );
        }

        assert.deepEqual(dialogs, [], 'no dialog opened');
        assert.deepEqual(problems, [], 'no console errors');
        assert.deepEqual(guard.blocked, [], 'no request left loopback');
        assert.deepEqual(
          requested.filter((u) => !u.startsWith('data:')),
          [`${origin}${PATH}`],
          'the page loads nothing but itself',
        );
        assert.deepEqual(served, [`GET ${PATH}`]);
      } finally {
        await context.close();
      }
    });
  }
});
