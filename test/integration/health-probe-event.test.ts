/**
 * The probe's event triggers: the `healthProbe` CloudEvent function inside the functions-framework pipeline
 * (a Pub/Sub message as Cloud Scheduler publishes it, in binary content mode), and `healthProbeLambda` (a
 * scheduled EventBridge event). Both run the probe: its records appear on /health/ekm.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { healthProbeLambda } from '../../functions/index.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let s: TestStack;

before(async () => {
  s = await startTestStack({ ekm: true, ekmTimeoutMs: 2000 });
});
after(() => s.stop());

async function lastProbeTimes(): Promise<(string | null)[]> {
  const report = await s.call('GET', '/health/ekm');
  assert.equal(report.status, 200, JSON.stringify(report.json));
  return report.json.targets.map((t: { lastProbeTime: string | null }) => t.lastProbeTime);
}

test('the healthProbe CloudEvent function probes every declared endpoint', async () => {
  const before = await lastProbeTimes();
  assert.ok(before.length >= 4, 'the stack declares four EKM endpoints');
  assert.ok(
    before.every((t) => t === null),
    'nothing probed yet',
  );
  const server = getTestServer('healthProbe');
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-specversion': '1.0',
        'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
        'ce-source': '//pubsub.googleapis.com/projects/demo/topics/openekm-probe',
        'ce-id': 'probe-1',
      },
      body: JSON.stringify({ message: { data: Buffer.from('probe').toString('base64'), messageId: '1' } }),
    });
    assert.ok(res.status >= 200 && res.status < 300, `status ${res.status}: ${await res.text()}`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const after = await lastProbeTimes();
  assert.ok(
    after.every((t) => t !== null),
    `every target probed: ${JSON.stringify(after)}`,
  );
  const report = await s.call('GET', '/health/ekm');
  assert.deepEqual(
    report.json.targets.map((t: { state: string }) => t.state),
    report.json.targets.map(() => 'UP'),
    JSON.stringify(report.json.targets.map((t: { lastFailure: unknown }) => t.lastFailure)),
  );
});

test('healthProbeLambda runs the probe and answers its outcomes', async () => {
  const result = await healthProbeLambda();
  assert.ok(result.probed.length >= 4);
  assert.ok(result.probed.every((p) => p.ok));
  const report = await s.call('GET', '/health/ekm');
  assert.ok(report.json.targets.every((t: { day: { count: number } }) => t.day.count >= 2));
});
