/**
 * Stage 6, render: the handler's result as the HTTP answer — JSON (enums as numbers when the client asks with
 * `$alt=json;enum-encoding=int`), a rendered page, or any error as the google.rpc envelope.
 */
import type { RpcError } from '../errors.js';
import { enumsByField } from '../resources/types.js';
import { envelope, httpStatus } from './envelope.js';
import { Rendered } from './routes.js';

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** `$alt=json;enum-encoding=int` (the Node client) asks for enums as numbers. */
function wantsIntEnums(q: URLSearchParams): boolean {
  return (q.get('$alt') ?? q.get('alt'))?.includes('enum-encoding=int') === true;
}

function intEnums(value: unknown, field = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => intEnums(v, field));
  if (typeof value === 'string') {
    const table = enumsByField[field];
    return table && Object.hasOwn(table, value) ? table[value] : value;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = intEnums(v, k);
    return out;
  }
  return value;
}

export function renderResult(result: unknown, q: URLSearchParams): ApiResponse {
  if (result instanceof Rendered) {
    return {
      status: 200,
      headers: { 'content-type': result.contentType, ...result.headers },
      body: result.body,
    };
  }
  return {
    status: 200,
    headers: { 'content-type': JSON_TYPE },
    body: JSON.stringify(wantsIntEnums(q) ? intEnums(result) : result),
  };
}

export function renderError(e: RpcError): ApiResponse {
  return {
    status: httpStatus(e.code),
    headers: { 'content-type': JSON_TYPE },
    body: JSON.stringify(envelope(e)),
  };
}
