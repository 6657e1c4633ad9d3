/**
 * cryptoKeyVersions.import: key material wrapped with an import job's public key (crypto/key-import.ts) becomes
 * a new version of a key, or is re-imported into an imported version that is DESTROYED or IMPORT_FAILED. The
 * material is then sealed and used exactly like generated SOFTWARE material of the same algorithm.
 *
 * Cloud KMS answers a version in PENDING_IMPORT that later turns ENABLED or IMPORT_FAILED; OpenEKM unwraps during
 * the call and answers the final state at once: ENABLED, or IMPORT_FAILED with importFailureReason when the
 * wrapped key does not open under the job's key or the material does not fit the algorithm. A request whose
 * fields are wrong (INVALID_ARGUMENT), or whose job or key does not allow it (FAILED_PRECONDITION), makes no
 * version.
 *
 * At protection level HSM (symmetric and HMAC keys only) the unwrapped material is put into the token as a new key
 * object (Hsm.importKey) before the version is written, and the version keeps only the token reference, like a
 * generated HSM version; the material is wiped from memory right after. A token object whose version is not
 * written (a failed write, or a re-import that turns out IMPORT_FAILED) is destroyed again.
 */
import type { Deps, RequestContext } from '../context.js';
import { purposeOf, SPECS } from '../crypto/algorithms.js';
import { IMPORT_METHODS, ImportFailure, importedMaterial, unwrapKey } from '../crypto/key-import.js';
import { RpcError } from '../errors.js';
import type { HsmKeyRef } from '../hsm/hsm.js';
import {
  allowOnly,
  bytesValue,
  enumValue,
  type JsonObject,
  optionalBool,
  optionalString,
} from '../resources/fields.js';
import {
  cryptoKeyOfVersion,
  parseCryptoKeyName,
  parseCryptoKeyVersionName,
  parseImportJobName,
} from '../resources/names.js';
import {
  type AlgorithmName,
  type CryptoKeyVersion,
  CryptoKeyVersionAlgorithm,
  type StoredCryptoKey,
  type StoredCryptoKeyVersion,
} from '../resources/types.js';
import { asOf, toApiVersion } from '../resources/versions.js';
import { readKey } from './crypto-keys.js';
import { hsmImportKind, requireHsm } from './hsm-keys.js';
import { readImportJob } from './import-jobs.js';
import { newVersion } from './new-version.js';

const USE_TO_IMPORT = 'cloudkms.importJobs.useToImport';

const REQUEST_FIELDS = [
  'parent',
  'cryptoKeyVersion',
  'algorithm',
  'importJob',
  'wrappedKey',
  'rsaAesWrappedKey',
  'trustedWrappingEnabled',
];

interface Checked {
  algorithm: AlgorithmName;
  jobName: string;
  wrapped: Buffer;
  field: 'wrappedKey' | 'rsaAesWrappedKey';
  target?: string;
}

/** The request's fields, each checked on its own (nothing is read yet). */
function checkRequest(parent: string, body: JsonObject): Checked {
  const key = parseCryptoKeyName(parent, 'parent');
  allowOnly(body, REQUEST_FIELDS);
  if (optionalBool(body, 'trustedWrappingEnabled')) {
    throw RpcError.unimplemented(
      'trustedWrappingEnabled (HSM_SINGLE_TENANT trusted key wrapping) is not implemented by OpenEKM; wrap the key with an import job instead.',
    );
  }
  const algorithm = enumValue(CryptoKeyVersionAlgorithm, body.algorithm, 'algorithm');
  if (algorithm === undefined || algorithm === 'CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED') {
    throw RpcError.invalidArgument(
      'algorithm is required: the algorithm of the key being imported, e.g. GOOGLE_SYMMETRIC_ENCRYPTION.',
      'algorithm',
    );
  }
  const jobName = optionalString(body, 'importJob');
  if (!jobName) {
    throw RpcError.invalidArgument(
      'importJob is required: the name of the ACTIVE import job whose public key wrapped the key.',
      'importJob',
    );
  }
  const job = parseImportJobName(jobName, 'importJob');
  if (job.project !== key.project || job.location !== key.location) {
    throw RpcError.invalidArgument(
      `importJob ${jobName} must be in the same project and location as ${parent}.`,
      'importJob',
    );
  }
  const wrappedKey = bytesValue(body.wrappedKey, 'wrappedKey');
  const rsaAes = bytesValue(body.rsaAesWrappedKey, 'rsaAesWrappedKey');
  const given = [wrappedKey, rsaAes].filter((b) => b !== undefined && b.length > 0);
  if (given.length !== 1) {
    throw RpcError.invalidArgument(
      given.length === 0
        ? 'wrappedKey is required: the key material wrapped with the import job’s public key (base64).'
        : 'Give exactly one of wrappedKey and rsaAesWrappedKey (the older name of the same thing), not both.',
      'wrappedKey',
    );
  }
  const field = wrappedKey && wrappedKey.length > 0 ? 'wrappedKey' : 'rsaAesWrappedKey';
  const out: Checked = { algorithm, jobName, wrapped: given[0]!, field };
  const target = optionalString(body, 'cryptoKeyVersion');
  if (target) {
    parseCryptoKeyVersionName(target, 'cryptoKeyVersion');
    if (cryptoKeyOfVersion(target) !== parent) {
      throw RpcError.invalidArgument(
        `cryptoKeyVersion ${target} is not a version of ${parent}; re-import targets a version of the key named in the URL.`,
        'cryptoKeyVersion',
      );
    }
    out.target = target;
  }
  return out;
}

function checkAlgorithm(key: StoredCryptoKey, algorithm: AlgorithmName): void {
  const purpose = purposeOf(algorithm);
  if (purpose !== key.purpose) {
    throw RpcError.invalidArgument(
      `Algorithm ${algorithm} is ${purpose ? `for ${purpose} keys` : 'not valid here'}; ${key.name} has purpose ${key.purpose}.`,
      'algorithm',
    );
  }
  if (!SPECS[algorithm]) {
    throw RpcError.invalidArgument(
      `Algorithm ${algorithm} cannot be imported into OpenEKM: only the SOFTWARE algorithms it implements can (docs/key-import.md).`,
      'algorithm',
    );
  }
}

export async function importCryptoKeyVersion(
  deps: Deps,
  ctx: RequestContext,
  parent: string,
  body: JsonObject,
): Promise<CryptoKeyVersion> {
  const req = checkRequest(parent, body);
  // cloudkms.cryptoKeyVersions.create on the key is the route's; using the job needs its own permission.
  await ctx.authorize?.(USE_TO_IMPORT, req.jobName);
  const [key, job] = await Promise.all([
    readKey(deps, parent),
    readImportJob(deps, req.jobName, 'importJob'),
  ]);
  checkAlgorithm(key, req.algorithm);
  if (job.state !== 'ACTIVE') {
    throw RpcError.failedPrecondition(
      `${job.name} is ${job.state}${job.expireEventTime ? ` since ${job.expireEventTime}` : ''}; only an ACTIVE import job can be used. Create a new import job and wrap the key with its public key.`,
      [{ type: 'IMPORT_JOB_STATE', subject: job.name, description: `The import job is ${job.state}.` }],
    );
  }
  const level = key.versionTemplate.protectionLevel;
  if (level !== job.protectionLevel) {
    throw RpcError.failedPrecondition(
      `The protection level of ${job.name} (${job.protectionLevel}) does not match that of ${parent} (${level}); use an import job with protection level ${level}.`,
      [
        {
          type: 'PROTECTION_LEVEL',
          subject: job.name,
          description: `The import job's protection level must equal the key's versionTemplate.protectionLevel.`,
        },
      ],
    );
  }
  // HSM: only what the token can hold, refused before anything is unwrapped.
  const hsmKind = level === 'HSM' ? hsmImportKind(req.algorithm) : undefined;
  const hsm = hsmKind ? requireHsm(deps, parent) : undefined;
  const method = IMPORT_METHODS[job.importMethod]!;
  if (req.field === 'rsaAesWrappedKey' && !method.aes) {
    throw RpcError.invalidArgument(
      `rsaAesWrappedKey is for the *_AES_256 import methods; ${job.name} uses ${job.importMethod}: send wrappedKey.`,
      'rsaAesWrappedKey',
    );
  }
  // Unwrapped outside any transaction; the job's private key is wiped after use.
  let material: Buffer | undefined;
  let failure: string | undefined;
  const privateKey = deps.rootKeys.unseal(job.privateKey, job.name);
  try {
    material = importedMaterial(
      req.algorithm,
      unwrapKey(job.importMethod, privateKey, req.wrapped, req.field),
    );
  } catch (err) {
    if (!(err instanceof ImportFailure)) throw err;
    failure = err.message;
  } finally {
    privateKey.fill(0);
  }
  // HSM: the material goes into the token now, outside the transaction (a copy, wiped by importKey); `material`
  // itself is kept until the version is written, for its import fingerprint.
  let hsmKey: HsmKeyRef | undefined;
  if (hsm && hsmKind && material) {
    try {
      hsmKey = await hsm.importKey(hsmKind, Buffer.from(material), { subject: parent, signal: ctx.signal });
    } catch (err) {
      material.fill(0);
      throw err;
    }
  }
  const write = () =>
    deps.store.transaction(
      async (tx) => {
        const k = await tx.get<StoredCryptoKey & JsonObject>(parent);
        if (!k) throw RpcError.notFound(parent);
        const now = deps.now().toISOString();
        if (req.target) {
          const stored = await tx.get<StoredCryptoKeyVersion & JsonObject>(req.target);
          if (!stored) throw RpcError.notFound(req.target);
          const v = reimported(deps, asOf(stored, deps.now()), req, material, failure, now, hsmKey);
          tx.set(v.name, { ...v });
          return v;
        }
        const next: StoredCryptoKey = { ...k };
        // A failed HSM import has no token object: a stand-in reference, removed below with the failure.
        const v = newVersion(deps, next, 'ENABLED', undefined, material, hsmKey ?? { ckaId: '', label: '' });
        delete v.generateTime;
        v.algorithm = req.algorithm;
        v.importJob = req.jobName;
        v.reimportEligible = true;
        if (material) {
          v.importTime = now;
          v.importFingerprint = deps.rootKeys.fingerprint(material, v.name);
          // The first usable version of an ENCRYPT_DECRYPT key without a primary (an import-only key) becomes it.
          if (k.purpose === 'ENCRYPT_DECRYPT' && !k.primaryVersionId) {
            next.primaryVersionId = v.name.slice(v.name.lastIndexOf('/') + 1);
          }
        } else {
          delete v.material;
          delete v.hsmKey;
          v.state = 'IMPORT_FAILED';
          v.importFailureReason = failure;
        }
        tx.set(parent, { ...next });
        tx.create(v.name, { ...v });
        return v;
      },
      { queueOn: parent },
    );
  let result: StoredCryptoKeyVersion;
  try {
    result = await write();
  } catch (err) {
    if (hsmKey) await dropTokenKey(deps, hsmKey, parent);
    throw err;
  } finally {
    material?.fill(0);
  }
  // A re-import that turned out IMPORT_FAILED (other material than first imported) does not use its token object.
  if (hsmKey && result.hsmKey?.ckaId !== hsmKey.ckaId) await dropTokenKey(deps, hsmKey, parent);
  deps.cache.invalidate(parent);
  deps.cache.invalidate(result.name);
  return toApiVersion(result);
}

/** Destroys the token object made for a version that was not written with it (a failure is logged, not thrown). */
async function dropTokenKey(deps: Deps, ref: HsmKeyRef, subject: string): Promise<void> {
  await requireHsm(deps, subject)
    .destroyKey(ref, { subject })
    .catch((cause: unknown) =>
      deps.log.error('HSM key of an import that was not written could not be destroyed', {
        key: subject,
        label: ref.label,
        cause: cause instanceof Error ? cause.message : String(cause),
      }),
    );
}

/** The re-import of `current` (checked here: an imported version, DESTROYED or IMPORT_FAILED, same algorithm). */
function reimported(
  deps: Deps,
  current: StoredCryptoKeyVersion,
  req: Checked,
  material: Buffer | undefined,
  failure: string | undefined,
  now: string,
  hsmKey: HsmKeyRef | undefined,
): StoredCryptoKeyVersion {
  if (!current.importJob) {
    throw RpcError.failedPrecondition(
      `${current.name} was not imported, so it cannot be re-imported; import without cryptoKeyVersion to make a new version.`,
    );
  }
  if (current.state !== 'DESTROYED' && current.state !== 'IMPORT_FAILED') {
    throw RpcError.failedPrecondition(
      `${current.name} is ${current.state}; only a DESTROYED or IMPORT_FAILED imported version can be re-imported.`,
      [{ type: 'STATE', subject: current.name, description: `The version is ${current.state}.` }],
    );
  }
  if (current.algorithm !== req.algorithm) {
    throw RpcError.invalidArgument(
      `${current.name} has algorithm ${current.algorithm}; a re-import must use the same algorithm (and the same key material).`,
      'algorithm',
    );
  }
  const {
    destroyEventTime: _d,
    importFailureReason: _r,
    material: _m,
    hsmKey: _h,
    importTime: _t,
    ...rest
  } = current;
  const v: StoredCryptoKeyVersion = { ...rest, importJob: req.jobName, reimportEligible: true };
  let reason = failure;
  if (material && current.importFingerprint) {
    if (!deps.rootKeys.matchesFingerprint(material, current.name, current.importFingerprint)) {
      reason = `The material is not the material first imported into ${current.name}; a re-import must bring the same key.`;
    }
  }
  if (material && reason === undefined) {
    v.state = 'ENABLED';
    // HSM: the new token object holds the material; otherwise it is sealed into the version.
    if (current.protectionLevel === 'HSM') {
      if (!hsmKey)
        throw RpcError.internal(new Error(`no token key was made for the re-import of ${current.name}`));
      v.hsmKey = hsmKey;
    } else {
      v.material = deps.rootKeys.seal(material, current.name);
    }
    v.importTime = now;
    v.importFingerprint ??= deps.rootKeys.fingerprint(material, current.name);
  } else {
    v.state = 'IMPORT_FAILED';
    v.importFailureReason = reason;
  }
  return v;
}
