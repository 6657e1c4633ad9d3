/**
 * Field decoding of proto3 JSON messages that real clients need: enums as names or numbers, bytes in either base64
 * alphabet, int64 as strings or numbers, booleans as true/True/1, durations, timestamps and field masks. Every
 * failure is INVALID_ARGUMENT naming the field and what a valid value looks like. (Reading the body itself is the
 * HTTP edge's job: shared/api/body.ts.)
 */
import { RpcError } from '../errors.js';
import { parseDuration, parseTimestamp, timestampDate } from '../time.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** snake_case → lowerCamelCase; anything else (camelCase, "__proto__", "_x") is left as sent. */
export function camel(key: string): string {
  return /^[a-z][a-z0-9]*(_[a-z0-9]+)+$/.test(key)
    ? key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
    : key;
}

/** Refuses fields the method does not know, as Google's front end does ("Unknown name"). */
export function allowOnly(obj: JsonObject, allowed: readonly string[], where = ''): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw RpcError.invalidArgument(
        `Invalid JSON payload received. Unknown name "${k}"${where ? ` at '${where}'` : ''}: Cannot find field. Known fields: ${allowed.join(', ')}.`,
        where ? `${where}.${k}` : k,
      );
    }
  }
}

export function optionalObject(obj: JsonObject, field: string, path = field): JsonObject | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw RpcError.invalidArgument(`Field ${path} must be a JSON object.`, path);
  }
  return v;
}

export function optionalString(obj: JsonObject, field: string, path = field): string | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw RpcError.invalidArgument(`Field ${path} must be a string.`, path);
  return v;
}

export function optionalBool(obj: JsonObject, field: string, path = field): boolean | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') return parseBool(v, path);
  throw RpcError.invalidArgument(`Field ${path} must be true or false.`, path);
}

export function parseBool(raw: string, field: string): boolean {
  if (/^(true|1)$/i.test(raw)) return true;
  if (/^(false|0)$/i.test(raw) || raw === '') return false;
  throw RpcError.invalidArgument(
    `${field}="${raw.slice(0, 40)}" is not a boolean: use true or false.`,
    field,
  );
}

/** An enum given by name or number, returned by name. */
export function enumValue<E extends Record<string, number>>(
  table: E,
  raw: Json | undefined,
  field: string,
): keyof E | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') {
    if (Object.hasOwn(table, raw)) return raw as keyof E;
    if (/^[0-9]+$/.test(raw)) return enumValue(table, Number(raw), field);
  } else if (typeof raw === 'number') {
    const name = Object.keys(table).find((k) => table[k] === raw);
    if (name !== undefined) return name as keyof E;
  }
  throw RpcError.invalidArgument(
    `Invalid value at '${field}': ${JSON.stringify(raw).slice(0, 80)} is not one of ${Object.keys(table).join(', ')}.`,
    field,
  );
}

const B64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/** Bytes in standard or URL-safe base64, padded or not. */
export function bytesValue(raw: Json | undefined, field: string): Buffer | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'string')
    throw RpcError.invalidArgument(`Field ${field} must be a base64 string.`, field);
  const s = raw.replace(/\s+/g, '');
  if (!B64.test(s) || s.replace(/=+$/, '').length % 4 === 1) {
    throw RpcError.invalidArgument(
      `Invalid value at '${field}': the value is not valid base64 (standard or URL-safe alphabet).`,
      field,
    );
  }
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** An unsigned 32-bit checksum sent as an int64 (decimal string or number). */
export function uint32Value(raw: Json | undefined, field: string): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  const s = typeof raw === 'number' ? String(raw) : raw;
  if (typeof s !== 'string' || !/^[0-9]{1,10}$/.test(s) || Number(s) > 0xffffffff) {
    throw RpcError.invalidArgument(
      `Invalid value at '${field}': expected a CRC32C checksum, a decimal integer from 0 to 4294967295.`,
      field,
    );
  }
  return Number(s);
}

/**
 * A google.protobuf.Duration in JSON ("86400s", "1.5s"), not negative and under 10¹² seconds, returned in whole
 * seconds (a fraction is dropped).
 */
export function durationSeconds(raw: Json | undefined, field: string): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  const nanos = typeof raw === 'string' && !/^-|^\d{13}/.test(raw) ? parseDuration(raw) : undefined;
  if (nanos === undefined) {
    throw RpcError.invalidArgument(`Invalid value at '${field}': expected a duration like "86400s".`, field);
  }
  return Number(nanos / 1_000_000_000n);
}

/** A google.protobuf.Timestamp in RFC 3339 (see parseTimestamp), as a Date (whole milliseconds). */
export function timestampValue(raw: Json | undefined, field: string): Date | undefined {
  if (raw === undefined || raw === null) return undefined;
  const t = typeof raw === 'string' ? parseTimestamp(raw) : undefined;
  if (t === undefined) {
    throw RpcError.invalidArgument(
      `Invalid value at '${field}': expected an RFC 3339 timestamp like "2030-01-01T00:00:00Z".`,
      field,
    );
  }
  return timestampDate(t);
}

/** A google.protobuf.FieldMask in its query form "a,b.c". */
export function fieldMask(raw: string | null): string[] {
  if (raw === null || raw.trim() === '') return [];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((p) => p.split('.').map(camel).join('.'));
}

/** An update's field mask, which Cloud KMS requires: refuses an empty one, naming the fields that can change. */
export function requireMask(mask: string[], updatable: readonly string[]): string[] {
  if (mask.length === 0) {
    throw RpcError.invalidArgument(
      `updateMask is required: name the fields to change, from ${updatable.join(', ')}.`,
      'updateMask',
    );
  }
  return mask;
}
