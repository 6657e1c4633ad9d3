/** cryptoKeys.create / get / list / patch / updatePrimaryVersion. */

import type { Deps, RequestContext } from '../context.js';
import { purposeOf, SPECS } from '../crypto/algorithms.js';
import { RpcError } from '../errors.js';
import {
  allowOnly,
  durationSeconds,
  enumValue,
  type Json,
  type JsonObject,
  optionalBool,
  optionalObject,
  optionalString,
  requireMask,
  timestampValue,
} from '../resources/fields.js';
import { checkId, cryptoKeyPath, parseCryptoKeyName, parseKeyRingName } from '../resources/names.js';
import {
  AccessReason,
  type AccessReasonName,
  type AlgorithmName,
  type CryptoKey,
  CryptoKeyPurpose,
  type CryptoKeyPurposeName,
  CryptoKeyVersionAlgorithm,
  ProtectionLevel,
  type ProtectionLevelName,
  type StoredCryptoKey,
  type StoredCryptoKeyVersion,
} from '../resources/types.js';
import {
  DEFAULT_DESTROY_SCHEDULED_SECONDS,
  durationString,
  MAX_DESTROY_SCHEDULED_SECONDS,
  MAX_ROTATION_SECONDS,
  MIN_DESTROY_SCHEDULED_SECONDS,
  MIN_ROTATION_SECONDS,
  labels as parseLabels,
} from '../resources/validate.js';
import { toApiKey } from '../resources/versions.js';
import type { Tx } from '../store/firestore.js';
import { connectionBackend, generateCoordinated } from './coordinated.js';
import { materialFor, readVersion } from './crypto-key-versions.js';
import { hsmKeyKind, requireHsm, withNewHsmKey } from './hsm-keys.js';
import { type ListRequest, type Page, paginate } from './list.js';
import { newVersion } from './new-version.js';

const KEY_FIELDS = [
  'name',
  'primary',
  'purpose',
  'createTime',
  'nextRotationTime',
  'rotationPeriod',
  'versionTemplate',
  'labels',
  'importOnly',
  'destroyScheduledDuration',
  'cryptoKeyBackend',
  'keyAccessJustificationsPolicy',
] as const;

/** Purposes of Cloud KMS that OpenEKM does not implement. */
const UNIMPLEMENTED_PURPOSES: readonly string[] = ['KEY_ENCAPSULATION', 'AES_WRAPPING'];

/** The algorithms a purpose takes, for messages. */
function algorithmsOf(purpose: CryptoKeyPurposeName): string {
  return Object.keys(SPECS)
    .filter((a) => SPECS[a as AlgorithmName]!.purpose === purpose)
    .join(', ');
}

/**
 * The version algorithm of a key whose purpose is not ENCRYPT_DECRYPT: required, of that purpose, and one OpenEKM
 * implements (UNIMPLEMENTED naming it otherwise). Such keys are SOFTWARE only here.
 */
function checkOtherAlgorithm(
  purpose: CryptoKeyPurposeName,
  level: ProtectionLevelName,
  algorithm: AlgorithmName | undefined,
  field: string,
): AlgorithmName {
  if (level !== 'SOFTWARE' && level !== 'HSM') {
    throw RpcError.unimplemented(
      `${purpose} keys at protection level ${level} are not implemented by OpenEKM; create the key with protection level SOFTWARE or HSM.`,
    );
  }
  if (algorithm === undefined || algorithm === 'CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED') {
    throw RpcError.invalidArgument(
      `${field} is required for ${purpose} keys: one of ${algorithmsOf(purpose)}.`,
      field,
    );
  }
  const of = purposeOf(algorithm);
  if (of !== purpose) {
    throw RpcError.invalidArgument(
      `Algorithm ${algorithm} is ${of ? `for ${of} keys` : 'not valid here'}; a ${purpose} key takes one of ${algorithmsOf(purpose)}.`,
      field,
    );
  }
  if (!SPECS[algorithm]) {
    throw RpcError.unimplemented(
      `Algorithm ${algorithm} is not implemented by OpenEKM; use one of ${algorithmsOf(purpose)}.`,
    );
  }
  if (level === 'HSM') hsmKeyKind(algorithm);
  return algorithm;
}

function algorithmFor(level: ProtectionLevelName): AlgorithmName {
  return level === 'SOFTWARE' || level === 'HSM'
    ? 'GOOGLE_SYMMETRIC_ENCRYPTION'
    : 'EXTERNAL_SYMMETRIC_ENCRYPTION';
}

function checkAlgorithm(level: ProtectionLevelName, algorithm: AlgorithmName, field: string): void {
  const want = algorithmFor(level);
  if (algorithm !== want) {
    throw RpcError.invalidArgument(
      `Algorithm ${algorithm} is not valid for a ${level} ENCRYPT_DECRYPT key in OpenEKM: use ${want}.`,
      field,
    );
  }
}

function justificationsPolicy(raw: Json | undefined): CryptoKey['keyAccessJustificationsPolicy'] {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw RpcError.invalidArgument(
      'keyAccessJustificationsPolicy must be an object.',
      'keyAccessJustificationsPolicy',
    );
  }
  allowOnly(raw, ['allowedAccessReasons'], 'keyAccessJustificationsPolicy');
  const list = raw.allowedAccessReasons ?? [];
  if (!Array.isArray(list)) {
    throw RpcError.invalidArgument(
      'keyAccessJustificationsPolicy.allowedAccessReasons must be a list of reasons.',
      'keyAccessJustificationsPolicy.allowedAccessReasons',
    );
  }
  const reasons = list.map(
    (r, i) =>
      enumValue(
        AccessReason,
        r,
        `keyAccessJustificationsPolicy.allowedAccessReasons[${i}]`,
      ) as AccessReasonName,
  );
  return { allowedAccessReasons: [...new Set(reasons)] };
}

/**
 * A Duration field kept in whole seconds. durationSeconds drops a fractional part, which would let "10368000.5s"
 * pass the bounds check and be stored truncated, so a fraction is refused instead.
 */
function wholeSeconds(raw: Json | undefined, field: string, rule: string): number | undefined {
  const seconds = durationSeconds(raw, field);
  if (seconds !== undefined && !/^[0-9]+(\.0+)?s$/.test(raw as string)) {
    throw RpcError.invalidArgument(`${field} must be a whole number of seconds ${rule}.`, field);
  }
  return seconds;
}

const ROTATION_RULE = 'of at least 24 hours ("86400s")';
const DESTROY_RULE = 'between 24 hours ("86400s") and 120 days ("10368000s")';

interface Rotation {
  rotationPeriod?: string;
  nextRotationTime?: string;
}

/**
 * rotationPeriod / nextRotationTime. SOFTWARE keys and coordinated EXTERNAL_VPC keys (whose EKM creates each
 * new key) rotate automatically; other external keys are rotated at the EKM and added here as new versions.
 */
function rotation(body: JsonObject, level: ProtectionLevelName, now: Date, coordinated = false): Rotation {
  const period = wholeSeconds(body.rotationPeriod, 'rotationPeriod', ROTATION_RULE);
  const next = timestampValue(body.nextRotationTime, 'nextRotationTime');
  if (period === undefined && next === undefined) return {};
  if (level !== 'SOFTWARE' && !coordinated) {
    throw RpcError.invalidArgument(
      `Automatic rotation is not supported for ${level} keys unless they use an EKM connection in CLOUD_KMS (coordinated) mode: an external key is rotated at the EKM, then added here as a new version.`,
      period !== undefined ? 'rotationPeriod' : 'nextRotationTime',
    );
  }
  if (period !== undefined && (period < MIN_ROTATION_SECONDS || period > MAX_ROTATION_SECONDS)) {
    throw RpcError.invalidArgument(
      `rotationPeriod must be at least 24 hours ("86400s") and at most 100 years.`,
      'rotationPeriod',
    );
  }
  if (period !== undefined && next === undefined) {
    throw RpcError.invalidArgument(
      'nextRotationTime is required when rotationPeriod is set.',
      'nextRotationTime',
    );
  }
  if (next !== undefined && next.getTime() < now.getTime() - 60_000) {
    throw RpcError.invalidArgument('nextRotationTime must not be in the past.', 'nextRotationTime');
  }
  const out: Rotation = {};
  if (period !== undefined) out.rotationPeriod = durationString(period);
  if (next !== undefined) out.nextRotationTime = next.toISOString();
  return out;
}

/**
 * An import-only key (docs/key-import.md): its versions come only from cryptoKeyVersions.import, so it is created
 * without an initial version, never rotates, and only at a protection level import jobs serve (SOFTWARE, HSM).
 */
function checkImportOnly(level: ProtectionLevelName, skipInitial: boolean, body: JsonObject): void {
  if (level !== 'SOFTWARE' && level !== 'HSM') {
    throw RpcError.invalidArgument(
      `A ${level} key cannot be import-only: external keys live in the EKM and are never imported.`,
      'importOnly',
    );
  }
  if (!skipInitial) {
    throw RpcError.invalidArgument(
      'An importOnly key must be created with skipInitialVersionCreation=true: its versions come only from cryptoKeyVersions.import.',
      'skipInitialVersionCreation',
    );
  }
  if (body.rotationPeriod != null || body.nextRotationTime != null) {
    throw RpcError.invalidArgument(
      'An importOnly key does not rotate automatically (rotation creates versions); import new versions instead.',
      body.rotationPeriod != null ? 'rotationPeriod' : 'nextRotationTime',
    );
  }
}

export async function createCryptoKey(
  deps: Deps,
  ctx: RequestContext,
  parent: string,
  cryptoKeyId: string | null,
  skipInitialVersionCreation: boolean,
  body: JsonObject,
): Promise<CryptoKey> {
  const ring = parseKeyRingName(parent, 'parent');
  const id = checkId(cryptoKeyId ?? undefined, 'cryptoKeyId');
  allowOnly(body, KEY_FIELDS);
  const purpose = enumValue(CryptoKeyPurpose, body.purpose, 'purpose');
  if (purpose === undefined || purpose === 'CRYPTO_KEY_PURPOSE_UNSPECIFIED') {
    throw RpcError.invalidArgument(
      'purpose is required: ENCRYPT_DECRYPT, ASYMMETRIC_SIGN, ASYMMETRIC_DECRYPT, MAC or RAW_ENCRYPT_DECRYPT.',
      'purpose',
    );
  }
  if (UNIMPLEMENTED_PURPOSES.includes(purpose)) {
    throw RpcError.unimplemented(
      `Keys with purpose ${purpose} are not implemented by OpenEKM; it offers ENCRYPT_DECRYPT, ASYMMETRIC_SIGN, ASYMMETRIC_DECRYPT, MAC and RAW_ENCRYPT_DECRYPT.`,
    );
  }
  const template = optionalObject(body, 'versionTemplate') ?? {};
  allowOnly(template, ['protectionLevel', 'algorithm'], 'versionTemplate');
  let level =
    enumValue(ProtectionLevel, template.protectionLevel, 'versionTemplate.protectionLevel') ?? 'SOFTWARE';
  if (level === 'PROTECTION_LEVEL_UNSPECIFIED') level = 'SOFTWARE';
  // HSM keys need the operator's PKCS#11 token (docs/hsm.md); other levels are checked per purpose below.
  if (level === 'HSM') requireHsm(deps, `${parent}/cryptoKeys/${id}`);
  if (level === 'HSM_SINGLE_TENANT') {
    throw RpcError.unimplemented(
      'HSM_SINGLE_TENANT protection is not available in OpenEKM; use HSM, SOFTWARE, or EXTERNAL with your own HSM behind an EKM.',
    );
  }
  const given = enumValue(CryptoKeyVersionAlgorithm, template.algorithm, 'versionTemplate.algorithm');
  let algorithm: AlgorithmName;
  if (purpose === 'ENCRYPT_DECRYPT') {
    algorithm =
      given === undefined || given === 'CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED'
        ? algorithmFor(level)
        : given;
    checkAlgorithm(level, algorithm, 'versionTemplate.algorithm');
  } else {
    algorithm = checkOtherAlgorithm(purpose, level, given, 'versionTemplate.algorithm');
    if (body.rotationPeriod != null || body.nextRotationTime != null) {
      throw RpcError.invalidArgument(
        `Only ENCRYPT_DECRYPT keys rotate automatically; a ${purpose} key takes no rotationPeriod or nextRotationTime. Create new versions instead.`,
        body.rotationPeriod != null ? 'rotationPeriod' : 'nextRotationTime',
      );
    }
  }
  const importOnly = optionalBool(body, 'importOnly') ?? false;
  if (importOnly) checkImportOnly(level, skipInitialVersionCreation, body);
  const backend = await connectionBackend(deps, ctx, ring, level, optionalString(body, 'cryptoKeyBackend'));
  const destroySeconds =
    wholeSeconds(body.destroyScheduledDuration, 'destroyScheduledDuration', DESTROY_RULE) ??
    DEFAULT_DESTROY_SCHEDULED_SECONDS;
  if (destroySeconds < MIN_DESTROY_SCHEDULED_SECONDS || destroySeconds > MAX_DESTROY_SCHEDULED_SECONDS) {
    throw RpcError.invalidArgument(
      `destroyScheduledDuration must be ${DESTROY_RULE}.`,
      'destroyScheduledDuration',
    );
  }
  if (level === 'EXTERNAL' || level === 'EXTERNAL_VPC') {
    if (ring.location === 'global') {
      throw RpcError.invalidArgument(
        `${level} keys cannot be created in location "global": create the key ring in a regional location.`,
        'parent',
      );
    }
    if (!skipInitialVersionCreation && !backend?.coordinated) {
      throw RpcError.invalidArgument(
        level === 'EXTERNAL'
          ? 'EXTERNAL keys must be created with skipInitialVersionCreation=true; then create versions with externalProtectionLevelOptions.externalKeyUri.'
          : 'EXTERNAL_VPC keys on a MANUAL EKM connection must be created with skipInitialVersionCreation=true; then create versions with externalProtectionLevelOptions.ekmConnectionKeyPath.',
        'skipInitialVersionCreation',
      );
    }
  }
  const now = deps.now();
  const name = cryptoKeyPath({ ...ring, cryptoKey: id });
  const key: StoredCryptoKey = {
    name,
    purpose,
    createTime: now.toISOString(),
    ...rotation(body, level, now, backend?.coordinated),
    versionTemplate: { protectionLevel: level, algorithm },
    importOnly,
    destroyScheduledDuration: durationString(destroySeconds),
    versionCounter: 0,
  };
  if (backend) key.cryptoKeyBackend = backend.name;
  const l = parseLabels(body.labels);
  if (l && Object.keys(l).length > 0) key.labels = l;
  const policy = justificationsPolicy(body.keyAccessJustificationsPolicy);
  if (policy) key.keyAccessJustificationsPolicy = policy;

  const material = skipInitialVersionCreation ? undefined : await materialFor(key);
  const write = (hsmKey?: StoredCryptoKeyVersion['hsmKey']) =>
    deps.store.transaction(async (tx) => {
      const [parentDoc, existing] = await Promise.all([tx.get(parent), tx.get(name)]);
      if (!parentDoc) throw RpcError.notFound(parent);
      if (existing) throw RpcError.alreadyExists(name);
      let initial: StoredCryptoKeyVersion | undefined;
      const stored = { ...key };
      if (!skipInitialVersionCreation && !backend?.coordinated) {
        initial = newVersion(deps, stored, 'ENABLED', undefined, material, hsmKey);
        // Only ENCRYPT_DECRYPT keys have a primary version; the others are used by version name.
        if (purpose === 'ENCRYPT_DECRYPT') stored.primaryVersionId = '1';
        tx.create(initial.name, { ...initial });
      }
      tx.create(name, { ...stored });
      Object.assign(key, stored);
      return initial;
    });
  // HSM: the first version's token key is made before anything is written (and destroyed if the write fails).
  const primary =
    level === 'HSM' && !skipInitialVersionCreation
      ? await withNewHsmKey(deps, ctx, key, write)
      : await write();
  deps.cache.invalidate(name);
  if (backend?.coordinated && !skipInitialVersionCreation) {
    // The EKM creates the first version's key; the key exists (and is answered) whatever the EKM says.
    const first = await generateCoordinated(deps, ctx, name, { makePrimary: true });
    return toApiKey({ ...key, primaryVersionId: '1', versionCounter: 1 }, first);
  }
  return toApiKey(key, primary);
}

export async function readKey(
  deps: Deps,
  name: string,
  opts: { cached?: boolean } = {},
): Promise<StoredCryptoKey> {
  const key = opts.cached
    ? await deps.cache.get<StoredCryptoKey & JsonObject>(name)
    : await deps.store.get<StoredCryptoKey & JsonObject>(name);
  if (!key) throw RpcError.notFound(name);
  return key;
}

async function withPrimary(deps: Deps, key: StoredCryptoKey): Promise<CryptoKey> {
  const primary = key.primaryVersionId
    ? await readVersion(deps, `${key.name}/cryptoKeyVersions/${key.primaryVersionId}`, { allowMissing: true })
    : undefined;
  return toApiKey(key, primary);
}

export async function getCryptoKey(deps: Deps, name: string): Promise<CryptoKey> {
  parseCryptoKeyName(name);
  return withPrimary(deps, await readKey(deps, name));
}

export async function listCryptoKeys(deps: Deps, parent: string, req: ListRequest): Promise<Page<CryptoKey>> {
  parseKeyRingName(parent, 'parent');
  const [ring, keys] = await Promise.all([
    deps.store.get(parent),
    deps.store.list<StoredCryptoKey & JsonObject>(parent, 'cryptoKeys'),
  ]);
  if (!ring) throw RpcError.notFound(parent);
  const all = await Promise.all(keys.map((k) => withPrimary(deps, k)));
  return paginate(all, req, deps.config);
}

const PATCHABLE = [
  'labels',
  'rotationPeriod',
  'nextRotationTime',
  'versionTemplate.algorithm',
  'keyAccessJustificationsPolicy',
];
const IMMUTABLE = [
  'name',
  'primary',
  'purpose',
  'createTime',
  'versionTemplate.protectionLevel',
  'importOnly',
  'destroyScheduledDuration',
  'cryptoKeyBackend',
];

export async function patchCryptoKey(
  deps: Deps,
  name: string,
  mask: string[],
  body: JsonObject,
): Promise<CryptoKey> {
  parseCryptoKeyName(name);
  requireMask(mask, PATCHABLE);
  for (const path of mask) {
    if (path === 'versionTemplate' || path.startsWith('primary')) {
      throw RpcError.invalidArgument(
        `updateMask path "${path}" is not allowed: name the sub-field (versionTemplate.algorithm).`,
        'updateMask',
      );
    }
    if (IMMUTABLE.includes(path)) {
      throw RpcError.invalidArgument(`Field ${path} is immutable and cannot be updated.`, 'updateMask');
    }
    if (!PATCHABLE.includes(path)) {
      throw RpcError.invalidArgument(
        `updateMask path "${path}" is not a field of CryptoKey that can be updated; use ${PATCHABLE.join(', ')}.`,
        'updateMask',
      );
    }
  }
  allowOnly(body, KEY_FIELDS);
  const bodyName = optionalString(body, 'name');
  if (bodyName !== undefined && bodyName !== '' && bodyName !== name) {
    throw RpcError.invalidArgument(
      'The name in the body does not match the name in the URL.',
      'cryptoKey.name',
    );
  }
  const updated = await deps.store.transaction(async (tx) => {
    const key = await tx.get<StoredCryptoKey & JsonObject>(name);
    if (!key) throw RpcError.notFound(name);
    const level = key.versionTemplate.protectionLevel;
    const next: StoredCryptoKey = { ...key };
    if (mask.includes('labels')) {
      const l = parseLabels(body.labels);
      if (l && Object.keys(l).length > 0) next.labels = l;
      else delete next.labels;
    }
    if (
      (mask.includes('rotationPeriod') || mask.includes('nextRotationTime')) &&
      key.purpose !== 'ENCRYPT_DECRYPT' &&
      (body.rotationPeriod != null || body.nextRotationTime != null)
    ) {
      throw RpcError.invalidArgument(
        `Only ENCRYPT_DECRYPT keys rotate automatically; ${name} has purpose ${key.purpose}.`,
        'updateMask',
      );
    }
    if (
      (mask.includes('rotationPeriod') || mask.includes('nextRotationTime')) &&
      key.importOnly &&
      (body.rotationPeriod != null || body.nextRotationTime != null)
    ) {
      throw RpcError.invalidArgument(
        `${name} is import-only: it does not rotate automatically (rotation creates versions); import new versions instead.`,
        'updateMask',
      );
    }
    if (mask.includes('rotationPeriod') || mask.includes('nextRotationTime')) {
      const r = rotation(
        {
          rotationPeriod: mask.includes('rotationPeriod')
            ? (body.rotationPeriod ?? null)
            : (key.rotationPeriod ?? null),
          nextRotationTime: mask.includes('nextRotationTime')
            ? (body.nextRotationTime ?? null)
            : (key.nextRotationTime ?? null),
        },
        level,
        deps.now(),
      );
      delete next.rotationPeriod;
      delete next.nextRotationTime;
      Object.assign(next, r);
    }
    if (mask.includes('versionTemplate.algorithm')) {
      const t = optionalObject(body, 'versionTemplate') ?? {};
      const algorithm = enumValue(CryptoKeyVersionAlgorithm, t.algorithm, 'versionTemplate.algorithm');
      if (!algorithm) {
        throw RpcError.invalidArgument(
          'versionTemplate.algorithm is named in updateMask but not given.',
          'versionTemplate.algorithm',
        );
      }
      if (key.purpose === 'ENCRYPT_DECRYPT') checkAlgorithm(level, algorithm, 'versionTemplate.algorithm');
      else checkOtherAlgorithm(key.purpose, level, algorithm, 'versionTemplate.algorithm');
      next.versionTemplate = { ...key.versionTemplate, algorithm };
    }
    if (mask.includes('keyAccessJustificationsPolicy')) {
      const p = justificationsPolicy(body.keyAccessJustificationsPolicy);
      if (p) next.keyAccessJustificationsPolicy = p;
      else delete next.keyAccessJustificationsPolicy;
    }
    tx.set(name, { ...next });
    return next;
  });
  deps.cache.invalidate(name);
  return withPrimary(deps, updated);
}

export async function updatePrimaryVersion(deps: Deps, name: string, body: JsonObject): Promise<CryptoKey> {
  parseCryptoKeyName(name);
  allowOnly(body, ['name', 'cryptoKeyVersionId']);
  const versionId = optionalString(body, 'cryptoKeyVersionId');
  if (!versionId)
    throw RpcError.invalidArgument('cryptoKeyVersionId is required, e.g. "1".', 'cryptoKeyVersionId');
  if (!/^[1-9][0-9]{0,9}$/.test(versionId)) {
    throw RpcError.invalidArgument(
      `cryptoKeyVersionId "${versionId}" is not a version id like "1".`,
      'cryptoKeyVersionId',
    );
  }
  const versionName = `${name}/cryptoKeyVersions/${versionId}`;
  const key = await deps.store.transaction(async (tx: Tx) => {
    const [key, version] = await Promise.all([
      tx.get<StoredCryptoKey & JsonObject>(name),
      tx.get<StoredCryptoKeyVersion & JsonObject>(versionName),
    ]);
    if (!key) throw RpcError.notFound(name);
    if (key.purpose !== 'ENCRYPT_DECRYPT') {
      throw RpcError.failedPrecondition(
        `Only ENCRYPT_DECRYPT keys have a primary version; ${name} has purpose ${key.purpose}. Address its versions by name instead.`,
      );
    }
    if (!version) throw RpcError.notFound(versionName);
    const next = { ...key, primaryVersionId: versionId };
    tx.set(name, next);
    return next;
  });
  deps.cache.invalidate(name);
  return withPrimary(deps, key);
}
