/**
 * Time values as the API writes them: RFC 3339 timestamps (google.protobuf.Timestamp in JSON) and protobuf JSON
 * durations ("86400s"). Parsing only, no clock; callers turn `undefined` into their own error message.
 */

/** An instant as google.protobuf.Timestamp holds it: whole seconds since the epoch and 0 ≤ nanos < 10⁹. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 date-time with a time zone (`2030-01-01T00:00:00Z`, `…T01:00:00.5+01:00`; `t` and `z` may be lower
 * case), or undefined when the text is not one. Years are 0001 to 9999 (the range of google.protobuf.Timestamp);
 * impossible dates (February 30, February 29 of a common year), hour 24, leap seconds and offsets beyond ±23:59
 * are refused rather than rolled over. Up to nine fractional digits are kept exactly.
 */
export function parseTimestamp(text: string): Timestamp | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const offsetHours = Number(m[8] === undefined ? 0 : m[9]);
  const offsetMinutes = Number(m[8] === undefined ? 0 : m[10]);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return undefined;
  // Built in year 2000 and then moved to the real year, so that years 0-99 are not taken as 1900-1999.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(year);
  const offsetSeconds = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60;
  return { seconds: date.getTime() / 1000 - offsetSeconds, nanos: Number((m[7] ?? '').padEnd(9, '0')) };
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Nanoseconds since the epoch, exactly. */
export function timestampNanos(t: Timestamp): bigint {
  return BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanos);
}

/** Milliseconds since the epoch, with a fraction for sub-millisecond digits (as close as a double allows). */
export function timestampMillis(t: Timestamp): number {
  return t.seconds * 1000 + t.nanos / 1_000_000;
}

/** The instant as a Date, which holds whole milliseconds: finer digits are dropped (rounded down). */
export function timestampDate(t: Timestamp): Date {
  return new Date(t.seconds * 1000 + Math.floor(t.nanos / 1_000_000));
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/**
 * A protobuf JSON duration ("86400s", "1.5s", "-0.25s": seconds with up to nine fractional digits and the unit
 * "s") as signed nanoseconds, or undefined when the text is not one. Bounds are the caller's to check.
 */
export function parseDuration(text: string): bigint | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const nanos = BigInt(m[2] ?? '0') * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -nanos : nanos;
}
