/**
 * Shared pieces of the EXTERNAL key tests: a key ring, EXTERNAL keys with one version, the exact shape of an EKM
 * error (FAILED_PRECONDITION with two PreconditionFailure violations), and the reference EKM's request log lines.
 */
import assert from 'node:assert/strict';
import type { TestStack } from '../helpers/stack.js';

export const b64 = (t: string | Buffer) => (typeof t === 'string' ? Buffer.from(t) : t).toString('base64');

export const BLAND =
  'Decryption failed: the ciphertext is invalid, or it was not produced by this key with this additional authenticated data.';

export async function keyRing(s: TestStack, id: string): Promise<string> {
  const res = await s.call(
    'POST',
    `/v1/projects/${s.project}/locations/us-east1/keyRings?keyRingId=${id}`,
    {},
  );
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return `/v1/projects/${s.project}/locations/us-east1/keyRings/${id}`;
}

/** Resource name (no /v1/) of a path under /v1/. */
export const nameOf = (path: string) => path.replace(/^\/v1\//, '');

export async function externalCryptoKey(
  s: TestStack,
  ring: string,
  id: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const key = await s.call('POST', `${ring}/cryptoKeys?cryptoKeyId=${id}&skipInitialVersionCreation=true`, {
    purpose: 'ENCRYPT_DECRYPT',
    versionTemplate: { protectionLevel: 'EXTERNAL', algorithm: 'EXTERNAL_SYMMETRIC_ENCRYPTION' },
    ...extra,
  });
  assert.equal(key.status, 200, JSON.stringify(key.json));
  return `${ring}/cryptoKeys/${id}`;
}

export async function addVersion(
  s: TestStack,
  keyPath: string,
  uri: string,
  primary = true,
): Promise<string> {
  const v = await s.call('POST', `${keyPath}/cryptoKeyVersions`, {
    externalProtectionLevelOptions: { externalKeyUri: uri },
  });
  assert.equal(v.status, 200, JSON.stringify(v.json));
  const name = v.json.name as string;
  if (primary) {
    const p = await s.call('POST', `${keyPath}:updatePrimaryVersion`, {
      cryptoKeyVersionId: name.slice(name.lastIndexOf('/') + 1),
    });
    assert.equal(p.status, 200, JSON.stringify(p.json));
  }
  return name;
}

/** An EXTERNAL key with version 1 (primary) on `uri`; returns the key path and the version name. */
export async function externalKey(
  s: TestStack,
  ring: string,
  id: string,
  uri: string,
  extra: Record<string, unknown> = {},
): Promise<{ key: string; version: string }> {
  const key = await externalCryptoKey(s, ring, id, extra);
  return { key, version: await addVersion(s, key, uri) };
}

/** The exact answer to a failed EKM hop: FAILED_PRECONDITION, the version's state, then the domain. */
export function assertEkmError(
  res: { status: number; json: any },
  domain: string,
  subject: string,
  keyUri: string,
): void {
  const dump = JSON.stringify(res.json);
  assert.equal(res.status, 400, dump);
  assert.equal(res.json.error.code, 400, dump);
  assert.equal(res.json.error.status, 'FAILED_PRECONDITION', dump);
  assert.ok(res.json.error.message.includes(keyUri), `the message names the key URI: ${dump}`);
  assert.ok(res.json.error.message.includes(domain), `the message names the domain: ${dump}`);
  assert.equal(res.json.error.details.length, 1, dump);
  const detail = res.json.error.details[0];
  assert.equal(detail['@type'], 'type.googleapis.com/google.rpc.PreconditionFailure', dump);
  assert.equal(detail.violations.length, 2, dump);
  assert.equal(detail.violations[0].type, 'STATE', dump);
  assert.equal(detail.violations[0].subject, subject, dump);
  assert.equal(detail.violations[1].type, domain, dump);
  assert.equal(detail.violations[1].subject, keyUri, dump);
  assert.ok(detail.violations[1].description.length > 20, dump);
}

/** The bland INVALID_ARGUMENT every undecryptable ciphertext gets. */
export function assertBland(res: { status: number; json: any }): void {
  const dump = JSON.stringify(res.json);
  assert.equal(res.status, 400, dump);
  assert.equal(res.json.error.status, 'INVALID_ARGUMENT', dump);
  assert.equal(res.json.error.message, BLAND, dump);
}

export interface EkmLine {
  msg: string;
  protocol: string;
  operation: string;
  keyId?: string;
  outcome: string;
  status: number;
  [field: string]: unknown;
}

/** The reference EKM's request lines, optionally only those for `keyId`. */
export function ekmRequests(s: TestStack, keyId?: string): EkmLine[] {
  return s.ekmLogs
    .map((l) => JSON.parse(l) as EkmLine)
    .filter((l) => l.msg === 'request' && (keyId === undefined || l.keyId === keyId));
}

/** Counts the EKM request lines for `keyId` that `work` adds. */
export async function ekmCallsDuring(
  s: TestStack,
  keyId: string,
  work: () => Promise<unknown>,
): Promise<{ calls: EkmLine[] }> {
  const before = ekmRequests(s, keyId).length;
  await work();
  return { calls: ekmRequests(s, keyId).slice(before) };
}

export function gatewayLines(s: TestStack): Array<Record<string, any>> {
  return s.logs.map((l) => JSON.parse(l) as Record<string, any>);
}

export async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
