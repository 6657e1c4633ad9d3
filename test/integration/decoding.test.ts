/**
 * Request decoding through the one base URL: what real clients send (enum numbers, both base64 alphabets with and
 * without padding, `""` and empty bodies, snake_case names, `True` booleans, `$alt=json;enum-encoding=int`) and
 * what bad input gets (a 400 google.rpc envelope naming the problem; never a 500, never HTML, never a hang).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/stack.js';

type Reply = Awaited<ReturnType<TestStack['call']>>;
interface Detail {
  '@type': string;
  fieldViolations?: { field: string; description: string }[];
  violations?: { type: string; subject: string; description: string }[];
}

let s: TestStack;
let loc: string;
let ring: string;
let key: string;

before(async () => {
  s = await startTestStack();
  loc = `/v1/projects/${s.project}/locations/us-east1`;
  assert.equal((await s.call('POST', `${loc}/keyRings?keyRingId=dec`, {})).status, 200);
  ring = `${loc}/keyRings/dec`;
  const k = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=k`, { purpose: 'ENCRYPT_DECRYPT' });
  assert.equal(k.status, 200, JSON.stringify(k.json));
  key = `${ring}/cryptoKeys/k`;
});
after(() => s.stop());

function assertEnvelope(r: Reply, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.ok(r.json?.error, `a google.rpc envelope: ${JSON.stringify(r.json)}`);
  assert.equal(r.json.error.code, status);
  assert.equal(r.json.error.status, code);
  assert.equal(typeof r.json.error.message, 'string');
  if (message) assert.match(r.json.error.message, message);
}

function fieldOf(r: Reply): string | undefined {
  return r.json.error.details?.find((d: Detail) => d['@type'] === 'type.googleapis.com/google.rpc.BadRequest')
    ?.fieldViolations[0]?.field;
}

test('enums are accepted as numbers (and numeric strings) and answered as names', async () => {
  const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=numeric`, {
    purpose: 1,
    versionTemplate: { protectionLevel: 1, algorithm: '1' },
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.purpose, 'ENCRYPT_DECRYPT');
  assert.deepEqual(r.json.versionTemplate, {
    protectionLevel: 'SOFTWARE',
    algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
  });
  assert.equal(r.json.primary.state, 'ENABLED');
  const patch = await s.call('PATCH', `${ring}/cryptoKeys/numeric/cryptoKeyVersions/1?updateMask=state`, {
    state: 2,
  });
  assert.equal(patch.status, 200, JSON.stringify(patch.json));
  assert.equal(patch.json.state, 'DISABLED');
  const bad = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=badenum`, { purpose: 77 });
  assertEnvelope(bad, 400, 'INVALID_ARGUMENT', /Invalid value at 'purpose': 77 is not one of/);
  assert.equal(fieldOf(bad), 'purpose');
  const badName = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=badenum`, { purpose: 'ENCRYPT' });
  assertEnvelope(badName, 400, 'INVALID_ARGUMENT', /'purpose': "ENCRYPT" is not one of .*ENCRYPT_DECRYPT/);
});

test('bytes in standard and URL-safe base64, padded or not, all decode to the same bytes', async () => {
  // 0xfb 0xff 0xbf gives "+/+/" in the standard alphabet and "-_-_" in the URL-safe one; 5 bytes need padding.
  const pt = Buffer.from([0xfb, 0xff, 0xbf, 0xfb, 0xff]);
  const std = pt.toString('base64');
  assert.equal(std, '+/+/+/8=');
  const forms = [std, std.replace(/=+$/, ''), pt.toString('base64url'), `${pt.toString('base64url')}=`];
  for (const plaintext of forms) {
    const e = await s.call('POST', `${key}:encrypt`, { plaintext });
    assert.equal(e.status, 200, `${plaintext}: ${JSON.stringify(e.json)}`);
    const ct = Buffer.from(e.json.ciphertext, 'base64');
    // gcloud sends the ciphertext URL-safe WITH padding; the Node client standard with padding.
    const urlSafePadded = ct.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    for (const ciphertext of [ct.toString('base64'), ct.toString('base64url'), urlSafePadded]) {
      const d = await s.call('POST', `${key}:decrypt`, { ciphertext });
      assert.equal(d.status, 200, `${ciphertext}: ${JSON.stringify(d.json)}`);
      assert.ok(Buffer.from(d.json.plaintext, 'base64').equals(pt), `form ${plaintext} / ${ciphertext}`);
    }
  }
  // Responses use the standard alphabet with padding (proto3 JSON).
  const e = await s.call('POST', `${key}:encrypt`, { plaintext: 'AQ' });
  assert.match(e.json.ciphertext, /^[A-Za-z0-9+/]+={0,2}$/);
  assert.equal(e.json.ciphertext.length % 4, 0);
});

test('invalid base64 is refused with 400 naming the field', async () => {
  for (const [path, field, body] of [
    [`${key}:encrypt`, 'plaintext', { plaintext: 'abc$' }],
    [`${key}:encrypt`, 'plaintext', { plaintext: 'abcde' }],
    [`${key}:encrypt`, 'plaintext', { plaintext: 'ab=c' }],
    [`${key}:encrypt`, 'plaintext', { plaintext: 12 }],
    [
      `${key}:encrypt`,
      'additionalAuthenticatedData',
      { plaintext: 'AA==', additionalAuthenticatedData: 'é' },
    ],
    [`${key}:decrypt`, 'ciphertext', { ciphertext: '%%%%' }],
    [
      `${key}:decrypt`,
      'additionalAuthenticatedData',
      { ciphertext: 'AAAA', additionalAuthenticatedData: '****' },
    ],
  ] as const) {
    const r = await s.call('POST', path, body);
    assertEnvelope(r, 400, 'INVALID_ARGUMENT', new RegExp(field));
    assert.equal(fieldOf(r), field, JSON.stringify(r.json));
  }
});

test('"" and an empty body are the empty message', async () => {
  const quoted = await s.call('POST', `${loc}/keyRings?keyRingId=quoted`, undefined, { raw: '""' });
  assert.equal(quoted.status, 200, JSON.stringify(quoted.json));
  assert.equal(quoted.json.name, `${loc.slice(4)}/keyRings/quoted`);
  const empty = await s.call('POST', `${loc}/keyRings?keyRingId=empty`, undefined, { raw: '' });
  assert.equal(empty.status, 200, JSON.stringify(empty.json));
  const none = await s.call('POST', `${loc}/keyRings?keyRingId=nobody`);
  assert.equal(none.status, 200, JSON.stringify(none.json));
  const ws = await s.call('POST', `${key}/cryptoKeyVersions/1:destroy`, undefined, { raw: ' \n' });
  assert.equal(ws.status, 200, JSON.stringify(ws.json));
  assert.equal(
    (await s.call('POST', `${key}/cryptoKeyVersions/1:restore`, undefined, { raw: '""' })).status,
    200,
  );
  assert.equal(
    (await s.call('PATCH', `${key}/cryptoKeyVersions/1?updateMask=state`, { state: 'ENABLED' })).status,
    200,
  );
});

test('snake_case field names are accepted', async () => {
  const k = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=snake`, {
    purpose: 'ENCRYPT_DECRYPT',
    version_template: { protection_level: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
    destroy_scheduled_duration: '86400s',
    labels: { team_name: 'alpha' },
  });
  assert.equal(k.status, 200, JSON.stringify(k.json));
  assert.equal(k.json.destroyScheduledDuration, '86400s');
  assert.deepEqual(k.json.labels, { team_name: 'alpha' }, 'map keys keep their spelling');
  const aad = Buffer.from('ctx').toString('base64');
  const e = await s.call('POST', `${ring}/cryptoKeys/snake:encrypt`, {
    plaintext: 'aGk=',
    additional_authenticated_data: aad,
    plaintext_crc32c: '4120762818',
  });
  assert.equal(e.status, 200, JSON.stringify(e.json));
  assert.equal(e.json.verifiedPlaintextCrc32c, true);
  const d = await s.call('POST', `${ring}/cryptoKeys/snake:decrypt`, {
    ciphertext: e.json.ciphertext,
    additional_authenticated_data: aad,
    ciphertext_crc32c: e.json.ciphertextCrc32c,
  });
  assert.equal(d.status, 200, JSON.stringify(d.json));
  assert.equal(d.json.plaintext, 'aGk=');
  const prim = await s.call('POST', `${ring}/cryptoKeys/snake:updatePrimaryVersion`, {
    crypto_key_version_id: '1',
  });
  assert.equal(prim.status, 200, JSON.stringify(prim.json));
});

test('True, true, TRUE and 1 are true in the query; anything else that is not a boolean is refused', async () => {
  let n = 0;
  for (const v of ['True', 'true', 'TRUE', '1']) {
    const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=b${n++}&skipInitialVersionCreation=${v}`, {
      purpose: 'ENCRYPT_DECRYPT',
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.primary, undefined, `skipInitialVersionCreation=${v} skips the version`);
  }
  for (const v of ['False', 'false', '0']) {
    const r = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=b${n++}&skipInitialVersionCreation=${v}`, {
      purpose: 'ENCRYPT_DECRYPT',
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.primary?.state, 'ENABLED', `skipInitialVersionCreation=${v} keeps the version`);
  }
  const bad = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=bbad&skipInitialVersionCreation=yes`, {
    purpose: 'ENCRYPT_DECRYPT',
  });
  assertEnvelope(bad, 400, 'INVALID_ARGUMENT', /skipInitialVersionCreation="yes" is not a boolean/);
  assert.equal(fieldOf(bad), 'skipInitialVersionCreation');
  assert.equal((await s.call('GET', `${ring}/cryptoKeys/bbad`)).status, 404, 'no partial write');
});

test('$alt=json;enum-encoding=int answers enums as integers (the Node client), names otherwise', async () => {
  for (const q of ['$alt=json%3Benum-encoding=int', '$alt=json;enum-encoding=int']) {
    const k = await s.call('GET', `${key}?${q}`);
    assert.equal(k.status, 200, JSON.stringify(k.json));
    assert.equal(k.json.purpose, 1);
    assert.deepEqual(k.json.versionTemplate, { protectionLevel: 1, algorithm: 1 });
    assert.equal(k.json.primary.state, 1);
    assert.equal(k.json.primary.protectionLevel, 1);
    assert.equal(k.json.name, key.slice(4), 'non-enum strings are untouched');
  }
  const e = await s.call('POST', `${key}:encrypt?$alt=json%3Benum-encoding=int`, { plaintext: 'aGk=' });
  assert.equal(e.status, 200, JSON.stringify(e.json));
  assert.equal(e.json.protectionLevel, 1);
  const d = await s.call('POST', `${key}:decrypt?$alt=json%3Benum-encoding=int`, {
    ciphertext: e.json.ciphertext,
  });
  assert.equal(d.json.protectionLevel, 1);
  assert.equal(d.json.plaintext, 'aGk=');
  const list = await s.call('GET', `${key}/cryptoKeyVersions?$alt=json%3Benum-encoding=int`);
  assert.equal(list.json.cryptoKeyVersions[0].state, 1);
  assert.equal(list.json.cryptoKeyVersions[0].algorithm, 1);
  const named = await s.call('GET', `${key}?alt=json`);
  assert.equal(named.json.purpose, 'ENCRYPT_DECRYPT');
  // Errors keep their string status in either encoding.
  const missing = await s.call('GET', `${ring}/cryptoKeys/nope?$alt=json%3Benum-encoding=int`);
  assertEnvelope(missing, 404, 'NOT_FOUND');
});

test('a body over 1 MiB gets a 400 envelope (with Content-Length, and chunked without it)', async () => {
  const big = JSON.stringify({ plaintext: 'A'.repeat(1024 * 1024 + 100) });
  const r = await s.call('POST', `${key}:encrypt`, undefined, { raw: big });
  assertEnvelope(r, 400, 'INVALID_ARGUMENT', /the limit is 1048576 bytes/);

  // Chunked: no Content-Length, so it cannot be refused up front.
  const token = await s.token();
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      `${s.url}${key}:encrypt`,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'transfer-encoding': 'chunked',
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('no answer to a chunked oversize body')));
    for (let i = 0; i < 20; i++) req.write(big.slice(i * 60_000, (i + 1) * 60_000));
    req.end(big.slice(20 * 60_000));
  });
  assert.equal(chunked.status, 400, chunked.body);
  assert.match(JSON.parse(chunked.body).error.message, /limit is 1048576 bytes/);
});

test('a 2 MB plaintext gets the envelope through Node fetch and the Node client, not a broken pipe', async () => {
  // The server reads and discards the rest of an oversize body before answering, so a client that is still
  // sending gets the answer (not EPIPE), and the message says what to do instead.
  const token = await s.token();
  const plaintext = Buffer.alloc(2 * 1024 * 1024, 0x41).toString('base64');
  const res = await fetch(`${s.url}${key}:encrypt`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ plaintext }),
  });
  assert.equal(res.status, 400);
  const text = await res.text();
  assert.ok(text.endsWith('\n'), 'JSON answers end with a newline');
  const err = JSON.parse(text).error;
  assert.equal(err.status, 'INVALID_ARGUMENT');
  assert.match(
    err.message,
    /the limit is 1048576 bytes\. Plaintexts are limited to 64 KiB: .*envelope encryption/,
  );
});

test('compressed request bodies are refused before anything else, with what to do', async () => {
  const { gzipSync } = await import('node:zlib');
  const token = await s.token();
  const res = await fetch(`${s.url}${key}:encrypt`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    },
    body: gzipSync(JSON.stringify({ plaintext: 'aGk=' })),
  });
  assert.equal(res.status, 400);
  assert.match(
    (await res.json()).error.message,
    /Compressed request bodies are not accepted \(Content-Encoding: gzip\)/,
  );
});

test('the content type does not matter for a JSON body; a body that is not JSON is refused', async () => {
  for (const ct of [
    'text/plain',
    'application/x-www-form-urlencoded',
    'application/octet-stream',
    'application/json; charset=utf-8',
  ]) {
    const r = await s.call(
      'POST',
      `${key}:encrypt`,
      { plaintext: 'aGk=' },
      { headers: { 'content-type': ct } },
    );
    assert.equal(r.status, 200, `${ct}: ${JSON.stringify(r.json)}`);
  }
  const form = await s.call('POST', `${key}:encrypt`, undefined, {
    raw: 'plaintext=aGk%3D',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assertEnvelope(form, 400, 'INVALID_ARGUMENT', /^Invalid JSON payload received/);
  assert.match(form.json.error.message, /Send a JSON object/);
});

test('malformed JSON, arrays, scalars and deeply nested JSON are refused with 400', async () => {
  const cases: [string, RegExp][] = [
    ['{"plaintext": ', /^Invalid JSON payload received/],
    ['{plaintext: "aGk="}', /^Invalid JSON payload received/],
    ['[{"plaintext": "aGk="}]', /the body must be a JSON object/],
    ['"aGk="', /the body must be a JSON object/],
    ['42', /the body must be a JSON object/],
    ['null', /the body must be a JSON object/],
    [`{"plaintext":"aGk=","a":${'{"b":'.repeat(40)}1${'}'.repeat(40)}}`, /nested too deeply/],
    [`{"a":${'['.repeat(50_000)}${']'.repeat(50_000)}}`, /nested too deeply|Invalid JSON payload/],
  ];
  for (const [raw, message] of cases) {
    const r = await s.call('POST', `${key}:encrypt`, undefined, { raw });
    assertEnvelope(r, 400, 'INVALID_ARGUMENT', message);
  }
});

test('unknown fields, and the "__proto__" trick, are refused by name', async () => {
  const unknown = await s.call('POST', `${key}:encrypt`, { plaintext: 'aGk=', plainText: 'aGk=' });
  assertEnvelope(unknown, 400, 'INVALID_ARGUMENT', /Unknown name "plainText"/);
  const proto = await s.call('POST', `${key}:encrypt`, undefined, {
    raw: '{"__proto__": {"plaintext": "aGk="}}',
  });
  assertEnvelope(proto, 400, 'INVALID_ARGUMENT', /Unknown name "__proto__"/);
  const protoRing = await s.call('POST', `${loc}/keyRings?keyRingId=proto`, undefined, {
    raw: '{"__proto__": {"name": "x"}}',
  });
  assertEnvelope(protoRing, 400, 'INVALID_ARGUMENT', /Unknown name "__proto__"/);
});

test('bad input never answers 500 and never hangs', async () => {
  const requests: [string, string, string | undefined][] = [
    ['POST', `${key}:encrypt`, '{"plaintext": {"nested": true}}'],
    ['POST', `${key}:encrypt`, '{"plaintext": ["aGk="]}'],
    ['POST', `${key}:encrypt`, '{"plaintext": "aGk=", "plaintextCrc32c": {}}'],
    ['POST', `${key}:encrypt`, '{"plaintext": null}'],
    ['POST', `${key}:decrypt`, '{"ciphertext": 1e400}'],
    ['POST', `${key}:decrypt`, '\u0000\u0001\u0002'],
    ['POST', `${key}:frobnicate`, '{}'],
    ['DELETE', key, undefined],
    ['PUT', `${key}:encrypt`, '{}'],
    ['GET', `${key}:encrypt`, undefined],
    ['GET', '/v1/projects/%ZZ/locations/x/keyRings', undefined],
    ['GET', '/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1/extra', undefined],
    ['GET', '/', undefined],
    ['GET', '/v2/projects/p', undefined],
    ['POST', `${loc}/keyRings?keyRingId=${'x'.repeat(64)}`, '{}'],
    ['POST', `${loc}/keyRings?keyRingId=ok&keyRingId=two`, '{}'],
    ['POST', `${ring}/cryptoKeys?cryptoKeyId=c&unknownParam=1`, '{}'],
    ['POST', `${ring}/cryptoKeys?cryptoKeyId=c2`, '{"purpose":"ENCRYPT_DECRYPT","labels":[1]}'],
    [
      'POST',
      `${ring}/cryptoKeys?cryptoKeyId=c3`,
      '{"purpose":"ENCRYPT_DECRYPT","versionTemplate":"SOFTWARE"}',
    ],
    [
      'POST',
      `${ring}/cryptoKeys?cryptoKeyId=c4`,
      '{"purpose":"ENCRYPT_DECRYPT","destroyScheduledDuration":86400}',
    ],
    ['PATCH', `${key}?updateMask=labels`, '{"labels":{"a":1}}'],
    ['PATCH', `${key}?updateMask=nope`, '{}'],
    ['GET', `${ring}/cryptoKeys?pageSize=-1`, undefined],
    ['GET', `${ring}/cryptoKeys?pageSize=abc`, undefined],
    ['GET', `${ring}/cryptoKeys?pageToken=garbage`, undefined],
    ['GET', `${ring}/cryptoKeys?filter=((`, undefined],
    ['GET', `${ring}/cryptoKeys?orderBy=createTime`, undefined],
    ['POST', `${key}:updatePrimaryVersion`, '{"cryptoKeyVersionId": 1.5}'],
    ['POST', `${key}:updatePrimaryVersion`, '{"cryptoKeyVersionId": "../1"}'],
  ];
  for (const [method, path, raw] of requests) {
    const r = await s.call(method, path, undefined, raw === undefined ? {} : { raw });
    assert.ok(
      r.status >= 400 && r.status < 500,
      `${method} ${path} ${raw ?? ''} → ${r.status} ${JSON.stringify(r.json)}`,
    );
    assert.ok(
      r.json?.error?.status && r.json.error.message,
      `${method} ${path}: an envelope, got ${JSON.stringify(r.json)}`,
    );
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
  }
  assert.deepEqual(
    s.logs.filter((l) => /"status":5\d\d/.test(l)),
    [],
  );
});
