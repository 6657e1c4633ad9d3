/**
 * Stage 2, check: what can be refused before anyone is identified — the query parameters (each at most once,
 * only those the route's schema names, each decoded) and the body size.
 */
import { RpcError } from '../errors.js';
import { type QueryOf, type QuerySchema, SYSTEM_QUERY } from './query.js';
import type { Route } from './routes.js';

/** The route's query parameters, decoded; refuses repeated, unknown and malformed ones. */
export function checkQuery(q: URLSearchParams, route: Route): QueryOf<QuerySchema> {
  const schema = route.query;
  const out: Record<string, unknown> = {};
  for (const k of new Set(q.keys())) {
    const values = q.getAll(k);
    const name = k.slice(0, 40);
    if (values.length > 1) {
      throw RpcError.invalidArgument(
        `Query parameter "${name}" is given more than once; give it once.`,
        name,
      );
    }
    const decode = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (decode) out[k] = decode(values[0]!, k);
    else if (!SYSTEM_QUERY.has(k)) {
      const accepted = Object.keys(schema);
      throw RpcError.invalidArgument(
        `Unknown query parameter "${name}"${accepted.length ? `; this method accepts ${accepted.join(', ')}` : ''}.`,
        name,
      );
    }
  }
  return out;
}

export function checkBodySize(body: Buffer | undefined, limit: number): void {
  if (body && body.length > limit) {
    throw RpcError.invalidArgument(`The request body is ${body.length} bytes; the limit is ${limit} bytes.`);
  }
}
