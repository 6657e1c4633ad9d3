/** proto3 JSON field decoding (shared/resources/fields.ts): base64, checksums, booleans, enums, durations, masks. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RpcError } from '../../../shared/errors.js';
import {
  bytesValue,
  durationSeconds,
  enumValue,
  fieldMask,
  parseBool,
  timestampValue,
  uint32Value,
} from '../../../shared/resources/fields.js';
import { CryptoKeyPurpose } from '../../../shared/resources/types.js';

const invalid = (field?: string, message?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof RpcError, String(err));
  assert.equal(err.code, 'INVALID_ARGUMENT');
  if (message) assert.match(err.message, message);
  if (field) {
    const d = err.details[0];
    assert.ok(d && d['@type'] === 'type.googleapis.com/google.rpc.BadRequest', JSON.stringify(err.details));
    assert.equal(d.fieldViolations[0]?.field, field);
  }
  return true;
};

test('bytesValue: both alphabets, padded or not, whitespace ignored; invalid names the field', () => {
  const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x01]);
  for (const s of ['+/+/AQ==', '+/+/AQ', '-_-_AQ==', '-_-_AQ', '+/+/\nAQ==']) {
    assert.deepEqual(bytesValue(s, 'plaintext'), bytes, s);
  }
  assert.deepEqual(bytesValue('', 'plaintext'), Buffer.alloc(0));
  assert.equal(bytesValue(undefined, 'plaintext'), undefined);
  assert.equal(bytesValue(null, 'plaintext'), undefined);
  for (const bad of ['abcde', 'ab$c', 'a=bc', 'abc===', 'é']) {
    assert.throws(
      () => bytesValue(bad, 'ciphertext'),
      invalid('ciphertext', /'ciphertext'.*not valid base64/),
      bad,
    );
  }
  assert.throws(() => bytesValue(12, 'ciphertext'), invalid('ciphertext', /must be a base64 string/));
});

test('uint32Value: decimal strings or numbers from 0 to 2^32-1', () => {
  assert.equal(uint32Value('0', 'c'), 0);
  assert.equal(uint32Value('4294967295', 'c'), 4294967295);
  assert.equal(uint32Value(123, 'c'), 123);
  assert.equal(uint32Value(undefined, 'c'), undefined);
  for (const bad of ['4294967296', '-1', '1.5', 'abc', '', ' 1', '0x1', 1.5, -1, 2 ** 32, 1e21, true, {}]) {
    assert.throws(
      () => uint32Value(bad as never, 'plaintextCrc32c'),
      invalid('plaintextCrc32c', /0 to 4294967295/),
      String(bad),
    );
  }
});

test('parseBool: true/True/TRUE/1 and false/False/0/""; anything else names the field', () => {
  for (const t of ['true', 'True', 'TRUE', '1']) assert.equal(parseBool(t, 'f'), true);
  for (const f of ['false', 'False', '0', '']) assert.equal(parseBool(f, 'f'), false);
  for (const bad of ['yes', 'no', '2', 't']) {
    assert.throws(
      () => parseBool(bad, 'skipInitialVersionCreation'),
      invalid('skipInitialVersionCreation', /is not a boolean/),
    );
  }
});

test('enumValue: names, numbers and numeric strings; unknown values list the valid names', () => {
  assert.equal(enumValue(CryptoKeyPurpose, 'ENCRYPT_DECRYPT', 'purpose'), 'ENCRYPT_DECRYPT');
  assert.equal(enumValue(CryptoKeyPurpose, 1, 'purpose'), 'ENCRYPT_DECRYPT');
  assert.equal(enumValue(CryptoKeyPurpose, '1', 'purpose'), 'ENCRYPT_DECRYPT');
  assert.equal(enumValue(CryptoKeyPurpose, undefined, 'purpose'), undefined);
  for (const bad of [2, '2', 'encrypt_decrypt', 'toString', '__proto__', true]) {
    assert.throws(
      () => enumValue(CryptoKeyPurpose, bad as never, 'purpose'),
      invalid('purpose', /is not one of .*ENCRYPT_DECRYPT/),
      String(bad),
    );
  }
});

test('durations, timestamps and field masks', () => {
  assert.equal(durationSeconds('86400s', 'd'), 86400);
  assert.throws(() => durationSeconds('86400', 'd'), invalid('d'));
  assert.throws(() => durationSeconds(86400 as never, 'd'), invalid('d'));
  assert.equal(timestampValue('2030-01-01T00:00:00Z', 't')?.toISOString(), '2030-01-01T00:00:00.000Z');
  assert.equal(timestampValue('2030-01-01T01:00:00+01:00', 't')?.toISOString(), '2030-01-01T00:00:00.000Z');
  for (const bad of ['2030-01-01', '2030-13-01T00:00:00Z', 'yesterday'])
    assert.throws(() => timestampValue(bad, 't'), invalid('t'));
  assert.deepEqual(fieldMask('state, version_template.algorithm,,labels'), [
    'state',
    'versionTemplate.algorithm',
    'labels',
  ]);
  assert.deepEqual(fieldMask(null), []);
});
