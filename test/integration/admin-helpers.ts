/** Small assertions shared by the key-administration integration tests. */
import assert from 'node:assert/strict';
import type { TestStack } from '../helpers/stack.js';

export type CallResult = Awaited<ReturnType<TestStack['call']>>;

/**
 * Asserts a google.rpc.Status envelope: HTTP status, `error.code` equal to it, the canonical `status` name, and a
 * message containing every given fragment (strings case-sensitively, or regular expressions).
 */
export function assertError(
  res: CallResult,
  http: number,
  status: string,
  ...message: (string | RegExp)[]
): void {
  const dump = JSON.stringify(res.json);
  assert.equal(res.status, http, `expected HTTP ${http}, got ${res.status}: ${dump}`);
  assert.ok(res.json && typeof res.json.error === 'object', `not a google.rpc envelope: ${dump}`);
  assert.equal(res.json.error.code, http, dump);
  assert.equal(res.json.error.status, status, dump);
  assert.equal(typeof res.json.error.message, 'string', dump);
  for (const m of message) {
    if (typeof m === 'string') assert.ok(res.json.error.message.includes(m), `message lacks "${m}": ${dump}`);
    else assert.match(res.json.error.message, m, dump);
  }
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
}

/** Asserts a 200 and returns the JSON body. */
export function ok(res: CallResult): any {
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${JSON.stringify(res.json)}`);
  return res.json;
}

/** The BadRequest field violation's field, if any. */
export function violationField(res: CallResult): string | undefined {
  const d = (res.json?.error?.details ?? []) as { '@type': string; fieldViolations?: { field: string }[] }[];
  return d.find((x) => x['@type'].endsWith('google.rpc.BadRequest'))?.fieldViolations?.[0]?.field;
}

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const tokenCache = new WeakMap<TestStack, Map<string, string>>();

/** The stack's local token for `principal`, minted once per stack. */
export async function tokenFor(s: TestStack, principal: string): Promise<string> {
  const tokens = tokenCache.get(s) ?? new Map<string, string>();
  tokenCache.set(s, tokens);
  const token = tokens.get(principal) ?? (await s.token(principal));
  tokens.set(principal, token);
  return token;
}

/** One request to the stack as `principal`. */
export async function callAs(s: TestStack, principal: string, method: string, path: string, body?: unknown) {
  return s.call(method, path, body, { token: await tokenFor(s, principal) });
}

/** Asserts the PERMISSION_DENIED that never says whether `resource` (a /v1/ path or a name) exists. */
export function assertDenied(res: CallResult, permission: string, resource: string): void {
  assertError(
    res,
    403,
    'PERMISSION_DENIED',
    `Permission '${permission}' denied on resource '${resource.replace(/^\/v1\//, '')}' (or it may not exist).`,
  );
}

export const ADMIN = 'user:admin@example.com';

/** A key ring and ENCRYPT_DECRYPT key whose policy makes ADMIN its roles/cloudkms.admin; the key's URL path. */
export async function keyWithAdmin(s: TestStack, ring: string): Promise<string> {
  const loc = `/v1/projects/${s.project}/locations/us-east1`;
  ok(await s.call('POST', `${loc}/keyRings?keyRingId=${ring}`, {}));
  const key = `${loc}/keyRings/${ring}/cryptoKeys/k`;
  ok(
    await s.call('POST', `${loc}/keyRings/${ring}/cryptoKeys?cryptoKeyId=k`, { purpose: 'ENCRYPT_DECRYPT' }),
  );
  ok(
    await s.call('POST', `${key}:setIamPolicy`, {
      policy: { bindings: [{ role: 'roles/cloudkms.admin', members: [ADMIN] }] },
    }),
  );
  return key;
}

/** setIamPolicy as `as`, with the current etag. */
export async function grant(s: TestStack, key: string, as: string, bindings: unknown[]) {
  const token = await tokenFor(s, as);
  const current = ok(await s.call('GET', `${key}:getIamPolicy`, undefined, { token }));
  return s.call('POST', `${key}:setIamPolicy`, { policy: { bindings, etag: current.etag } }, { token });
}
