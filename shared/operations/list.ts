/**
 * Listing shared by every collection: filter (AIP-160), orderBy (`name` or `name desc`), pageSize with a server
 * cap, an opaque pageToken bound to the filter and order it was made for, and totalSize.
 */
import { createHash } from 'node:crypto';
import { RpcError } from '../errors.js';
import { compileFilter, type Resource } from '../resources/filter/evaluate.js';

export interface ListRequest {
  pageSize?: string | null;
  pageToken?: string | null;
  filter?: string | null;
  orderBy?: string | null;
}

export interface ListLimits {
  listDefaultPageSize: number;
  listMaxPageSize: number;
}

export interface Page<T> {
  items: T[];
  nextPageToken?: string;
  totalSize: number;
}

function parseOrder(orderBy: string | null | undefined): 'asc' | 'desc' {
  const o = (orderBy ?? '').trim().replace(/\s+/g, ' ');
  if (o === '' || o === 'name' || o === 'name asc') return 'asc';
  if (o === 'name desc') return 'desc';
  throw RpcError.invalidArgument(
    `orderBy "${orderBy}" is not supported: use "name" or "name desc".`,
    'orderBy',
  );
}

function parsePageSize(raw: string | null | undefined, limits: ListLimits): number {
  if (raw === undefined || raw === null || raw === '' || raw === '0') return limits.listDefaultPageSize;
  if (!/^[0-9]{1,9}$/.test(raw)) {
    throw RpcError.invalidArgument(`pageSize "${raw}" is invalid: use a positive integer.`, 'pageSize');
  }
  return Math.min(Number(raw), limits.listMaxPageSize);
}

const collator = new Intl.Collator('en', { numeric: true });
/** Name order with numeric segments compared as numbers, so version 10 comes after version 9. */
const byName = (a: string, b: string): number => (a === b ? 0 : collator.compare(a, b) || (a < b ? -1 : 1));

function tokenBinding(filter: string, order: string): string {
  return createHash('sha256').update(`${order}\n${filter}`).digest('base64url').slice(0, 16);
}

function decodeToken(token: string, binding: string): string {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { b?: unknown; a?: unknown };
    if (t.b === binding && typeof t.a === 'string') return t.a;
  } catch {
    // fall through
  }
  throw RpcError.invalidArgument(
    'pageToken is invalid, or was made for a different filter or orderBy; start again without a pageToken.',
    'pageToken',
  );
}

/** Pages through `all` (any order); items are resources in their API JSON shape with a `name`. */
export function paginate<T extends { name: string }>(
  all: T[],
  req: ListRequest,
  limits: ListLimits,
): Page<T> {
  const order = parseOrder(req.orderBy);
  const pageSize = parsePageSize(req.pageSize, limits);
  const filter = req.filter ?? '';
  const predicate = compileFilter(filter);
  const binding = tokenBinding(filter, order);
  const matching = all.filter((r) => predicate(r as unknown as Resource));
  matching.sort((a, b) => byName(a.name, b.name));
  if (order === 'desc') matching.reverse();
  let start = 0;
  if (req.pageToken) {
    const after = decodeToken(req.pageToken, binding);
    start = matching.findIndex((r) =>
      order === 'asc' ? byName(r.name, after) > 0 : byName(r.name, after) < 0,
    );
    if (start < 0) start = matching.length;
  }
  const items = matching.slice(start, start + pageSize);
  const page: Page<T> = { items, totalSize: matching.length };
  if (start + pageSize < matching.length && items.length > 0) {
    page.nextPageToken = Buffer.from(
      JSON.stringify({ b: binding, a: items[items.length - 1]!.name }),
    ).toString('base64url');
  }
  return page;
}
