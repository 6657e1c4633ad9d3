/**
 * EXTERNAL_VPC keys and their EKM connection (cryptoKeyBackend), and coordinated keys: on a connection in
 * CLOUD_KMS mode the EKM creates each version's key (PENDING_GENERATION → ENABLED | GENERATION_FAILED) and
 * destroys it when the version's destruction is due (PENDING_EXTERNAL_DESTRUCTION → DESTROYED |
 * EXTERNAL_DESTRUCTION_FAILED). Versions stuck waiting (an instance stopped mid-way) are settled by the
 * scheduled tasks.
 */
import { randomUUID } from 'node:crypto';
import type { Deps, RequestContext } from '../context.js';
import { bindingOf, boundReplicas, requireInsideCryptoSpace } from '../ekm/binding.js';
import { replicaKeys } from '../ekm/connections.js';
import { EkmFailure, ekmHint } from '../ekm/errors.js';
import { systemCall } from '../ekm/protocols.js';
import { RpcError } from '../errors.js';
import type { JsonObject } from '../resources/fields.js';
import { type KeyRingName, locationPath, parseEkmConnectionName } from '../resources/names.js';
import type {
  EkmConfig,
  EkmConnection,
  ProtectionLevelName,
  StoredCryptoKey,
  StoredCryptoKeyVersion,
} from '../resources/types.js';
import { ekmConfigDoc, readConnection, replicasOf } from './ekm-connections.js';
import { newVersion } from './new-version.js';

/** A version waiting this long for an EKM step that no instance is finishing is settled as failed. */
const STUCK_AFTER_MS = 5 * 60_000;

export interface Backend {
  name: string;
  coordinated: boolean;
}

/**
 * The EKM connection a new key uses: cryptoKeyBackend, or the location's default (ekmConfig). Only EXTERNAL_VPC
 * keys have one; it must exist in the key's project and location, and the caller needs
 * cloudkms.ekmConnections.use on it.
 */
export async function connectionBackend(
  deps: Deps,
  ctx: RequestContext,
  ring: KeyRingName,
  level: ProtectionLevelName,
  raw: string | undefined,
): Promise<Backend | undefined> {
  if (level !== 'EXTERNAL_VPC') {
    if (raw) {
      throw RpcError.invalidArgument(
        'cryptoKeyBackend applies only to EXTERNAL_VPC keys: it names their EKM connection.',
        'cryptoKeyBackend',
      );
    }
    return undefined;
  }
  const loc = locationPath(ring);
  let name = raw;
  if (!name) {
    name = (await deps.store.get<EkmConfig & JsonObject>(ekmConfigDoc(loc)))?.defaultEkmConnection;
    if (!name) {
      throw RpcError.invalidArgument(
        `EXTERNAL_VPC keys need cryptoKeyBackend: the name of an EKM connection in ${loc}, or set a defaultEkmConnection in ${loc}/ekmConfig.`,
        'cryptoKeyBackend',
      );
    }
  }
  const c = parseEkmConnectionName(name, 'cryptoKeyBackend');
  if (c.project !== ring.project || c.location !== ring.location) {
    throw RpcError.invalidArgument(
      `cryptoKeyBackend must be an EKM connection in ${loc}, the key's own project and location.`,
      'cryptoKeyBackend',
    );
  }
  // As in Cloud KMS, naming a connection needs cloudkms.ekmConnections.use on it (checked before its existence).
  await ctx.authorize?.('cloudkms.ekmConnections.use', name);
  const conn = await deps.store.get<EkmConnection & JsonObject>(name);
  if (!conn) {
    throw RpcError.invalidArgument(
      `cryptoKeyBackend ${name} does not exist; create the EKM connection first.`,
      'cryptoKeyBackend',
    );
  }
  return { name, coordinated: conn.keyManagementMode === 'CLOUD_KMS' };
}

/** A context for work no caller is waiting on (scheduled tasks), bounded by the request deadline. */
export function systemContext(deps: Deps): RequestContext {
  return {
    caller: { principal: 'openekm-scheduler', issuer: '' },
    requestId: randomUUID(),
    signal: AbortSignal.timeout(deps.config.requestDeadlineMs),
    deadline: deps.now().getTime() + deps.config.requestDeadlineMs,
    reason: 'GOOGLE_INITIATED_SYSTEM_OPERATION',
  };
}

function callContext(ctx: RequestContext, versionName: string) {
  return systemCall(versionName, ctx.caller.principal, ctx.requestId);
}

/**
 * Creates a coordinated version: written PENDING_GENERATION first (so it is never lost), then the EKM's
 * createKey, then ENABLED with the key path the EKM answered — or GENERATION_FAILED with the reason.
 * `makePrimary` (a new key's first version, or a rotation) also makes it the key's primary. `onKey` runs on the
 * key inside the same transaction; when it answers false nothing is written and nothing is created (undefined).
 */
export async function generateCoordinated(
  deps: Deps,
  ctx: RequestContext,
  keyName: string,
  opts: { makePrimary: boolean } = { makePrimary: false },
): Promise<StoredCryptoKeyVersion> {
  const v = await generateCoordinatedIf(deps, ctx, keyName, { ...opts, onKey: () => true });
  if (!v) throw RpcError.internal(new Error('coordinated generation wrote nothing'));
  return v;
}

/** generateCoordinated, unless `onKey` (run on the key inside the first transaction) answers false. */
export async function generateCoordinatedIf(
  deps: Deps,
  ctx: RequestContext,
  keyName: string,
  opts: { makePrimary: boolean; onKey: (key: StoredCryptoKey) => boolean },
): Promise<StoredCryptoKeyVersion | undefined> {
  const key = await deps.store.get<StoredCryptoKey & JsonObject>(keyName);
  if (!key?.cryptoKeyBackend) throw RpcError.notFound(keyName);
  const conn = await readConnection(deps, key.cryptoKeyBackend);
  if (conn.keyManagementMode !== 'CLOUD_KMS' || !conn.cryptoSpacePath) {
    throw RpcError.failedPrecondition(
      `${conn.name} is not in CLOUD_KMS mode: create versions with externalProtectionLevelOptions.ekmConnectionKeyPath.`,
    );
  }
  const pending = await deps.store.transaction(
    async (tx) => {
      const k = await tx.get<StoredCryptoKey & JsonObject>(keyName);
      if (!k) throw RpcError.notFound(keyName);
      const next: StoredCryptoKey = { ...k };
      if (!opts.onKey(next)) return undefined;
      const v = newVersion(deps, next, 'ENABLED', undefined);
      v.state = 'PENDING_GENERATION';
      v.coordinated = true;
      v.pendingSince = deps.now().toISOString();
      delete v.generateTime;
      if (opts.makePrimary) next.primaryVersionId = v.name.slice(v.name.lastIndexOf('/') + 1);
      tx.set(keyName, { ...next });
      tx.create(v.name, { ...v });
      return v;
    },
    { queueOn: keyName },
  );
  deps.cache.invalidate(keyName);
  if (!pending) return undefined;
  let outcome: { keyPath: string } | { failure: EkmFailure };
  const cryptoSpacePath = conn.cryptoSpacePath;
  try {
    const keyPath = await deps.ekm.createKey(
      replicaKeys(replicasOf(deps, conn), ''),
      cryptoSpacePath,
      callContext(ctx, pending.name),
      { signal: ctx.signal, deadline: ctx.deadline },
    );
    // Never trust a key path the EKM answers outside the crypto space it was asked to create the key in.
    requireInsideCryptoSpace(keyPath, cryptoSpacePath);
    outcome = { keyPath };
  } catch (err) {
    outcome = { failure: EkmFailure.from(err) };
    if (ctx.audit) ctx.audit.ekmErrorDomain = outcome.failure.domain;
    deps.log.warn(`EKM createKey failed: ${outcome.failure.domain}`, {
      requestId: ctx.requestId,
      version: pending.name,
      ekmConnection: conn.name,
      errorDomain: outcome.failure.domain,
      detail: outcome.failure.detail.slice(0, 300),
    });
  }
  const settled = await deps.store.transaction(async (tx) => {
    const v = await tx.get<StoredCryptoKeyVersion & JsonObject>(pending.name);
    if (!v) throw RpcError.notFound(pending.name);
    if (v.state !== 'PENDING_GENERATION') return v;
    const { pendingSince: _p, ...rest } = v;
    const next: StoredCryptoKeyVersion =
      'keyPath' in outcome
        ? {
            ...rest,
            state: 'ENABLED',
            generateTime: deps.now().toISOString(),
            externalProtectionLevelOptions: { ekmConnectionKeyPath: outcome.keyPath },
            // Used and destroyed only through the replicas and crypto space that generated it.
            ekmBinding: bindingOf(conn),
          }
        : {
            ...rest,
            state: 'GENERATION_FAILED',
            generationFailureReason: failureReason(outcome.failure, 'create the key'),
          };
    if (!('keyPath' in outcome)) delete next.material;
    tx.set(pending.name, { ...next });
    return next;
  });
  deps.cache.invalidate(pending.name);
  return settled;
}

function failureReason(f: EkmFailure, what: string): string {
  return `The EKM did not ${what}: ${f.domain}. ${ekmHint(f.domain)}`;
}

/**
 * Scheduled: asks the EKM to destroy the keys of versions in PENDING_EXTERNAL_DESTRUCTION, and settles
 * PENDING_GENERATION versions that no instance finished (GENERATION_FAILED).
 */
export async function finishPendingVersions(
  deps: Deps,
  batch = 200,
): Promise<{ externallyDestroyed: string[]; failed: string[] }> {
  const now = deps.now();
  const due = await deps.store.findAtMost<StoredCryptoKeyVersion & JsonObject>(
    'cryptoKeyVersions',
    'pendingSince',
    now.toISOString(),
    batch,
  );
  const externallyDestroyed: string[] = [];
  const failed: string[] = [];
  for (const v of due) {
    if (v.state === 'PENDING_GENERATION') {
      if (Date.parse(v.pendingSince ?? '') > now.getTime() - STUCK_AFTER_MS) continue;
      const done = await settle(deps, v.name, 'PENDING_GENERATION', (cur) => ({
        ...cur,
        state: 'GENERATION_FAILED',
        generationFailureReason:
          'Key generation was interrupted before the EKM answered. The EKM may hold an unused key for this version; create a new version.',
      }));
      if (done) failed.push(v.name);
      continue;
    }
    if (v.state !== 'PENDING_EXTERNAL_DESTRUCTION') continue;
    const ctx = systemContext(deps);
    let failure: EkmFailure | undefined;
    try {
      const keyName = v.name.slice(0, v.name.lastIndexOf('/cryptoKeyVersions/'));
      const key = await deps.store.get<StoredCryptoKey & JsonObject>(keyName);
      const conn = await readConnection(deps, key?.cryptoKeyBackend ?? '');
      const path = v.externalProtectionLevelOptions?.ekmConnectionKeyPath;
      if (path) {
        const replicas = boundReplicas(v.ekmBinding, conn, replicasOf(deps, conn));
        await deps.ekm.destroyKey(replicaKeys(replicas, path), callContext(ctx, v.name), {
          signal: ctx.signal,
          deadline: ctx.deadline,
        });
      }
    } catch (err) {
      failure = EkmFailure.from(err);
      deps.log.warn(`EKM destroyKey failed: ${failure.domain}`, {
        version: v.name,
        errorDomain: failure.domain,
        detail: failure.detail.slice(0, 300),
      });
    }
    const done = await settle(deps, v.name, 'PENDING_EXTERNAL_DESTRUCTION', (cur) =>
      failure
        ? {
            ...cur,
            state: 'EXTERNAL_DESTRUCTION_FAILED',
            externalDestructionFailureReason:
              failure.domain === 'EXTERNAL_KEY_HOST_NOT_WHITELISTED'
                ? `The key was not destroyed: ${failure.detail}. Restore the connection's replicas and crypto space, then destroy the version again.`
                : failureReason(failure, 'destroy the key'),
          }
        : { ...cur, state: 'DESTROYED', destroyEventTime: deps.now().toISOString() },
    );
    if (done) (failure ? failed : externallyDestroyed).push(v.name);
  }
  return { externallyDestroyed, failed };
}

async function settle(
  deps: Deps,
  name: string,
  from: 'PENDING_GENERATION' | 'PENDING_EXTERNAL_DESTRUCTION',
  to: (v: StoredCryptoKeyVersion) => StoredCryptoKeyVersion,
): Promise<boolean> {
  const done = await deps.store.transaction(async (tx) => {
    const v = await tx.get<StoredCryptoKeyVersion & JsonObject>(name);
    if (v?.state !== from) return false;
    const { pendingSince: _p, ...rest } = v;
    tx.set(name, { ...to(rest) });
    return true;
  });
  deps.cache.invalidate(name);
  return done;
}
