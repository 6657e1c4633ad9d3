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

/**
 * What is wrong with a body that is not JSON, in words of our own: the parser's message quotes the body around
 * the error (`..."laintext":U2VjcmV0UG"...`), and a body may hold a plaintext or a secret, which must reach neither
 * the caller's error message nor the request log or audit entry. At most a position is kept.
 */
const PARSE_PROBLEMS: Array<[RegExp, string]> = [
  [/^Unexpected end of JSON input/, 'the body ends too early'],
  [/^Unterminated string/, 'a string is not terminated'],
  [/^Bad control character/, 'a string holds a control character (escape it)'],
  [/^Bad (escaped character|Unicode escape)/, 'a string holds an invalid escape sequence'],
  [/^Expected (double-quoted )?property name/, 'a property name is expected (in double quotes)'],
  [/^Expected ':'/, "a ':' is expected after a property name"],
  [/^Expected ',' or '}'/, "a ',' or '}' is expected after a property value"],
  [/^Expected ',' or ']'/, "a ',' or ']' is expected after an array element"],
  [/^Unexpected non-whitespace character after JSON/, 'there is more after the JSON value'],
  [
    /^(Unexpected token|No number after minus sign|Exponent part is missing|Unterminated fractional)/,
    'an unexpected character',
  ],
];

/** A fixed description of a JSON.parse failure, with the position when the parser gives one. */
function parseProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  const what = PARSE_PROBLEMS.find(([re]) => re.test(message))?.[1] ?? 'the body is not valid JSON';
  const position = /\bat position (\d{1,9})\b/.exec(message)?.[1];
  return `Invalid JSON payload received: ${what}${position === undefined ? '' : ` at position ${position}`}. Send a JSON object.`;
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
    throw RpcError.invalidArgument(parseProblem(err));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw RpcError.invalidArgument('Invalid JSON payload received: the body must be a JSON object.');
  }
  return normalizeKeys(value as Json, 0, false) as JsonObject;
}
