/** cryptoKeyVersions.create / get / list / patch / destroy / restore, and finishing due destructions. */

import type { Deps, RequestContext } from '../context.js';
import { generateMaterial } from '../crypto/algorithms.js';
import { replicaKeys } from '../ekm/connections.js';
import { RpcError } from '../errors.js';
import {
  allowOnly,
  enumValue,
  type JsonObject,
  optionalObject,
  optionalString,
  requireMask,
} from '../resources/fields.js';
import { cryptoKeyOfVersion, parseCryptoKeyName, parseCryptoKeyVersionName } from '../resources/names.js';
import {
  type CryptoKeyVersion,
  CryptoKeyVersionState,
  type ExternalProtectionLevelOptions,
  type StateName,
  type StoredCryptoKey,
  type StoredCryptoKeyVersion,
} from '../resources/types.js';
import { externalKeyUri, parseDurationString } from '../resources/validate.js';
import {
  asOf,
  destroyed,
  isDueForDestruction,
  requireTransition,
  toApiVersion,
} from '../resources/versions.js';
import { generateCoordinated } from './coordinated.js';
import { readConnection } from './ekm-connections.js';
import { checkExternalKey, connectionReplicas } from './external.js';
import { destroyHsmKey, withNewHsmKey } from './hsm-keys.js';
import { type ListRequest, type Page, paginate } from './list.js';
import { newVersion } from './new-version.js';

const VERSION_FIELDS = [
  'name',
  'state',
  'protectionLevel',
  'attestation',
  'algorithm',
  'createTime',
  'generateTime',
  'destroyTime',
  'destroyEventTime',
  'importJob',
  'importTime',
  'importFailureReason',
  'generationFailureReason',
  'externalDestructionFailureReason',
  'externalProtectionLevelOptions',
  'reimportEligible',
];

function externalOptions(
  deps: Deps,
  key: StoredCryptoKey,
  raw: JsonObject | undefined,
  path: string,
): ExternalProtectionLevelOptions | undefined {
  const level = key.versionTemplate.protectionLevel;
  if (level === 'EXTERNAL_VPC') {
    const opts = raw ?? {};
    allowOnly(opts, ['externalKeyUri', 'ekmConnectionKeyPath'], path);
    if (optionalString(opts, 'externalKeyUri', `${path}.externalKeyUri`)) {
      throw RpcError.invalidArgument(
        `${path}.externalKeyUri is for EXTERNAL keys; EXTERNAL_VPC keys take ${path}.ekmConnectionKeyPath.`,
        `${path}.externalKeyUri`,
      );
    }
    const keyPath = optionalString(opts, 'ekmConnectionKeyPath', `${path}.ekmConnectionKeyPath`);
    if (
      !keyPath ||
      !/^[A-Za-z0-9._~\-/]{1,512}$/.test(keyPath) ||
      keyPath.includes('..') ||
      keyPath.startsWith('/')
    ) {
      throw RpcError.invalidArgument(
        `${path}.ekmConnectionKeyPath is required for EXTERNAL_VPC keys: the key's path on the EKM, e.g. "v0/keys/my-key".`,
        `${path}.ekmConnectionKeyPath`,
      );
    }
    return { ekmConnectionKeyPath: keyPath };
  }
  if (level !== 'EXTERNAL') {
    if (raw && Object.keys(raw).length > 0) {
      throw RpcError.invalidArgument(
        `${path} applies only to EXTERNAL keys; ${key.name} has protection level ${level}.`,
        path,
      );
    }
    return undefined;
  }
  const opts = raw ?? {};
  allowOnly(opts, ['externalKeyUri', 'ekmConnectionKeyPath'], path);
  if (optionalString(opts, 'ekmConnectionKeyPath', `${path}.ekmConnectionKeyPath`)) {
    throw RpcError.invalidArgument(
      `${path}.ekmConnectionKeyPath is for EXTERNAL_VPC keys; EXTERNAL keys take ${path}.externalKeyUri.`,
      `${path}.ekmConnectionKeyPath`,
    );
  }
  const uri = externalKeyUri(
    optionalString(opts, 'externalKeyUri', `${path}.externalKeyUri`),
    deps.config.allowLoopbackHttpEkm,
    `${path}.externalKeyUri`,
  );
  return { externalKeyUri: uri };
}

/**
 * The key material of a new version of a key of any purpose but ENCRYPT_DECRYPT, generated outside any
 * transaction (an RSA key pair takes a while); undefined for ENCRYPT_DECRYPT keys, whose material newVersion makes.
 */
export async function materialFor(key: StoredCryptoKey): Promise<Buffer | undefined> {
  // HSM versions get their key in the token instead (operations/hsm-keys.ts).
  if (key.purpose === 'ENCRYPT_DECRYPT' || key.versionTemplate.protectionLevel === 'HSM') return undefined;
  return generateMaterial(key.versionTemplate.algorithm);
}

function importOnlyRefusal(parent: string): RpcError {
  return RpcError.failedPrecondition(
    `${parent} is import-only: its versions can only be imported (cryptoKeyVersions.import with an import job), not created.`,
    [
      {
        type: 'IMPORT_ONLY',
        subject: parent,
        description: 'The key was created with importOnly=true.',
      },
    ],
  );
}

function initialState(body: JsonObject): 'ENABLED' | 'DISABLED' {
  const s = enumValue(CryptoKeyVersionState, body.state, 'state');
  if (s === undefined || s === 'CRYPTO_KEY_VERSION_STATE_UNSPECIFIED' || s === 'ENABLED') return 'ENABLED';
  if (s === 'DISABLED') return 'DISABLED';
  throw RpcError.invalidArgument(`A new version can start ENABLED or DISABLED, not ${s}.`, 'state');
}

export async function createCryptoKeyVersion(
  deps: Deps,
  ctx: RequestContext,
  parent: string,
  body: JsonObject,
): Promise<CryptoKeyVersion> {
  parseCryptoKeyName(parent, 'parent');
  allowOnly(body, VERSION_FIELDS);
  const state = initialState(body);
  const rawExternal = optionalObject(body, 'externalProtectionLevelOptions');
  // An external key is checked at its EKM before anything is written: on failure no version exists.
  const current = await deps.store.get<StoredCryptoKey & JsonObject>(parent);
  if (!current) throw RpcError.notFound(parent);
  if (current.importOnly) throw importOnlyRefusal(parent);
  if (current.versionTemplate.protectionLevel === 'EXTERNAL_VPC' && current.cryptoKeyBackend) {
    const conn = await readConnection(deps, current.cryptoKeyBackend);
    if (conn.keyManagementMode === 'CLOUD_KMS') {
      if (rawExternal && Object.keys(rawExternal).length > 0) {
        throw RpcError.invalidArgument(
          `${parent} uses the coordinated EKM connection ${conn.name}: the EKM creates each version's key, so give no externalProtectionLevelOptions.`,
          'externalProtectionLevelOptions',
        );
      }
      if (state !== 'ENABLED') {
        throw RpcError.invalidArgument(
          'A coordinated version starts PENDING_GENERATION, then ENABLED.',
          'state',
        );
      }
      return toApiVersion(await generateCoordinated(deps, ctx, parent));
    }
  }
  const checked = externalOptions(deps, current, rawExternal, 'externalProtectionLevelOptions');
  if (checked?.externalKeyUri) {
    await checkExternalKey(deps, ctx, checked.externalKeyUri, parent, 'not created');
  }
  if (checked?.ekmConnectionKeyPath) {
    const replicas = await connectionReplicas(deps, parent);
    await checkExternalKey(
      deps,
      ctx,
      replicaKeys(replicas, checked.ekmConnectionKeyPath),
      parent,
      'not created',
    );
  }
  const material = await materialFor(current);
  const write = (hsmKey?: StoredCryptoKeyVersion['hsmKey']) =>
    deps.store.transaction(
      async (tx) => {
        const key = await tx.get<StoredCryptoKey & JsonObject>(parent);
        if (!key) throw RpcError.notFound(parent);
        if (key.importOnly) throw importOnlyRefusal(parent);
        if (key.versionTemplate.algorithm !== current.versionTemplate.algorithm) {
          throw RpcError.aborted(
            `The version template of ${parent} changed while the version was being made; retry the request.`,
          );
        }
        const external = externalOptions(deps, key, rawExternal, 'externalProtectionLevelOptions');
        const next = { ...key };
        const v = newVersion(deps, next, state, external, material, hsmKey);
        tx.set(parent, { ...next });
        tx.create(v.name, { ...v });
        return v;
      },
      { queueOn: parent },
    );
  // HSM: the token key is made first, outside the transaction (operations/hsm-keys.ts).
  const version =
    current.versionTemplate.protectionLevel === 'HSM'
      ? await withNewHsmKey(deps, ctx, current, write)
      : await write();
  deps.cache.invalidate(parent);
  return toApiVersion(version);
}

/**
 * Reads a version; a scheduled destruction that is due is carried out first (in a transaction), so nobody
 * ever sees or uses a version past its destroyTime.
 */
export async function readVersion(
  deps: Deps,
  name: string,
  opts: { cached?: boolean; allowMissing: true },
): Promise<StoredCryptoKeyVersion | undefined>;
export async function readVersion(
  deps: Deps,
  name: string,
  opts?: { cached?: boolean; allowMissing?: false },
): Promise<StoredCryptoKeyVersion>;
export async function readVersion(
  deps: Deps,
  name: string,
  opts: { cached?: boolean; allowMissing?: boolean } = {},
): Promise<StoredCryptoKeyVersion | undefined> {
  const v = opts.cached
    ? await deps.cache.get<StoredCryptoKeyVersion & JsonObject>(name)
    : await deps.store.get<StoredCryptoKeyVersion & JsonObject>(name);
  if (!v) {
    if (opts.allowMissing) return undefined;
    throw RpcError.notFound(name);
  }
  if (isDueForDestruction(v, deps.now())) return finishDestruction(deps, v);
  return v;
}

async function finishDestruction(deps: Deps, due: StoredCryptoKeyVersion): Promise<StoredCryptoKeyVersion> {
  const name = due.name;
  // HSM: the token object goes first, so DESTROYED is never written while the key exists.
  await destroyHsmKey(deps, due);
  const result = await deps.store.transaction(async (tx) => {
    const v = await tx.get<StoredCryptoKeyVersion & JsonObject>(name);
    if (!v) throw RpcError.notFound(name);
    if (!isDueForDestruction(v, deps.now())) return v;
    const d = destroyed(v);
    tx.set(name, { ...d });
    return d;
  });
  deps.cache.invalidate(name);
  return result;
}

export async function getCryptoKeyVersion(deps: Deps, name: string): Promise<CryptoKeyVersion> {
  parseCryptoKeyVersionName(name);
  return toApiVersion(await readVersion(deps, name));
}

async function versionsOf(deps: Deps, keyName: string): Promise<StoredCryptoKeyVersion[]> {
  const all = await deps.store.list<StoredCryptoKeyVersion & JsonObject>(keyName, 'cryptoKeyVersions');
  return Promise.all(all.map((v) => (isDueForDestruction(v, deps.now()) ? finishDestruction(deps, v) : v)));
}

export async function listCryptoKeyVersions(
  deps: Deps,
  parent: string,
  req: ListRequest,
): Promise<Page<CryptoKeyVersion>> {
  parseCryptoKeyName(parent, 'parent');
  const [key, versions] = await Promise.all([deps.store.get(parent), versionsOf(deps, parent)]);
  if (!key) throw RpcError.notFound(parent);
  return paginate(versions.map(toApiVersion), req, deps.config);
}

const PATCHABLE = [
  'state',
  'externalProtectionLevelOptions.externalKeyUri',
  'externalProtectionLevelOptions.ekmConnectionKeyPath',
];

export async function patchCryptoKeyVersion(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  mask: string[],
  body: JsonObject,
): Promise<CryptoKeyVersion> {
  parseCryptoKeyVersionName(name);
  requireMask(mask, PATCHABLE);
  for (const path of mask) {
    if (path === 'externalProtectionLevelOptions') {
      throw RpcError.invalidArgument(
        'updateMask may not name externalProtectionLevelOptions as a whole: name externalProtectionLevelOptions.externalKeyUri.',
        'updateMask',
      );
    }
    if (!PATCHABLE.includes(path)) {
      throw RpcError.invalidArgument(
        VERSION_FIELDS.includes(path)
          ? `Field ${path} cannot be updated; only ${PATCHABLE.join(', ')} can.`
          : `updateMask path "${path}" is not a field of CryptoKeyVersion that can be updated; use ${PATCHABLE.join(', ')}.`,
        'updateMask',
      );
    }
  }
  allowOnly(body, VERSION_FIELDS);
  const bodyName = optionalString(body, 'name');
  if (bodyName !== undefined && bodyName !== '' && bodyName !== name) {
    throw RpcError.invalidArgument(
      'The name in the body does not match the name in the URL.',
      'cryptoKeyVersion.name',
    );
  }
  const keyName = cryptoKeyOfVersion(name);
  if (mask.some((p) => p.startsWith('externalProtectionLevelOptions.'))) {
    // A new external key (URI, or key path on the EKM connection) must be usable before the version moves to it.
    // Versions that cannot move (destroyed or scheduled, coordinated, the other protection level) are refused in
    // the transaction, without an EKM call.
    const [key, stored] = await Promise.all([
      deps.store.get<StoredCryptoKey & JsonObject>(keyName),
      deps.store.get<StoredCryptoKeyVersion & JsonObject>(name),
    ]);
    const current = stored && asOf(stored, deps.now());
    const movable = current && current.state !== 'DESTROYED' && current.state !== 'DESTROY_SCHEDULED';
    const level = key?.versionTemplate.protectionLevel;
    const field =
      level === 'EXTERNAL' ? 'externalKeyUri' : level === 'EXTERNAL_VPC' ? 'ekmConnectionKeyPath' : undefined;
    if (
      key &&
      field &&
      mask.includes(`externalProtectionLevelOptions.${field}`) &&
      stored &&
      movable &&
      !stored.coordinated
    ) {
      const next = externalOptions(
        deps,
        key,
        optionalObject(body, 'externalProtectionLevelOptions') ?? {},
        'externalProtectionLevelOptions',
      )?.[field];
      if (next && next !== stored.externalProtectionLevelOptions?.[field]) {
        const target =
          field === 'externalKeyUri' ? next : replicaKeys(await connectionReplicas(deps, keyName), next);
        await checkExternalKey(deps, ctx, target, name, stored.state);
      }
    }
  }
  const updated = await deps.store.transaction(async (tx) => {
    const [key, stored] = await Promise.all([
      tx.get<StoredCryptoKey & JsonObject>(keyName),
      tx.get<StoredCryptoKeyVersion & JsonObject>(name),
    ]);
    if (!key || !stored) throw RpcError.notFound(name);
    const v = { ...asOf(stored, deps.now()) };
    if (mask.includes('state')) {
      const to = enumValue(CryptoKeyVersionState, body.state, 'state') as StateName | undefined;
      if (to !== 'ENABLED' && to !== 'DISABLED') {
        throw RpcError.invalidArgument(
          `state can be patched to ENABLED or DISABLED only${to ? `, not ${to}` : ''}; use :destroy and :restore for destruction.`,
          'state',
        );
      }
      requireTransition(v, to, to === 'ENABLED' ? 'enable' : 'disable');
      v.state = to;
    }
    if (mask.some((p) => p.startsWith('externalProtectionLevelOptions.'))) {
      const level = key.versionTemplate.protectionLevel;
      const wantsPath = mask.includes('externalProtectionLevelOptions.ekmConnectionKeyPath');
      if (wantsPath && level !== 'EXTERNAL_VPC') {
        throw RpcError.invalidArgument(
          `externalProtectionLevelOptions.ekmConnectionKeyPath cannot be set on a ${level} key; it is for EXTERNAL_VPC keys.`,
          'updateMask',
        );
      }
      if (wantsPath && v.coordinated) {
        throw RpcError.failedPrecondition(
          `${name} is a coordinated version: its EKM chose its key path, which cannot be changed.`,
        );
      }
      if (mask.includes('externalProtectionLevelOptions.externalKeyUri') && level !== 'EXTERNAL') {
        throw RpcError.invalidArgument(
          `externalProtectionLevelOptions.externalKeyUri applies only to EXTERNAL keys; ${keyName} is ${key.versionTemplate.protectionLevel}.`,
          'updateMask',
        );
      }
      if (v.state === 'DESTROYED' || v.state === 'DESTROY_SCHEDULED') {
        throw RpcError.failedPrecondition(`${name} is ${v.state}; its external key cannot be changed.`);
      }
      v.externalProtectionLevelOptions = externalOptions(
        deps,
        key,
        optionalObject(body, 'externalProtectionLevelOptions') ?? {},
        'externalProtectionLevelOptions',
      );
    }
    tx.set(name, { ...v });
    return v;
  });
  deps.cache.invalidate(name);
  return toApiVersion(updated);
}

export async function destroyCryptoKeyVersion(
  deps: Deps,
  name: string,
  body: JsonObject,
): Promise<CryptoKeyVersion> {
  parseCryptoKeyVersionName(name);
  allowOnly(body, ['name']);
  const keyName = cryptoKeyOfVersion(name);
  const v = await deps.store.transaction(async (tx) => {
    const [key, stored] = await Promise.all([
      tx.get<StoredCryptoKey & JsonObject>(keyName),
      tx.get<StoredCryptoKeyVersion & JsonObject>(name),
    ]);
    if (!key || !stored) throw RpcError.notFound(name);
    const current = asOf(stored, deps.now());
    requireTransition(current, 'DESTROY_SCHEDULED', 'destroy');
    const destroyTime = new Date(
      deps.now().getTime() + parseDurationString(key.destroyScheduledDuration) * 1000,
    );
    const next: StoredCryptoKeyVersion = {
      ...current,
      state: 'DESTROY_SCHEDULED',
      destroyTime: destroyTime.toISOString(),
    };
    tx.set(name, { ...next });
    return next;
  });
  deps.cache.invalidate(name);
  return toApiVersion(v);
}

export async function restoreCryptoKeyVersion(
  deps: Deps,
  name: string,
  body: JsonObject,
): Promise<CryptoKeyVersion> {
  parseCryptoKeyVersionName(name);
  allowOnly(body, ['name']);
  const v = await deps.store.transaction(async (tx) => {
    const stored = await tx.get<StoredCryptoKeyVersion & JsonObject>(name);
    if (!stored) throw RpcError.notFound(name);
    const current = asOf(stored, deps.now());
    requireTransition(current, 'DISABLED', 'restore');
    const { destroyTime: _t, ...rest } = current;
    const next: StoredCryptoKeyVersion = { ...rest, state: 'DISABLED' };
    tx.set(name, { ...next });
    return next;
  });
  deps.cache.invalidate(name);
  return toApiVersion(v);
}

/**
 * The scheduled job: destroys every DESTROY_SCHEDULED version whose destroyTime has passed, in batches.
 * Only DESTROY_SCHEDULED versions carry a destroyTime, so one single-field range query finds them all
 * (a collection-group index on cryptoKeyVersions.destroyTime; see infra/).
 */
export async function finishDueDestructions(deps: Deps, batch = 200): Promise<{ destroyed: string[] }> {
  const due = await deps.store.findAtMost<StoredCryptoKeyVersion & JsonObject>(
    'cryptoKeyVersions',
    'destroyTime',
    deps.now().toISOString(),
    batch,
  );
  const done: string[] = [];
  for (const v of due) {
    const after = await readVersion(deps, v.name, { allowMissing: true });
    if (after && after.state !== 'DESTROY_SCHEDULED') done.push(v.name);
  }
  return { destroyed: done };
}
