/**
 * Request encoders and answer decoders of both partner protocols (shared/ekm/google-ekm.ts, shared/ekm/xks.ts),
 * on answers recorded from the reference EKM (fixtures/ekm-answers.json), and how network failures become
 * error domains (classifyNetworkError). No EKM, no network.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { EkmFailure } from '../../shared/ekm/errors.js';
import * as google from '../../shared/ekm/google-ekm.js';
import type { EkmCallContext } from '../../shared/ekm/protocols.js';
import { classifyNetworkError, type EkmHttpResponse } from '../../shared/ekm/transport.js';
import * as xks from '../../shared/ekm/xks.js';

const rec = JSON.parse(readFileSync(new URL('./fixtures/ekm-answers.json', import.meta.url), 'utf8'));
const ctx: EkmCallContext = { ...rec.ctx, aad: Buffer.from(rec.ctx.aad, 'base64') };
const plaintext = Buffer.from(rec.plaintext, 'base64');
const answer = (r: { status: number; body: unknown }): EkmHttpResponse => ({
  ...r,
  text: JSON.stringify(r.body),
});

function failsWith(fn: () => unknown, domain: string, identityRefused?: boolean): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof EkmFailure, String(err));
    assert.equal(err.domain, domain, err.message);
    if (identityRefused !== undefined) assert.equal(err.identityRefused, identityRefused);
    return true;
  });
}

test('Google EKM: wrap and unwrap request bodies carry the fields of the specification', () => {
  const wrap = JSON.parse(google.wrapRequest(plaintext, ctx));
  assert.deepEqual(wrap, {
    plaintext: rec.plaintext,
    additionalAuthenticatedData: rec.ctx.aad,
    additionalContext: {
      relativeResourceName: ctx.versionName,
      fullResourceName: `//cloudkms.googleapis.com/${ctx.versionName}`,
      accessReasonContext: { reason: 'CUSTOMER_INITIATED_ACCESS' },
      isKeyHealthCheck: false,
    },
  });
  const blob = Buffer.from(rec.googleWrap.body.wrappedBlob, 'base64');
  const unwrap = JSON.parse(google.unwrapRequest(blob, { ...ctx, healthCheck: true }));
  assert.equal(unwrap.wrappedBlob, rec.googleWrap.body.wrappedBlob);
  assert.equal(unwrap.additionalContext.isKeyHealthCheck, true);
  assert.equal(unwrap.plaintext, undefined);
});

test('Google EKM: recorded answers decode; refusals become their domains', () => {
  const blob = google.wrapAnswer(answer(rec.googleWrap));
  assert.equal(blob.toString('base64'), rec.googleWrap.body.wrappedBlob);
  assert.deepEqual(google.unwrapAnswer(answer(rec.googleUnwrap)), plaintext);
  failsWith(() => google.unwrapAnswer(answer(rec.googleUnwrapBadAad)), 'DECRYPTION_FAILED');
  failsWith(() => google.wrapAnswer(answer(rec.googleNotFound)), 'EXTERNAL_NOT_FOUND');
  failsWith(() => google.wrapAnswer(answer(rec.googleNoToken)), 'EXTERNAL_PERMISSION_DENIED', true);
  // base64url is accepted; anything else, an empty or oversized blob, or a missing field is unusable.
  const url = rec.googleWrap.body.wrappedBlob.replace(/\+/g, '-').replace(/\//g, '_');
  assert.deepEqual(google.wrapAnswer(answer({ status: 200, body: { wrappedBlob: url } })), blob);
  for (const body of [
    {},
    { wrappedBlob: '' },
    { wrappedBlob: 'not base64!' },
    { wrappedBlob: 'A'.repeat(8000) },
  ]) {
    failsWith(() => google.wrapAnswer(answer({ status: 200, body })), 'UNEXPECTED_RESPONSE');
  }
  failsWith(() => google.wrapAnswer({ status: 503, body: undefined, text: 'busy' }), 'OVERLOADED_EKM');
  failsWith(
    () => google.wrapAnswer({ status: 429, body: undefined, text: '' }),
    'EXTERNAL_RESOURCE_EXHAUSTED',
  );
  failsWith(() => google.wrapAnswer({ status: 500, body: undefined, text: '' }), 'EXTERNAL_SERVER_ERROR');
  failsWith(() => google.wrapAnswer({ status: 501, body: undefined, text: '' }), 'EXTERNAL_NOT_IMPLEMENTED');
  // Refusals are classified by code, never by words: a message naming the justification is still a refusal of
  // OpenEKM's identity, while an ErrorInfo reason saying the justification was refused is about the caller's reason.
  failsWith(
    () =>
      google.wrapAnswer(
        answer({ status: 403, body: { message: 'justification CUSTOMER_INITIATED_SUPPORT is not allowed' } }),
      ),
    'EXTERNAL_PERMISSION_DENIED',
    true,
  );
  failsWith(
    () =>
      google.wrapAnswer(
        answer({
          status: 403,
          body: {
            error: {
              status: 'PERMISSION_DENIED',
              message: 'not allowed',
              details: [
                { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'JUSTIFICATION_REFUSED' },
              ],
            },
          },
        }),
      ),
    'EXTERNAL_PERMISSION_DENIED',
    false,
  );
});

test('XKS: encrypt and decrypt request bodies carry the fields of the specification', () => {
  const enc = JSON.parse(xks.encryptRequest(plaintext, ctx));
  assert.deepEqual(enc, {
    requestMetadata: {
      awsPrincipalArn: ctx.principal,
      kmsOperation: 'Encrypt',
      kmsRequestId: ctx.requestId,
      kmsKeyArn: ctx.versionName,
    },
    plaintext: rec.plaintext,
    encryptionAlgorithm: 'AES_GCM',
    additionalAuthenticatedData: rec.ctx.aad,
    ciphertextDataIntegrityValueAlgorithm: 'SHA_256',
  });
  const block = xks.encryptAnswer(answer(rec.xksEncrypt), plaintext.length, ctx.aad);
  const dec = JSON.parse(xks.decryptRequest(block, ctx));
  const e = rec.xksEncrypt.body;
  assert.equal(dec.ciphertext, e.ciphertext);
  assert.equal(dec.initializationVector, e.initializationVector);
  assert.equal(dec.authenticationTag, e.authenticationTag);
  assert.equal(dec.ciphertextMetadata, e.ciphertextMetadata);
  assert.equal(dec.requestMetadata.kmsOperation, 'Decrypt');
  assert.equal(dec.encryptionAlgorithm, 'AES_GCM');
});

test('XKS: recorded answers decode; the integrity value and sizes are checked; errors map by errorName', () => {
  const block = xks.encryptAnswer(answer(rec.xksEncrypt), plaintext.length, ctx.aad);
  const parts = xks.decodeXksBlock(block);
  assert.equal(parts.iv.toString('base64'), rec.xksEncrypt.body.initializationVector);
  assert.equal(parts.meta.toString('base64'), rec.xksEncrypt.body.ciphertextMetadata);
  assert.deepEqual(xks.encodeXksBlock(parts.iv, parts.tag, parts.meta, parts.ciphertext), block);
  // The CDIV covers the AAD: other AAD, or a changed field, fails the check.
  failsWith(
    () => xks.encryptAnswer(answer(rec.xksEncrypt), plaintext.length, Buffer.from('x')),
    'UNEXPECTED_RESPONSE',
  );
  const tampered = {
    ...rec.xksEncrypt,
    body: { ...rec.xksEncrypt.body, authenticationTag: Buffer.alloc(16).toString('base64') },
  };
  failsWith(() => xks.encryptAnswer(answer(tampered), plaintext.length, ctx.aad), 'UNEXPECTED_RESPONSE');
  failsWith(
    () => xks.encryptAnswer(answer(rec.xksEncrypt), plaintext.length + 1, ctx.aad),
    'UNEXPECTED_RESPONSE',
  );
  assert.deepEqual(xks.decryptAnswer(answer(rec.xksDecrypt)), plaintext);
  xks.metadataAnswer(answer(rec.xksMetadata));
  failsWith(
    () =>
      xks.metadataAnswer(answer({ status: 200, body: { ...rec.xksMetadata.body, keyStatus: 'DISABLED' } })),
    'EXTERNAL_PERMISSION_DENIED',
  );
  failsWith(
    () =>
      xks.metadataAnswer(answer({ status: 200, body: { ...rec.xksMetadata.body, keyUsage: ['ENCRYPT'] } })),
    'EXTERNAL_PERMISSION_DENIED',
  );
  failsWith(() => xks.decryptAnswer(answer(rec.xksDecryptBadAad)), 'DECRYPTION_FAILED');
  failsWith(() => xks.encryptAnswer(answer(rec.xksNotFound), 1, ctx.aad), 'EXTERNAL_NOT_FOUND');
  failsWith(
    () =>
      xks.encryptAnswer(
        answer({ status: 401, body: { errorName: 'AuthenticationFailedException' } }),
        1,
        ctx.aad,
      ),
    'EXTERNAL_PERMISSION_DENIED',
    true,
  );
  failsWith(
    () => xks.encryptAnswer(answer({ status: 429, body: { errorName: 'ThrottlingException' } }), 1, ctx.aad),
    'EXTERNAL_RESOURCE_EXHAUSTED',
  );
  failsWith(
    () =>
      xks.encryptAnswer(
        answer({ status: 503, body: { errorName: 'DependencyTimeoutException' } }),
        1,
        ctx.aad,
      ),
    'TIMEOUT',
  );
  // A malformed key-protection block is refused before any request is made.
  failsWith(() => xks.decryptRequest(Buffer.from([2, 12]), ctx), 'DECRYPTION_FAILED');
  failsWith(() => xks.decryptRequest(block.subarray(0, 20), ctx), 'DECRYPTION_FAILED');
});

test('classifyNetworkError: each failure before an answer gets its domain', () => {
  const live = new AbortController().signal;
  const err = (code: string, nested = false) => {
    const e = Object.assign(new Error(code), { code });
    return nested ? new TypeError('fetch failed', { cause: e }) : e;
  };
  const cases: Array<[unknown, string]> = [
    [err('ENOTFOUND', true), 'DNS'],
    [err('EAI_AGAIN', true), 'DNS'],
    [err('ECONNREFUSED', true), 'UNREACHABLE_NETWORK'],
    [err('ECONNRESET', true), 'UNREACHABLE_NETWORK'],
    [err('UND_ERR_SOCKET', true), 'UNREACHABLE_NETWORK'],
    [err('ERR_HTTP2_STREAM_ERROR', true), 'UNREACHABLE_NETWORK'],
    [err('ERR_HTTP2_GOAWAY_SESSION', true), 'UNREACHABLE_NETWORK'],
    [err('DEPTH_ZERO_SELF_SIGNED_CERT', true), 'TLS_CERT'],
    [err('ERR_TLS_CERT_ALTNAME_INVALID', true), 'TLS_CERT'],
    [err('ERR_OPENEKM_PINNED_CERT', true), 'TLS_CERT'],
    [err('CERT_HAS_EXPIRED'), 'TLS_CERT'],
    [err('UND_ERR_CONNECT_TIMEOUT', true), 'TIMEOUT'],
    [Object.assign(new Error('Request timed out'), { name: 'TimeoutError' }), 'TIMEOUT'],
    [new Error('something else'), 'UNEXPECTED_ERROR'],
    [undefined, 'UNEXPECTED_ERROR'],
  ];
  for (const [e, domain] of cases) assert.equal(classifyNetworkError(e, live), domain, String(e));
  // The caller's own signal decides first: its deadline is TIMEOUT, a cancellation REQUEST_CANCELLED.
  const cancelled = new AbortController();
  cancelled.abort();
  assert.equal(classifyNetworkError(err('ECONNRESET', true), cancelled.signal), 'REQUEST_CANCELLED');
  const timedOut = new AbortController();
  timedOut.abort(new DOMException('deadline', 'TimeoutError'));
  assert.equal(classifyNetworkError(err('ECONNRESET', true), timedOut.signal), 'TIMEOUT');
});
