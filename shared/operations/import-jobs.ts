/**
 * importJobs.create / get / list. An import job holds an RSA wrapping key pair made when it is created; callers
 * wrap key material with its public key and import it with cryptoKeyVersions.import (import-version.ts). The
 * private key is stored only sealed under a root key, bound to the job's name, like version material
 * (crypto/material.ts); it is never returned. A job is ACTIVE for 3 days, then EXPIRED for good.
 *
 * The wrapping key pair is made the same way for SOFTWARE and HSM jobs: with node:crypto, sealed under the root key,
 * never in the HSM token. An HSM job's imports are unwrapped in memory and then put into the token
 * (import-version.ts).
 *
 * Cloud KMS makes the key pair asynchronously (PENDING_GENERATION, then ACTIVE); OpenEKM makes it during the
 * create call, so a job is ACTIVE as soon as it is answered.
 */
import type { Deps } from '../context.js';
import { generateWrappingKey, IMPORT_METHODS } from '../crypto/key-import.js';
import { RpcError } from '../errors.js';
import { allowOnly, enumValue, type JsonObject } from '../resources/fields.js';
import { checkId, keyRingPath, parseImportJobName, parseKeyRingName } from '../resources/names.js';
import {
  type ImportJob,
  ImportMethod,
  ProtectionLevel,
  type PublicKeyFormatName,
  type StoredImportJob,
} from '../resources/types.js';
import { type ListRequest, type Page, paginate } from './list.js';

/** How long a job can be used to import (Cloud KMS: 3 days after creation). */
const IMPORT_JOB_LIFETIME_MS = 3 * 24 * 3600 * 1000;

const JOB_FIELDS = [
  'name',
  'importMethod',
  'protectionLevel',
  'createTime',
  'generateTime',
  'expireTime',
  'expireEventTime',
  'state',
  'publicKey',
  'publicKeyFormat',
  'attestation',
  'cryptoKeyBackend',
];

/** The job as it stands at `now`: past its expireTime it is EXPIRED (expireEventTime = expireTime). */
function jobAsOf(job: StoredImportJob, now: Date): StoredImportJob {
  if (job.state === 'EXPIRED' || Date.parse(job.expireTime) > now.getTime()) return job;
  return { ...job, state: 'EXPIRED', expireEventTime: job.expireTime };
}

/** The API view: the public key only while ACTIVE, never the sealed private key. */
function toApiJob(job: StoredImportJob, format: PublicKeyFormatName | undefined): ImportJob {
  const { publicKeyPem, privateKey: _p, ...rest } = job;
  const out: ImportJob = { ...rest };
  if (job.state === 'ACTIVE') {
    if (format === 'DER') {
      const body = publicKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
      out.publicKey = { data: body };
      out.publicKeyFormat = 'DER';
    } else {
      out.publicKey = { pem: publicKeyPem };
    }
  }
  return out;
}

function checkFormat(raw: string | undefined): PublicKeyFormatName | undefined {
  if (raw === undefined || raw === 'PUBLIC_KEY_FORMAT_UNSPECIFIED' || raw === 'PEM') return undefined;
  if (raw === 'DER') return 'DER';
  throw RpcError.invalidArgument(
    `publicKeyFormat ${raw} does not apply to RSA wrapping keys; use PEM (the default) or DER.`,
    'publicKeyFormat',
  );
}

export async function createImportJob(
  deps: Deps,
  parent: string,
  importJobId: string | null,
  body: JsonObject,
): Promise<ImportJob> {
  const ring = parseKeyRingName(parent, 'parent');
  const id = checkId(importJobId ?? undefined, 'importJobId');
  allowOnly(body, JOB_FIELDS);
  const method = enumValue(ImportMethod, body.importMethod, 'importMethod');
  if (method === undefined || method === 'IMPORT_METHOD_UNSPECIFIED') {
    throw RpcError.invalidArgument(
      `importMethod is required: one of ${Object.keys(IMPORT_METHODS).join(', ')}.`,
      'importMethod',
    );
  }
  if (!IMPORT_METHODS[method]) {
    throw RpcError.unimplemented(
      `Import method ${method} is not implemented by OpenEKM; use one of ${Object.keys(IMPORT_METHODS).join(', ')}.`,
    );
  }
  if (typeof body.cryptoKeyBackend === 'string' && body.cryptoKeyBackend !== '') {
    throw RpcError.unimplemented(
      'cryptoKeyBackend on import jobs (single-tenant HSM instances) is not implemented by OpenEKM; leave it out.',
    );
  }
  const level = enumValue(ProtectionLevel, body.protectionLevel, 'protectionLevel');
  if (level === undefined || level === 'PROTECTION_LEVEL_UNSPECIFIED') {
    throw RpcError.invalidArgument(
      'protectionLevel is required: SOFTWARE or HSM (the protection level of the keys this job imports into).',
      'protectionLevel',
    );
  }
  if (level === 'HSM_SINGLE_TENANT') {
    throw RpcError.unimplemented(
      'Import jobs with protection level HSM_SINGLE_TENANT are not implemented by OpenEKM. Import into SOFTWARE or HSM keys.',
    );
  }
  if (level !== 'SOFTWARE' && level !== 'HSM') {
    throw RpcError.invalidArgument(
      `Import jobs cannot have protection level ${level}: external keys live in the EKM and are never imported. Use SOFTWARE or HSM.`,
      'protectionLevel',
    );
  }
  const name = `${keyRingPath(ring)}/importJobs/${id}`;
  // Cheap checks first, so a duplicate or a missing key ring costs no key generation.
  const [ringDoc, existing] = await Promise.all([deps.store.get(parent), deps.store.get(name)]);
  if (!ringDoc) throw RpcError.notFound(parent);
  if (existing) throw RpcError.alreadyExists(name);
  const now = deps.now();
  const pair = await generateWrappingKey(method);
  const job: StoredImportJob = {
    name,
    importMethod: method,
    protectionLevel: level,
    createTime: now.toISOString(),
    generateTime: deps.now().toISOString(),
    expireTime: new Date(now.getTime() + IMPORT_JOB_LIFETIME_MS).toISOString(),
    state: 'ACTIVE',
    publicKeyPem: pair.publicKeyPem,
    privateKey: deps.rootKeys.seal(pair.privateKeyDer, name),
  };
  pair.privateKeyDer.fill(0);
  await deps.store.transaction(async (tx) => {
    const [p, e] = await Promise.all([tx.get(parent), tx.get(name)]);
    if (!p) throw RpcError.notFound(parent);
    if (e) throw RpcError.alreadyExists(name);
    tx.create(name, { ...job });
  });
  return toApiJob(job, undefined);
}

/** The stored job (NOT_FOUND naming it when absent), as it stands now. */
export async function readImportJob(deps: Deps, name: string, field = 'name'): Promise<StoredImportJob> {
  parseImportJobName(name, field);
  const job = await deps.store.get<StoredImportJob & JsonObject>(name);
  if (!job) throw RpcError.notFound(name);
  return jobAsOf(job, deps.now());
}

export async function getImportJob(deps: Deps, name: string, publicKeyFormat?: string): Promise<ImportJob> {
  const format = checkFormat(publicKeyFormat);
  return toApiJob(await readImportJob(deps, name), format);
}

export async function listImportJobs(deps: Deps, parent: string, req: ListRequest): Promise<Page<ImportJob>> {
  parseKeyRingName(parent, 'parent');
  const [ring, jobs] = await Promise.all([
    deps.store.get(parent),
    deps.store.list<StoredImportJob & JsonObject>(parent, 'importJobs'),
  ]);
  if (!ring) throw RpcError.notFound(parent);
  const now = deps.now();
  return paginate(
    jobs.map((j) => toApiJob(jobAsOf(j, now), undefined)),
    req,
    deps.config,
  );
}
