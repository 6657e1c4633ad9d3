/**
 * The request body as a proto3 JSON message: camelCase or snake_case names, `""` or nothing as the empty message.
 * A malformed body is INVALID_ARGUMENT.
 */
import { RpcError } from '../errors.js';
import { camel, type Json, type JsonObject } from '../resources/fields.js';

const MAX_DEPTH = 16;

/** snake_case → lowerCamelCase for message fields; map values (labels) keep their keys. */
function normalizeKeys(value: Json, depth: number, isMap: boolean): Json {
  if (depth > MAX_DEPTH) throw RpcError.invalidArgument('Invalid JSON payload received: nested too deeply.');
  if (Array.isArray(value)) return value.map((v) => normalizeKeys(v, depth + 1, false));
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) {
    const key = isMap ? k : camel(k);
    // An own property even for "__proto__", so that it is refused by name instead of becoming the prototype.
    const value = normalizeKeys(v, depth + 1, key === 'labels');
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Parses a request body into a JSON object. */
export function parseBody(body: Buffer | undefined): JsonObject {
  if (!body || body.length === 0) return {};
  const text = body.toString('utf8').trim();
  if (text === '' || text === '""') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw RpcError.invalidArgument(
      `Invalid JSON payload received: ${(err as Error).message.replace(/\s+in JSON.*$/, '')}. Send a JSON object.`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw RpcError.invalidArgument('Invalid JSON payload received: the body must be a JSON object.');
  }
  return normalizeKeys(value as Json, 0, false) as JsonObject;
}
