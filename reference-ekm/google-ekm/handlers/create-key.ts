import { randomBytes } from 'node:crypto';
import { AdminError, parseUsage } from '../../admin/admin.js';
import { DomainError } from '../../core/errors.js';
import type { Reply, RequestContext } from '../../http/types.js';
import { KEY_ID_PATTERN } from '../../state/types.js';
import {
  authenticate,
  type GoogleEkmDeps,
  grantedCryptoSpace,
  keyPathOf,
  parseMessage,
  recordContext,
} from '../common.js';
import { CreateKeyRequest, type CreateKeyResponse } from '../types.js';

/**
 * POST {base}/v0/cryptospaces/{id}:createKey — coordinated keys. Creates an AES-256 key in the crypto
 * space for the caller (who must hold a grant on the space). Idempotent per
 * additionalContext.relativeResourceName: a retry for the same CryptoKeyVersion returns the same key.
 */
export async function createKey(
  ctx: RequestContext,
  deps: GoogleEkmDeps,
  cryptoSpaceId: string,
): Promise<Reply> {
  const caller = await authenticate(ctx, deps);
  const request = parseMessage(CreateKeyRequest, ctx);
  recordContext(ctx, request.additionalContext);
  grantedCryptoSpace(deps, caller.principals, cryptoSpaceId);
  const resource = request.additionalContext?.relativeResourceName ?? '';
  if (resource) {
    const existing = Object.values(deps.keys.state.read().keys).find(
      (k) =>
        k.status !== 'DESTROYED' &&
        k.coordinated?.cryptoSpaceId === cryptoSpaceId &&
        k.coordinated.relativeResourceName === resource,
    );
    if (existing) return created(ctx, existing.keyId, cryptoSpaceId, existing.createTime);
  }
  let usage: ReturnType<typeof parseUsage> | undefined;
  try {
    usage = request.keyUsage ? parseUsage(request.keyUsage.join(',')) : undefined;
  } catch (error) {
    throw new DomainError('INVALID_ARGUMENT', (error as Error).message);
  }
  const keyId = request.keyId ?? `${cryptoSpaceId}-${randomBytes(8).toString('hex')}`.slice(-128);
  if (!KEY_ID_PATTERN.test(keyId))
    throw new DomainError('INVALID_ARGUMENT', 'keyId must be 1-128 of [A-Za-z0-9._-]');
  ctx.fields.keyId = keyId;
  try {
    const key = await deps.admin.createKey(keyId, usage, {
      grants: [caller.principal],
      coordinated: { cryptoSpaceId, relativeResourceName: resource, createdBy: caller.principal },
    });
    return created(ctx, key.keyId, cryptoSpaceId, key.createTime);
  } catch (error) {
    if (error instanceof AdminError) throw new DomainError('ALREADY_EXISTS', error.message);
    throw error;
  }
}

/** The new key's path lies inside its crypto space, so a KMS can check that the answer is where it asked. */
function created(ctx: RequestContext, keyId: string, cryptoSpaceId: string, createTime: string): Reply {
  const response: CreateKeyResponse = {
    keyPath: keyPathOf(keyId, cryptoSpaceId),
    keyUri: `${ctx.origin}/${keyPathOf(keyId, cryptoSpaceId)}`,
    createTime,
  };
  return { status: 200, body: response, outcome: 'OK' };
}
