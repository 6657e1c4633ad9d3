/** RFC 3339 timestamps and protobuf JSON durations (shared/time.ts): exact values, bounds and refusals. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  parseDuration,
  parseTimestamp,
  timestampDate,
  timestampMillis,
  timestampNanos,
} from '../../shared/time.js';

const T = Date.parse('2030-01-01T00:00:00Z');

/** Epoch milliseconds (with a fraction) of a timestamp, or undefined when it is not one. */
function millis(text: string): number | undefined {
  const t = parseTimestamp(text);
  return t === undefined ? undefined : timestampMillis(t);
}

test('RFC 3339 timestamps: valid forms parse to the right instant; impossible dates are refused', () => {
  assert.equal(millis('2030-01-01T00:00:00Z'), T);
  assert.equal(millis('2030-01-01t00:00:00z'), T);
  assert.equal(millis('2029-12-31T19:00:00-05:00'), T);
  assert.equal(millis('2030-01-01T00:00:00.5Z'), T + 500);
  assert.equal(millis('2024-02-29T00:00:00Z'), Date.parse('2024-02-29T00:00:00Z'));
  assert.equal(millis('0001-01-01T00:00:00Z'), Date.parse('0001-01-01T00:00:00Z'));
  for (const bad of [
    '2023-02-29T00:00:00Z',
    '2030-02-30T00:00:00Z',
    '2030-13-01T00:00:00Z',
    '2030-01-01T24:00:00Z',
    '2030-01-01T00:60:00Z',
    '2030-01-01 00:00:00Z',
    '2030-01-01T00:00:00',
    '2030-01-01',
    '0000-01-01T00:00:00Z',
  ]) {
    assert.equal(parseTimestamp(bad), undefined, bad);
  }
});

test('timestamps: seconds and nanos as google.protobuf.Timestamp holds them', () => {
  assert.deepEqual(parseTimestamp('1970-01-01T00:00:00Z'), { seconds: 0, nanos: 0 });
  assert.deepEqual(parseTimestamp('2030-01-01T00:00:00.000000001Z'), { seconds: T / 1000, nanos: 1 });
  assert.deepEqual(parseTimestamp('2030-01-01T00:00:00.123456789Z'), {
    seconds: T / 1000,
    nanos: 123_456_789,
  });
  assert.deepEqual(parseTimestamp('2030-01-01T00:00:00.12Z'), { seconds: T / 1000, nanos: 120_000_000 });
  // Before the epoch the seconds go down and the nanos stay positive, as in the proto.
  assert.deepEqual(parseTimestamp('1969-12-31T23:59:59.75Z'), { seconds: -1, nanos: 750_000_000 });
  // Offsets are applied, to the minute, both ways.
  assert.deepEqual(parseTimestamp('2030-01-01T05:30:00+05:30'), { seconds: T / 1000, nanos: 0 });
  assert.deepEqual(parseTimestamp('2029-12-31T23:59:00-00:01'), { seconds: T / 1000, nanos: 0 });
  assert.deepEqual(parseTimestamp('2030-01-01T00:00:00+23:59'), { seconds: T / 1000 - 86_340, nanos: 0 });
});

test('timestamps: the calendar bounds are exact', () => {
  const ok = [
    '9999-12-31T23:59:59.999999999Z',
    '2000-02-29T00:00:00Z', // divisible by 400: a leap year
    '2030-04-30T23:59:59Z',
    '2030-12-31T00:00:00Z',
    '0099-01-01T00:00:00Z', // not taken as 1999
  ];
  for (const text of ok) assert.notEqual(parseTimestamp(text), undefined, text);
  assert.equal(timestampDate(parseTimestamp('0099-01-01T00:00:00Z')!).getUTCFullYear(), 99);
  const bad = [
    '1900-02-29T00:00:00Z', // divisible by 100, not 400: a common year
    '2030-04-31T00:00:00Z',
    '2030-01-32T00:00:00Z',
    '2030-00-01T00:00:00Z',
    '2030-01-00T00:00:00Z',
    '2030-01-01T23:59:60Z', // leap seconds are not kept
    '2030-01-01T00:00:00+24:00',
    '2030-01-01T00:00:00+00:60',
    '2030-01-01T00:00:00.1234567890Z', // ten fractional digits
    '2030-01-01T00:00:00.Z',
    '2030-1-01T00:00:00Z',
    '12030-01-01T00:00:00Z',
    '2030-01-01T00:00:00+0100',
    ' 2030-01-01T00:00:00Z',
    '2030-01-01T00:00:00Z ',
    '',
  ];
  for (const text of bad) assert.equal(parseTimestamp(text), undefined, text);
});

test('timestamps as nanoseconds, milliseconds and Dates', () => {
  const t = parseTimestamp('2030-01-01T00:00:00.123456789Z')!;
  assert.equal(timestampNanos(t), BigInt(T) * 1_000_000n + 123_456_789n);
  assert.equal(timestampMillis(t), T + 123.456789);
  // A Date holds whole milliseconds: finer digits are dropped, also before the epoch (as Date.parse does).
  assert.equal(timestampDate(t).getTime(), T + 123);
  assert.equal(timestampDate(parseTimestamp('1969-12-31T23:59:59.9995Z')!).getTime(), -1);
  assert.equal(timestampNanos(parseTimestamp('1969-12-31T23:59:59.9995Z')!), -500_000n);
  // Two spellings of one instant are equal to the nanosecond.
  assert.equal(
    timestampNanos(parseTimestamp('2030-01-01T01:00:00.000000007+01:00')!),
    timestampNanos(parseTimestamp('2030-01-01T00:00:00.000000007Z')!),
  );
});

test('durations: signed nanoseconds; anything else is not one', () => {
  assert.equal(parseDuration('86400s'), 86_400_000_000_000n);
  assert.equal(parseDuration('1.5s'), 1_500_000_000n);
  assert.equal(parseDuration('0.000000001s'), 1n);
  assert.equal(parseDuration('-0.25s'), -250_000_000n);
  assert.equal(parseDuration('0s'), 0n);
  for (const bad of ['86400', '1.s', '.5s', '1.0000000001s', '1m', '+1s', '1 s', 's', '', '1e3s']) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});
