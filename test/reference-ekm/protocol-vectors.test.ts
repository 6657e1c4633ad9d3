import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ciphertextDataIntegrityValue, gcmAad } from '@openekm/reference-ekm/xks/aad';
import { SigV4Error, verifySigV4 } from '@openekm/reference-ekm/xks/sigv4';

const suite = JSON.parse(readFileSync(new URL('./fixtures/sigv4-vectors.json', import.meta.url), 'utf8')) as {
  secretAccessKey: string;
  vectors: Array<{
    name: string;
    method: string;
    path: string;
    query: string;
    headers: Record<string, string>;
    body: string;
    authorization: string;
  }>;
};
const AT = new Date('2015-08-30T12:36:00Z');

for (const vector of suite.vectors) {
  test(`SigV4 verifier accepts the official ${vector.name} vector`, async () => {
    const request = {
      method: vector.method,
      path: vector.path,
      query: vector.query,
      headers: { ...vector.headers, authorization: vector.authorization },
      body: Buffer.from(vector.body),
    };
    const auth = await verifySigV4(
      request,
      (id) => (id === 'AKIDEXAMPLE' ? suite.secretAccessKey : undefined),
      { service: 'service', now: AT },
    );
    assert.equal(auth.accessKeyId, 'AKIDEXAMPLE');
  });

  test(`SigV4 verifier rejects ${vector.name} with one bit of the signature changed`, async () => {
    const flipped = vector.authorization.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
    const request = {
      method: vector.method,
      path: vector.path,
      query: vector.query,
      headers: { ...vector.headers, authorization: flipped },
      body: Buffer.from(vector.body),
    };
    await assert.rejects(
      verifySigV4(request, () => suite.secretAccessKey, { service: 'service', now: AT }),
      SigV4Error,
    );
  });
}

test('SigV4 verifier rejects a changed body, another service, an unknown key and a skewed clock', async () => {
  const vector = suite.vectors.find((v) => v.name === 'post-x-www-form-urlencoded')!;
  const base = {
    method: vector.method,
    path: vector.path,
    query: '',
    headers: { ...vector.headers, authorization: vector.authorization },
    body: Buffer.from(vector.body),
  };
  const secret = () => suite.secretAccessKey;
  await assert.rejects(
    verifySigV4({ ...base, body: Buffer.from('Param1=value2') }, secret, { service: 'service', now: AT }),
    /does not match/,
  );
  await assert.rejects(
    verifySigV4(base, secret, { service: 'kms-xks-proxy', now: AT }),
    /service must be kms-xks-proxy/,
  );
  await assert.rejects(
    verifySigV4(base, () => undefined, { service: 'service', now: AT }),
    /access key id is not known/,
  );
  await assert.rejects(
    verifySigV4(base, secret, { service: 'service', now: new Date(AT.getTime() + 5 * 60_000 + 1000) }),
    /5 minutes/,
  );
  await verifySigV4(base, secret, { service: 'service', now: new Date(AT.getTime() + 4 * 60_000) });
});

test("CDIV matches the XKS specification's example", () => {
  const b = (s: string) => Buffer.from(s, 'base64');
  const cdiv = ciphertextDataIntegrityValue({
    aad: b('cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n'),
    ciphertextMetadata: b('a2V5X3ZlcnNpb249MQ=='),
    iv: b('HMrlRw85cAJUd5Ax'),
    ciphertext: b('ghxkK1txeDNn3q8Y'),
    tag: b('vBxN2ncH1oEkR8WVXpmyYQ=='),
  });
  assert.equal(cdiv, 'qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=');
});

test('the GCM AAD is u16be(len aad) ‖ aad ‖ u8(len metadata) ‖ metadata', () => {
  assert.deepEqual(
    [...gcmAad(Buffer.from('ab'), Buffer.from('xyz'))],
    [0, 2, 0x61, 0x62, 3, 0x78, 0x79, 0x7a],
  );
  assert.deepEqual([...gcmAad(Buffer.alloc(0), Buffer.alloc(0))], [0, 0, 0]);
});
