/**
 * EKM request metrics: one structured line per EKM attempt with Cloud EKM's labels (method, final, response_code,
 * status) and its latency — what the log-based metrics of docs/audit-and-metrics.md count — for successful,
 * retried and refused calls.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EKM_METRIC } from '../../shared/audit/ekm-metrics.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let s: TestStack;
let key: string;
const b64 = (t: string) => Buffer.from(t).toString('base64');

interface Point {
  method: string;
  final: string;
  attempt: number;
  /** "false" when the gateway refused the attempt itself. */
  sent?: string;
  response_code: string;
  status: string;
  protocol: string;
  /** host:port of the EKM the attempt went to. */
  replica?: string;
  latencyMs: number;
}

function points(): Point[] {
  return s.logs
    .map((l) => JSON.parse(l) as { metric?: string; ekm?: Point })
    .filter((l) => l.metric === EKM_METRIC)
    .map((l) => l.ekm!);
}

async function during(work: () => Promise<unknown>): Promise<Point[]> {
  const before = points().length;
  await work();
  return points().slice(before);
}

before(async () => {
  s = await startTestStack({
    ekm: true,
    // Long attempts so a loaded machine never turns a call into a retried one; retries come from faults.
    ekmEndpoints: (declared) => declared.map((e) => ({ ...e, timeoutMs: 5000 })),
  });
  const ring = `/v1/projects/${s.project}/locations/us-east1/keyRings/metrics`;
  assert.equal(
    (await s.call('POST', `/v1/projects/${s.project}/locations/us-east1/keyRings?keyRingId=metrics`, {}))
      .status,
    200,
  );
  await s.ekm!.ekm.admin.createKey('metrics');
  key = `${ring}/cryptoKeys/m`;
  assert.equal(
    (
      await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=m&skipInitialVersionCreation=true`, {
        purpose: 'ENCRYPT_DECRYPT',
        versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
      })
    ).status,
    200,
  );
  const created = await during(() =>
    s.call('POST', `${key}/cryptoKeyVersions`, {
      externalProtectionLevelOptions: { externalKeyUri: s.ekm!.keyUri('metrics') },
    }),
  );
  assert.deepEqual(
    created.map((p) => [p.method, p.final, p.response_code, p.status]),
    [['checkKey', 'true', 'OK', 'OK']],
  );
  await s.call('POST', `${key}:updatePrimaryVersion`, { cryptoKeyVersionId: '1' });
});
after(() => s.stop());

test('a successful encrypt and decrypt: one final OK attempt each, with its latency', async () => {
  let ciphertext = '';
  const enc = await during(async () => {
    const res = await s.call('POST', `${key}:encrypt`, { plaintext: b64('m') });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    ciphertext = res.json.ciphertext;
  });
  const dec = await during(async () => {
    const res = await s.call('POST', `${key}:decrypt`, { ciphertext });
    assert.equal(res.status, 200, JSON.stringify(res.json));
  });
  assert.equal(enc.length, 1);
  assert.equal(dec.length, 1);
  assert.deepEqual(
    { ...enc[0]!, latencyMs: 0, replica: String(enc[0]!.replica).replace(/:[0-9]+$/, ':PORT') },
    {
      method: 'wrap',
      final: 'true',
      attempt: 1,
      response_code: 'OK',
      status: 'OK',
      protocol: 'google-ekm-v0',
      replica: '127.0.0.1:PORT',
      latencyMs: 0,
    },
  );
  assert.equal(dec[0]!.method, 'unwrap');
  assert.ok(enc[0]!.latencyMs > 0 && enc[0]!.latencyMs < 5000);
});

test('an overloaded EKM: retried attempts are not final, the last one is', async () => {
  await s.ekm!.ekm.admin.setFault({ target: 'metrics', kind: 'status', value: 503, rate: 1 });
  try {
    const got = await during(async () => {
      const res = await s.call(
        'POST',
        `${key}:encrypt`,
        { plaintext: b64('m') },
        // Room for retries of fast-failing attempts until less than one 5 s attempt fits (about 0.4 s).
        { headers: { 'X-Server-Timeout': '5.5' } },
      );
      assert.equal(res.status, 400, JSON.stringify(res.json));
    });
    assert.ok(got.length >= 2, `several attempts: ${JSON.stringify(got)}`);
    for (const p of got) {
      assert.equal(p.method, 'wrap');
      assert.equal(p.status, 'OVERLOADED_EKM');
      assert.equal(p.response_code, 'UNAVAILABLE');
    }
    assert.deepEqual(
      got.map((p) => p.final),
      [...got.slice(1).map(() => 'false'), 'true'],
    );
    // Numbered in order; none was refused by the gateway itself (the EKM answered each one 503).
    assert.deepEqual(
      got.map((p) => p.attempt),
      got.map((_, i) => i + 1),
    );
    assert.ok(got.every((p) => p.sent === undefined));
  } finally {
    await s.ekm!.ekm.admin.clearFaults();
  }
});

test('a refusal is not retried: one final attempt with the domain', async () => {
  await s.ekm!.ekm.admin.setFault({ target: 'metrics', kind: 'status', value: 404, rate: 1 });
  try {
    const got = await during(() => s.call('POST', `${key}:encrypt`, { plaintext: b64('m') }));
    assert.deepEqual(
      got.map((p) => [p.method, p.final, p.response_code, p.status]),
      [['wrap', 'true', 'NOT_FOUND', 'EXTERNAL_NOT_FOUND']],
    );
  } finally {
    await s.ekm!.ekm.admin.clearFaults();
  }
});
