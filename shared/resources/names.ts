/**
 * Resource names of the Cloud KMS REST v1 surface. A resource name is also its Firestore document path, so
 * parsing a name is the only validation a path needs before it touches the store.
 */
import { RpcError } from '../errors.js';

const ID = /^[a-zA-Z0-9_-]{1,63}$/;
const VERSION_ID = /^[1-9][0-9]{0,17}$/;
// Project ids and location ids are not created through this API; accept what Google accepts, loosely.
const PROJECT = /^[a-z0-9][a-z0-9.:_-]{0,99}$/i;
const LOCATION = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

export interface LocationName {
  project: string;
  location: string;
}
export interface KeyRingName extends LocationName {
  keyRing: string;
}
export interface CryptoKeyName extends KeyRingName {
  cryptoKey: string;
}
export interface CryptoKeyVersionName extends CryptoKeyName {
  version: string;
}
export interface ImportJobName extends KeyRingName {
  importJob: string;
}

export function isValidId(id: string): boolean {
  return ID.test(id);
}

export function checkId(id: string | undefined, field: string): string {
  if (id === undefined || id === '') {
    throw RpcError.invalidArgument(`The ${field} query parameter is required.`, field);
  }
  if (!ID.test(id)) {
    throw RpcError.invalidArgument(
      `${field} "${truncate(id)}" is invalid: it must be 1 to 63 characters of letters, digits, "_" or "-".`,
      field,
    );
  }
  return id;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

export interface EkmConnectionName extends LocationName {
  ekmConnection: string;
}

/** The kinds of resource name this API knows, from the project down. */
export type ResourceKind =
  | 'project'
  | 'location'
  | 'ekmConfig'
  | 'ekmConnection'
  | 'keyRing'
  | 'cryptoKey'
  | 'cryptoKeyVersion'
  | 'importJob';

/** A resource name taken apart: its kind and the ids in it. */
export type ClassifiedName =
  | { kind: 'project'; project: string }
  | ({ kind: 'location' } & LocationName)
  | ({ kind: 'ekmConfig' } & LocationName)
  | ({ kind: 'ekmConnection' } & EkmConnectionName)
  | ({ kind: 'keyRing' } & KeyRingName)
  | ({ kind: 'cryptoKey' } & CryptoKeyName)
  | ({ kind: 'cryptoKeyVersion' } & CryptoKeyVersionName)
  | ({ kind: 'importJob' } & ImportJobName);

/**
 * The kind of Cloud KMS resource `name` is shaped as, and its ids; undefined for a string of no such shape:
 *
 *   projects/{project}                                                    project
 *   projects/{project}/locations/{location}                               location
 *   projects/{project}/locations/{location}/ekmConfig                     ekmConfig
 *   projects/{project}/locations/{location}/ekmConnections/{id}           ekmConnection
 *   projects/{project}/locations/{location}/keyRings/{id}                 keyRing
 *   …/keyRings/{keyRing}/cryptoKeys/{id}                                  cryptoKey
 *   …/keyRings/{keyRing}/cryptoKeys/{cryptoKey}/cryptoKeyVersions/{id}    cryptoKeyVersion
 *   …/keyRings/{keyRing}/importJobs/{id}                                  importJob
 *
 * The shape only: the ids are taken as they are (even empty). The parse*Name functions below also check each id,
 * and are what a name must pass before it is used as a store path.
 */
export function classifyName(name: string): ClassifiedName | undefined {
  const p = name.split('/');
  if (p[0] !== 'projects') return undefined;
  const project = p[1]!;
  if (p.length === 2) return { kind: 'project', project };
  if (p[2] !== 'locations' || p.length < 4) return undefined;
  const location = { project, location: p[3]! };
  if (p.length === 4) return { kind: 'location', ...location };
  if (p.length === 5) return p[4] === 'ekmConfig' ? { kind: 'ekmConfig', ...location } : undefined;
  if (p.length === 6 && p[4] === 'ekmConnections') {
    return { kind: 'ekmConnection', ...location, ekmConnection: p[5]! };
  }
  if (p[4] !== 'keyRings') return undefined;
  const keyRing = { ...location, keyRing: p[5]! };
  if (p.length === 6) return { kind: 'keyRing', ...keyRing };
  if (p.length === 8 && p[6] === 'importJobs') return { kind: 'importJob', ...keyRing, importJob: p[7]! };
  if (p[6] !== 'cryptoKeys') return undefined;
  const cryptoKey = { ...keyRing, cryptoKey: p[7]! };
  if (p.length === 8) return { kind: 'cryptoKey', ...cryptoKey };
  if (p.length === 10 && p[8] === 'cryptoKeyVersions') {
    return { kind: 'cryptoKeyVersion', ...cryptoKey, version: p[9]! };
  }
  return undefined;
}

type Parsed<K extends ResourceKind> = Omit<Extract<ClassifiedName, { kind: K }>, 'kind'>;

/** What a name of each kind (as parse*Name accepts it) must look like, level by level. */
const LEVELS: Record<
  Exclude<ResourceKind, 'project'>,
  {
    label: string;
    shape: string;
    depth: number;
    valid: (p: string[]) => boolean;
    parent?: 'location' | 'keyRing' | 'cryptoKey';
  }
> = {
  location: {
    label: 'location',
    shape: 'projects/{project}/locations/{location}',
    depth: 4,
    valid: (p) => p[0] === 'projects' && p[2] === 'locations' && PROJECT.test(p[1]!) && LOCATION.test(p[3]!),
  },
  ekmConfig: {
    label: 'EKM config',
    shape: 'projects/{project}/locations/{location}/ekmConfig',
    depth: 5,
    valid: (p) => p[4] === 'ekmConfig',
    parent: 'location',
  },
  ekmConnection: {
    label: 'EKM connection',
    shape: 'projects/{project}/locations/{location}/ekmConnections/{ekmConnection}',
    depth: 6,
    valid: (p) => p[4] === 'ekmConnections' && ID.test(p[5]!),
    parent: 'location',
  },
  keyRing: {
    label: 'key ring',
    shape: 'projects/{project}/locations/{location}/keyRings/{keyRing}',
    depth: 6,
    valid: (p) => p[4] === 'keyRings' && ID.test(p[5]!),
    parent: 'location',
  },
  cryptoKey: {
    label: 'crypto key',
    shape: 'projects/{project}/locations/{location}/keyRings/{keyRing}/cryptoKeys/{cryptoKey}',
    depth: 8,
    valid: (p) => p[6] === 'cryptoKeys' && ID.test(p[7]!),
    parent: 'keyRing',
  },
  importJob: {
    label: 'import job',
    shape: 'projects/{project}/locations/{location}/keyRings/{keyRing}/importJobs/{importJob}',
    depth: 8,
    valid: (p) => p[6] === 'importJobs' && ID.test(p[7]!),
    parent: 'keyRing',
  },
  cryptoKeyVersion: {
    label: 'crypto key version',
    shape:
      'projects/{project}/locations/{location}/keyRings/{keyRing}/cryptoKeys/{cryptoKey}/cryptoKeyVersions/{version}',
    depth: 10,
    valid: (p) => p[8] === 'cryptoKeyVersions' && VERSION_ID.test(p[9]!),
    parent: 'cryptoKey',
  },
};

/**
 * `name` as a resource of `kind` with every id checked, or INVALID_ARGUMENT on `field`. The message names the
 * first part that is wrong, from the end of the name: a bad key ring id in a crypto key name is reported as a bad
 * key ring name.
 */
function parseAs<K extends Exclude<ResourceKind, 'project'>>(
  kind: K,
  name: string,
  field: string,
): Parsed<K> {
  const p = name.split('/');
  let level: Exclude<ResourceKind, 'project'> | undefined = kind;
  if (p.length !== LEVELS[kind].depth) fail(kind, name, field);
  for (; level !== undefined; level = LEVELS[level].parent) {
    if (!LEVELS[level].valid(p)) fail(level, p.slice(0, LEVELS[level].depth).join('/'), field);
  }
  const { kind: _, ...parts } = classifyName(name)!;
  return parts as Parsed<K>;
}

function fail(kind: Exclude<ResourceKind, 'project'>, name: string, field: string): never {
  const { label, shape } = LEVELS[kind];
  throw RpcError.invalidArgument(
    `Resource name "${truncate(name)}" is not a valid ${label} name; expected "${shape}".`,
    field,
  );
}

export function parseLocationName(name: string, field = 'parent'): LocationName {
  return parseAs('location', name, field);
}

export function parseKeyRingName(name: string, field = 'name'): KeyRingName {
  return parseAs('keyRing', name, field);
}

export function parseCryptoKeyName(name: string, field = 'name'): CryptoKeyName {
  return parseAs('cryptoKey', name, field);
}

export function parseCryptoKeyVersionName(name: string, field = 'name'): CryptoKeyVersionName {
  return parseAs('cryptoKeyVersion', name, field);
}

export function parseEkmConnectionName(name: string, field = 'name'): EkmConnectionName {
  return parseAs('ekmConnection', name, field);
}

/** `…/keyRings/{keyRing}/importJobs/{importJob}` with every id checked, or INVALID_ARGUMENT on `field`. */
export function parseImportJobName(name: string, field = 'name'): ImportJobName {
  return parseAs('importJob', name, field);
}

/** `projects/{project}/locations/{location}/ekmConfig` → its location. */
export function parseEkmConfigName(name: string, field = 'name'): LocationName {
  return parseAs('ekmConfig', name, field);
}

export const locationPath = (n: LocationName): string => `projects/${n.project}/locations/${n.location}`;
export const keyRingPath = (n: KeyRingName): string => `${locationPath(n)}/keyRings/${n.keyRing}`;
export const cryptoKeyPath = (n: CryptoKeyName): string => `${keyRingPath(n)}/cryptoKeys/${n.cryptoKey}`;
export const ekmConnectionPath = (n: EkmConnectionName): string =>
  `${locationPath(n)}/ekmConnections/${n.ekmConnection}`;

/** The crypto key a version belongs to: `…/cryptoKeys/k/cryptoKeyVersions/3` → `…/cryptoKeys/k`. */
export function cryptoKeyOfVersion(versionName: string): string {
  return versionName.slice(0, versionName.lastIndexOf('/cryptoKeyVersions/'));
}
