import type { z } from 'zod';
import type { EkmAdmin } from '../admin/admin.js';
import { decodeProtoBytes } from '../b64.js';
import { DomainError } from '../core/errors.js';
import { classifyReason, reasonLabel, refusal } from '../core/justification.js';
import type { KeyService } from '../core/key-service.js';
import type { RateLimiter } from '../core/rate-limit.js';
import type { RequestContext as HttpContext } from '../http/types.js';
import type { Logger } from '../log.js';
import type { CryptoSpace, KeyRecord } from '../state/types.js';
import type { Caller, TokenVerifier } from './auth.js';
import type { RequestContext } from './types.js';

export interface GoogleEkmDeps {
  keys: KeyService;
  admin: EkmAdmin;
  verifier: TokenVerifier;
  limiter: RateLimiter;
  log: Logger;
  backendModel: string;
}

export const MAX_DATA_BYTES = 64 * 1024;

/** Parses the JSON body against a message schema; an empty body is the empty message. */
export function parseMessage<T extends z.ZodType>(schema: T, ctx: HttpContext): z.infer<T> {
  let json: unknown = {};
  if (ctx.body.length > 0) {
    try {
      json = JSON.parse(ctx.body.toString('utf8'));
    } catch {
      throw new DomainError('INVALID_ARGUMENT', 'the request body is not JSON');
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'body';
    throw new DomainError('INVALID_ARGUMENT', `invalid field ${where}: ${issue?.message ?? 'malformed'}`);
  }
  return parsed.data;
}

export function bytesField(name: string, value: string | undefined, limit = MAX_DATA_BYTES): Buffer {
  if (value === undefined || value === '') return Buffer.alloc(0);
  const bytes = decodeProtoBytes(value);
  if (!bytes) throw new DomainError('INVALID_ARGUMENT', `${name} is not base64`);
  if (bytes.length > limit)
    throw new DomainError('INVALID_ARGUMENT', `${name} is longer than ${limit} bytes`);
  return bytes;
}

/** Token check, then the per-principal rate limit. */
export async function authenticate(ctx: HttpContext, deps: GoogleEkmDeps): Promise<Caller> {
  const caller = await deps.verifier.verify(ctx.req.headers.authorization);
  ctx.fields.principal = caller.principal;
  if (!deps.limiter.take(`google-ekm:${caller.principal}`)) {
    throw new DomainError('THROTTLED', 'too many requests from this principal; retry with backoff');
  }
  return caller;
}

/**
 * keyPath, when sent (EXTERNAL_VPC), must name the key of the URL; a URL inside a crypto space
 * (`v0/cryptospaces/{space}/keys/{keyId}`, where coordinated keys live) must name a key created in that space.
 */
export function checkKeyPath(
  deps: GoogleEkmDeps,
  keyPath: string | undefined,
  keyId: string,
  cryptoSpaceId?: string,
): void {
  const expected = keyPathOf(keyId, cryptoSpaceId);
  if (cryptoSpaceId !== undefined) {
    const key = deps.keys.state.read().keys[keyId];
    if (key?.coordinated?.cryptoSpaceId !== cryptoSpaceId)
      throw new DomainError('KEY_NOT_FOUND', `key ${expected} does not exist at this EKM`);
  }
  if (keyPath === undefined || keyPath === '') return;
  if (keyPath.replace(/^\/+/, '') !== expected) {
    throw new DomainError(
      'INVALID_ARGUMENT',
      `keyPath ${keyPath.slice(0, 200)} does not match the key of the URL (${expected})`,
    );
  }
}

export function recordContext(ctx: HttpContext, context: RequestContext | undefined): void {
  ctx.fields.justification = reasonLabel(classifyReason(context?.accessReasonContext?.reason));
  if (context?.relativeResourceName) ctx.fields.resource = context.relativeResourceName.slice(0, 300);
  if (context?.isKeyHealthCheck) ctx.fields.healthCheck = true;
}

/** The key's justification policy applied to the request's accessReasonContext.reason. */
export function checkJustification(key: KeyRecord, context: RequestContext | undefined): void {
  const why = refusal(key.justifications, classifyReason(context?.accessReasonContext?.reason));
  if (why) throw new DomainError('JUSTIFICATION_REFUSED', why);
}

/** A key's path: `v0/keys/{keyId}`, or inside its crypto space for coordinated keys. */
export function keyPathOf(keyId: string, cryptoSpaceId?: string): string {
  return cryptoSpaceId === undefined ? `v0/keys/${keyId}` : `v0/cryptospaces/${cryptoSpaceId}/keys/${keyId}`;
}

/** The crypto space `cryptoSpaceId`, when one of the caller's principals holds a grant on it. */
export function grantedCryptoSpace(
  deps: GoogleEkmDeps,
  principals: string[],
  cryptoSpaceId: string,
): CryptoSpace {
  const space = deps.keys.state.read().cryptoSpaces[cryptoSpaceId];
  if (!space) {
    throw new DomainError(
      'CRYPTO_SPACE_NOT_FOUND',
      `crypto space ${cryptoSpaceId} does not exist at this EKM`,
    );
  }
  if (!principals.some((p) => space.grants.includes(p))) {
    throw new DomainError('ACCESS_DENIED', `the caller has no grant on crypto space ${cryptoSpaceId}`);
  }
  return space;
}
