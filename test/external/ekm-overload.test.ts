/**
 * The EKM client under overload, against the reference EKM over real HTTP: the retry budget caps retries at a
 * share of first attempts, the concurrency bound refuses at once (UNAVAILABLE with RetryInfo) instead of
 * queueing, and HTTPS endpoints get HTTP/2 (many streams on one connection) while plain HTTP stays HTTP/1.1.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { b64, ekmCallsDuring, ekmRequests, externalKey, keyRing, waitFor } from './ext-helpers.js';

describe('retry budget', () => {
  let s: TestStack;
  let ring: string;
  before(async () => {
    s = await startTestStack({
      ekm: true,
      ekmTimeoutMs: 2000,
      env: {
        OPENEKM_EKM_RETRY_BUDGET_PERCENT: '10',
        OPENEKM_EKM_RETRY_BUDGET_MIN_PER_SECOND: '0',
        OPENEKM_EKM_RETRY_BUDGET_WINDOW_MS: '60000',
      },
    });
    ring = await keyRing(s, 'budget');
  });
  after(() => s.stop());

  test('an EKM that always answers 503 gets at most 10 % retries, not one per request', async () => {
    await s.ekm!.ekm.admin.createKey('budget-ok');
    await s.ekm!.ekm.admin.createKey('budget-503');
    const ok = await externalKey(s, ring, 'budget-ok', s.ekm!.keyUri('budget-ok', 'google', 'http'));
    const bad = await externalKey(s, ring, 'budget-503', s.ekm!.keyUri('budget-503', 'google', 'http'));
    // 30 successful first attempts fill the budget with 3 retries (same endpoint).
    for (let i = 0; i < 30; i++) {
      const res = await s.call('POST', `${ok.key}:encrypt`, { plaintext: b64(`ok${i}`) });
      assert.equal(res.status, 200, JSON.stringify(res.json));
    }
    await s.ekm!.ekm.admin.setFault({ target: 'budget-503', kind: 'status', value: 503, rate: 1 });
    const { calls } = await ekmCallsDuring(s, 'budget-503', async () => {
      for (let i = 0; i < 20; i++) {
        const res = await s.call('POST', `${bad.key}:encrypt`, { plaintext: b64(`bad${i}`) });
        assert.equal(res.status, 400, JSON.stringify(res.json));
        assert.equal(res.json.error.details[0].violations[1].type, 'OVERLOADED_EKM');
      }
    });
    // 50 first attempts in the window allow 5 retries; without a budget each of the 20 would retry.
    const retries = calls.length - 20;
    assert.ok(retries >= 1, `the budget allows some retries: ${calls.length} calls`);
    assert.ok(retries <= 5, `retries are capped at 10 % of first attempts: ${calls.length} calls`);
  });
});

describe('concurrency bound', () => {
  let s: TestStack;
  let ring: string;
  before(async () => {
    s = await startTestStack({
      ekm: true,
      ekmProcess: 'child',
      ekmTimeoutMs: 5000,
      env: { OPENEKM_EKM_MAX_CONCURRENT: '2', OPENEKM_EKM_MAX_QUEUE_WAIT_MS: '20' },
    });
    ring = await keyRing(s, 'bound');
  });
  after(() => s.stop());

  test('calls beyond the bound are refused at once with UNAVAILABLE and RetryInfo, before the slow ones end', async () => {
    await s.ekm!.ekm.admin.createKey('slow');
    const k = await externalKey(s, ring, 'slow', s.ekm!.keyUri('slow', 'xks', 'http'));
    await s.ekm!.ekm.admin.setFault({ target: 'slow', kind: 'latency', value: 1500, rate: 1 });
    const order: Array<{ status: number; json: any }> = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const res = await s.call(
          'POST',
          `${k.key}:encrypt`,
          { plaintext: b64(`c${i}`) },
          { headers: { 'X-Server-Timeout': '10' } },
        );
        order.push(res);
      }),
    );
    const ok = order.filter((r) => r.status === 200);
    const refused = order.filter((r) => r.status === 503);
    assert.equal(ok.length, 2, JSON.stringify(order.map((r) => r.status)));
    assert.equal(refused.length, 6, JSON.stringify(order.map((r) => r.status)));
    // Every refusal came back before either admitted call finished (1.5 s at the EKM), far inside the deadline.
    assert.deepEqual(
      order.map((r) => r.status),
      [...Array(6).fill(503), 200, 200],
    );
    for (const r of refused) {
      assert.equal(r.json.error.status, 'UNAVAILABLE');
      assert.match(r.json.error.message, /concurrent calls to the external key manager/);
      const retry = r.json.error.details.find((d: any) => d['@type'].endsWith('RetryInfo'));
      assert.match(retry?.retryDelay ?? '', /^\d+\.\d{3}s$/);
    }
    // Refused calls never reached the EKM (its log lines arrive from its own process).
    const encrypts = () => ekmRequests(s, 'slow').filter((l) => l.operation === 'encrypt').length;
    await waitFor('the EKM log', () => encrypts() >= 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(encrypts(), 2);
    await s.ekm!.ekm.admin.clearFaults();
    const again = await s.call('POST', `${k.key}:encrypt`, { plaintext: b64('again') });
    assert.equal(again.status, 200, JSON.stringify(again.json));
  });
});

describe('HTTP/2', () => {
  let s: TestStack;
  let ring: string;
  before(async () => {
    s = await startTestStack({
      ekm: true,
      ekmProcess: 'child',
      ekmTimeoutMs: 5000,
      env: { OPENEKM_EKM_HTTP2: 'true' },
    });
    ring = await keyRing(s, 'h2');
  });
  after(() => s.stop());

  test('with OPENEKM_EKM_HTTP2, HTTPS endpoints speak HTTP/2 (one connection for concurrent calls); plain HTTP speaks HTTP/1.1', async () => {
    await s.ekm!.ekm.admin.createKey('h2');
    const tls = await externalKey(s, ring, 'h2-tls', s.ekm!.keyUri('h2', 'google', 'https'));
    const xks = await externalKey(s, ring, 'h2-xks', s.ekm!.keyUri('h2', 'xks', 'https'));
    const plain = await externalKey(s, ring, 'h2-plain', s.ekm!.keyUri('h2', 'google', 'http'));
    const before = ekmRequests(s, 'h2').length;
    await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const k = [tls, xks][i % 2]!;
        const res = await s.call('POST', `${k.key}:encrypt`, { plaintext: b64(`h${i}`) });
        assert.equal(res.status, 200, JSON.stringify(res.json));
      }),
    );
    const res = await s.call('POST', `${plain.key}:encrypt`, { plaintext: b64('plain') });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const wrapsSoFar = () =>
      ekmRequests(s, 'h2')
        .slice(before)
        .filter((l) => l.operation === 'wrap' || l.operation === 'encrypt').length;
    await waitFor('the EKM log', () => wrapsSoFar() >= 17);
    const lines = ekmRequests(s, 'h2').slice(before);
    const wraps = lines.filter((l) => l.operation === 'wrap' || l.operation === 'encrypt');
    assert.equal(wraps.length, 17);
    assert.deepEqual(
      wraps.map((l) => l.http).sort(),
      [...Array(1).fill('1.1'), ...Array(16).fill('2.0')],
      'the HTTPS calls negotiated h2 by ALPN',
    );
    // One TLS connection per HTTPS endpoint carried all of its concurrent calls.
    const transport = (s.gateway.deps.ekm as any).transport;
    const https = [...transport.agents.entries()].filter(([k]: [string]) => k.startsWith('https:'));
    assert.equal(https.length, 2);
    for (const [, agent] of https) {
      const stats = Object.values(agent.stats as Record<string, { connected: number }>);
      assert.equal(
        stats.reduce((n, p) => n + p.connected, 0),
        1,
        JSON.stringify(agent.stats),
      );
    }
  });
});

describe('connections kept across timed-out attempts (HTTP/1.1)', () => {
  for (const lingerMs of ['2000', '0']) {
    describe(`OPENEKM_EKM_LINGER_MS=${lingerMs}`, () => {
      let s: TestStack;
      let ring: string;
      before(async () => {
        s = await startTestStack({ ekm: true, ekmTimeoutMs: 150, env: { OPENEKM_EKM_LINGER_MS: lingerMs } });
        ring = await keyRing(s, `linger${lingerMs}`);
      });
      after(() => s.stop());

      test(
        lingerMs === '0'
          ? 'without lingering, every timed-out attempt closes its connection (the comparison)'
          : 'a timed-out attempt is answered TIMEOUT at once, and its connection is kept for the next calls',
        async () => {
          const keyId = `linger-${lingerMs}`;
          await s.ekm!.ekm.admin.createKey(keyId);
          const k = await externalKey(s, ring, keyId, s.ekm!.keyUri(keyId, 'xks', 'https'));
          const ports = () => new Set(ekmRequests(s, keyId).map((l) => l.remotePort as number | undefined));
          const ok = await s.call('POST', `${k.key}:encrypt`, { plaintext: b64('warm') });
          assert.equal(ok.status, 200, JSON.stringify(ok.json));
          await s.ekm!.ekm.admin.setFault({ target: keyId, kind: 'latency', value: 400, rate: 1 });
          const started = performance.now();
          const slow = await s.call('POST', `${k.key}:encrypt`, { plaintext: b64('slow') });
          const tookMs = performance.now() - started;
          assert.equal(slow.status, 400, JSON.stringify(slow.json));
          assert.equal(slow.json.error.details[0].violations[1].type, 'TIMEOUT', JSON.stringify(slow.json));
          // The attempts were given up at their timeout, not when the EKM answered (400 ms each).
          const slowLines = () => ekmRequests(s, keyId).filter((l) => (l.latencyMs as number) >= 300);
          await waitFor('the slow attempts at the EKM', () => slowLines().length >= 1);
          const attempts = slowLines().length;
          assert.ok(tookMs < 400 * attempts, `answered in ${Math.round(tookMs)} ms for ${attempts} attempts`);
          await new Promise((r) => setTimeout(r, 600)); // the given-up exchanges end (400 ms at the EKM)
          await s.ekm!.ekm.admin.clearFaults();
          const known = ports();
          assert.ok(!known.has(undefined), 'the EKM logs each connection by its client port');
          const lines = ekmRequests(s, keyId).length;
          for (let i = 0; i < 6; i++) {
            const res = await s.call('POST', `${k.key}:encrypt`, { plaintext: b64(`after${i}`) });
            assert.equal(res.status, 200, JSON.stringify(res.json));
          }
          await waitFor('the EKM log', () => ekmRequests(s, keyId).length >= lines + 6);
          const fresh = [...ports()].filter((p) => !known.has(p));
          if (lingerMs === '0')
            assert.ok(fresh.length >= 1, 'closing on timeout forces a new connection (TLS handshake)');
          else assert.deepEqual(fresh, [], 'no new connection after the timeouts');
        },
      );
    });
  }
});
