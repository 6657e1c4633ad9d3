/** Field rules of Cloud KMS resources, each failure an INVALID_ARGUMENT naming the field and the rule. */
import { isIP } from 'node:net';
import { RpcError } from '../errors.js';
import type { Json, JsonObject } from './fields.js';

const LABEL_KEY = /^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u;
const LABEL_VALUE = /^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u;

const DAY_SECONDS = 86_400;
export const MIN_DESTROY_SCHEDULED_SECONDS = DAY_SECONDS;
export const MAX_DESTROY_SCHEDULED_SECONDS = 120 * DAY_SECONDS;
export const DEFAULT_DESTROY_SCHEDULED_SECONDS = 30 * DAY_SECONDS;
export const MIN_ROTATION_SECONDS = DAY_SECONDS;
export const MAX_ROTATION_SECONDS = 876_000 * 3600;

export function labels(raw: Json | undefined, field = 'labels'): Record<string, string> | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw RpcError.invalidArgument(`${field} must be a map of strings.`, field);
  }
  const out: Record<string, string> = {};
  const entries = Object.entries(raw as JsonObject);
  if (entries.length > 64) throw RpcError.invalidArgument(`${field} may hold at most 64 labels.`, field);
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k)) {
      throw RpcError.invalidArgument(
        `Label key "${k}" is invalid: start with a lowercase letter; use up to 63 lowercase letters, digits, "_" or "-".`,
        `${field}.${k}`,
      );
    }
    if (typeof v !== 'string' || !LABEL_VALUE.test(v)) {
      throw RpcError.invalidArgument(
        `Label value of "${k}" is invalid: use up to 63 lowercase letters, digits, "_" or "-".`,
        `${field}.${k}`,
      );
    }
    out[k] = v;
  }
  return out;
}

export function durationString(seconds: number): string {
  return `${seconds}s`;
}

export function parseDurationString(d: string): number {
  return Number(d.replace(/s$/, ''));
}

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1';
}

/**
 * An external key URI: https, a host, a path to the key, no credentials, query or fragment. Plain http is
 * accepted only for loopback hosts and only where the operator allows it (the local stack).
 */
export function externalKeyUri(raw: string | undefined, allowLoopbackHttp: boolean, field: string): string {
  if (!raw) {
    throw RpcError.invalidArgument(
      `${field} is required for EXTERNAL keys: give the key's URI at your external key manager, e.g. https://ekm.example.com/v0/keys/my-key.`,
      field,
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw RpcError.invalidArgument(`${field} "${raw.slice(0, 200)}" is not a valid URI.`, field);
  }
  const httpOk = url.protocol === 'http:' && allowLoopbackHttp && isLoopback(url.hostname);
  if (url.protocol !== 'https:' && !httpOk) {
    throw RpcError.invalidArgument(
      `${field} must be an https URI${allowLoopbackHttp ? ' (http is accepted for loopback hosts only)' : ''}.`,
      field,
    );
  }
  if (url.username || url.password || url.search || url.hash || url.pathname === '/' || raw.length > 2048) {
    throw RpcError.invalidArgument(
      `${field} must name a key path and carry no credentials, query or fragment (at most 2048 characters).`,
      field,
    );
  }
  return raw;
}
