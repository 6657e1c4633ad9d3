/**
 * The EKM hop of EXTERNAL versions: the key-protection functions the ciphertext layer calls (wrap on encrypt,
 * unwrap on decrypt — on every request, nothing cached), the synchronous key check when a version is created or
 * its URI changes, and the mapping of EKM failures to the caller's error. When the EKM refuses OpenEKM's identity
 * or grant, the version is disabled, as Cloud EKM does.
 */
import { createHash } from 'node:crypto';
import type { Deps, RequestContext } from '../context.js';
import { boundReplicas } from '../ekm/binding.js';
import type { KeyTarget } from '../ekm/client.js';
import { replicaKeys } from '../ekm/connections.js';
import { EkmFailure, ekmError } from '../ekm/errors.js';
import type { EkmCallContext } from '../ekm/protocols.js';
import { RpcError } from '../errors.js';
import type { JsonObject } from '../resources/fields.js';
import { cryptoKeyOfVersion } from '../resources/names.js';
import type { StoredCryptoKey, StoredCryptoKeyVersion } from '../resources/types.js';
import { readConnection, replicasOf } from './ekm-connections.js';

/**
 * The AAD the EKM binds into its layer: SHA-256 of the version's resource name and the caller's AAD (length-
 * prefixed), so a blob moved to another version or AAD fails at the EKM too, and 64 KiB AADs fit XKS's 8 KiB
 * limit.
 */
export function ekmAad(versionName: string, aad: Buffer): Buffer {
  const name = Buffer.from(versionName, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(name.length, 0);
  return createHash('sha256').update('openekm/ekm-aad/v1\0').update(len).update(name).update(aad).digest();
}

function callContext(ctx: RequestContext, versionName: string, aad: Buffer): EkmCallContext {
  return {
    versionName,
    reason: ctx.reason,
    principal: ctx.caller.principal,
    requestId: ctx.requestId,
    aad: ekmAad(versionName, aad),
  };
}

/** The EKM's own words go to the log (never to the caller): what operators need to fix the EKM side. */
function logFailure(
  deps: Deps,
  ctx: RequestContext,
  versionName: string,
  keyUri: string,
  failure: EkmFailure,
): void {
  deps.log.warn(`EKM call failed: ${failure.domain}`, {
    requestId: ctx.requestId,
    version: versionName,
    keyUri,
    errorDomain: failure.domain,
    detail: failure.detail.slice(0, 300),
  });
}

/** How errors and logs name the version's external key: its URI, or its key path on its EKM connection. */
function externalKeyUriOf(version: StoredCryptoKeyVersion): string {
  const o = version.externalProtectionLevelOptions;
  return (
    o?.externalKeyUri ?? (o?.ekmConnectionKeyPath ? `ekmConnectionKeyPath ${o.ekmConnectionKeyPath}` : '')
  );
}

/**
 * Where the version's external key is: its URI (EXTERNAL), or its key path on every replica of the key's EKM
 * connection (EXTERNAL_VPC; key and connection read through the metadata cache).
 */
async function ekmTargetOf(deps: Deps, version: StoredCryptoKeyVersion): Promise<KeyTarget> {
  if (version.protectionLevel !== 'EXTERNAL_VPC') return externalKeyUriOf(version);
  const path = version.externalProtectionLevelOptions?.ekmConnectionKeyPath;
  if (!path) throw RpcError.failedPrecondition(`${version.name} has no ekmConnectionKeyPath yet.`);
  try {
    return replicaKeys(
      await connectionReplicas(deps, cryptoKeyOfVersion(version.name), version.ekmBinding),
      path,
    );
  } catch (err) {
    if (!(err instanceof EkmFailure)) throw err;
    throw ekmError(err, externalKeyUriOf(version), version.name, version.state);
  }
}

/**
 * The replicas of the EKM connection behind an EXTERNAL_VPC key; for a coordinated version, only those it is
 * bound to (ekm/binding.ts: EkmFailure when none is left).
 */
export async function connectionReplicas(
  deps: Deps,
  keyName: string,
  binding?: StoredCryptoKeyVersion['ekmBinding'],
) {
  const key = await deps.cache.get<StoredCryptoKey & JsonObject>(keyName);
  if (!key?.cryptoKeyBackend) {
    throw RpcError.failedPrecondition(`${keyName} has no EKM connection (cryptoKeyBackend).`);
  }
  const conn = await readConnection(deps, key.cryptoKeyBackend, true);
  return boundReplicas(binding, conn, replicasOf(deps, conn));
}

/**
 * Disables the version after the EKM refused our identity, as Cloud EKM does; logged, never fatal to the
 * request's answer. Returns the version's state afterwards, for the caller's error.
 */
async function disableAfterRefusal(
  deps: Deps,
  version: StoredCryptoKeyVersion,
  failure: EkmFailure,
): Promise<string> {
  try {
    const state = await deps.store.transaction(async (tx) => {
      const v = await tx.get<StoredCryptoKeyVersion & Record<string, unknown>>(version.name);
      if (v?.state !== 'ENABLED') return v?.state ?? version.state;
      tx.set(version.name, { ...v, state: 'DISABLED' });
      return 'DISABLED (disabled now, because the EKM refused OpenEKM)';
    });
    deps.cache.invalidate(version.name);
    if (state.startsWith('DISABLED (')) {
      deps.log.warn(
        `Disabled ${version.name}: the external key manager refused OpenEKM (${failure.domain}). Restore access at the EKM, then enable the version.`,
        { version: version.name, errorDomain: failure.domain },
      );
    }
    return state;
  } catch (err) {
    // The caller still gets the EKM error; the next refusal tries again.
    deps.log.error(`Could not disable ${version.name} after the external key manager refused OpenEKM.`, {
      version: version.name,
      errorDomain: failure.domain,
      cause: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
    return version.state;
  }
}

async function fail(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  err: unknown,
): Promise<RpcError> {
  const failure = EkmFailure.from(err);
  if (ctx.audit) ctx.audit.ekmErrorDomain = failure.domain;
  logFailure(deps, ctx, version.name, externalKeyUriOf(version), failure);
  const state =
    failure.domain === 'EXTERNAL_PERMISSION_DENIED' && failure.identityRefused
      ? await disableAfterRefusal(deps, version, failure)
      : version.state;
  return ekmError(failure, externalKeyUriOf(version), version.name, state);
}

/** Notes for the audit entry that the request's access reason goes to the EKM. */
function sendsReason(ctx: RequestContext): void {
  if (ctx.audit?.justification) ctx.audit.justification.reasonSentToEkm = true;
}

/**
 * protectKey / unprotectKey for the ciphertext layer: one EKM call each, every time, after one unit of the
 * project's EKM quota (RESOURCE_EXHAUSTED before the EKM is called when it is used up).
 */
export function ekmKeyProtection(
  deps: Deps,
  ctx: RequestContext,
  version: StoredCryptoKeyVersion,
  aad: Buffer,
) {
  const call = callContext(ctx, version.name, aad);
  const opts = { signal: ctx.signal, deadline: ctx.deadline };
  return {
    protectKey: async (sealedDek: Buffer) => {
      const target = await ekmTargetOf(deps, version);
      await deps.quota.take(version.name);
      sendsReason(ctx);
      try {
        return await deps.ekm.wrap(target, sealedDek, call, opts);
      } catch (err) {
        throw await fail(deps, ctx, version, err);
      }
    },
    unprotectKey: async (block: Buffer) => {
      const target = await ekmTargetOf(deps, version);
      await deps.quota.take(version.name);
      sendsReason(ctx);
      try {
        return await deps.ekm.unwrap(target, block, call, opts);
      } catch (err) {
        throw await fail(deps, ctx, version, err);
      }
    },
  };
}

/**
 * Checks an external key before a version uses it (create, or a new URI): Google EKM gets a wrap marked
 * isKeyHealthCheck, XKS a metadata call requiring ENCRYPT, DECRYPT and ENABLED. Throws the caller's error.
 */
export async function checkExternalKey(
  deps: Deps,
  ctx: RequestContext,
  target: KeyTarget,
  versionName: string,
  state: string,
): Promise<void> {
  const uri = typeof target === 'string' ? target : `ekmConnectionKeyPath ${target[0]?.keyPath ?? ''}`;
  try {
    await deps.ekm.checkKey(
      target,
      {
        ...callContext(ctx, versionName, Buffer.alloc(0)),
        reason: 'GOOGLE_INITIATED_SYSTEM_OPERATION',
        healthCheck: true,
      },
      { signal: ctx.signal, deadline: ctx.deadline },
    );
  } catch (err) {
    const failure = EkmFailure.from(err);
    if (ctx.audit) ctx.audit.ekmErrorDomain = failure.domain;
    logFailure(deps, ctx, versionName, uri, failure);
    throw ekmError(failure, uri, versionName, state);
  }
}
