import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let s: TestStack;
before(async () => {
  s = await startTestStack();
});
after(() => s.stop());

test('SOFTWARE key round trip through the one base URL', async () => {
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  assert.equal((await s.call('POST', `${loc}/keyRings?keyRingId=r1`, {})).status, 200);
  const key = await s.call('POST', `${loc}/keyRings/r1/cryptoKeys?cryptoKeyId=k1`, {
    purpose: 'ENCRYPT_DECRYPT',
  });
  assert.equal(key.status, 200, JSON.stringify(key.json));
  assert.equal(key.json.primary.state, 'ENABLED');
  const enc = await s.call('POST', `${loc}/keyRings/r1/cryptoKeys/k1:encrypt`, {
    plaintext: Buffer.from('hi').toString('base64'),
  });
  assert.equal(enc.status, 200);
  assert.equal(enc.json.name, `${key.json.name}/cryptoKeyVersions/1`);
  const dec = await s.call('POST', `${loc}/keyRings/r1/cryptoKeys/k1:decrypt`, {
    ciphertext: enc.json.ciphertext,
  });
  assert.equal(dec.status, 200);
  assert.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'hi');
});
