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

function fail(kind: string, name: string, shape: string, field: string): never {
  throw RpcError.invalidArgument(
    `Resource name "${truncate(name)}" is not a valid ${kind} name; expected "${shape}".`,
    field,
  );
}

export function parseLocationName(name: string, field = 'parent'): LocationName {
  const p = name.split('/');
  if (
    p.length !== 4 ||
    p[0] !== 'projects' ||
    p[2] !== 'locations' ||
    !PROJECT.test(p[1]!) ||
    !LOCATION.test(p[3]!)
  ) {
    fail('location', name, 'projects/{project}/locations/{location}', field);
  }
  return { project: p[1]!, location: p[3]! };
}

export function parseKeyRingName(name: string, field = 'name'): KeyRingName {
  const p = name.split('/');
  if (p.length !== 6 || p[4] !== 'keyRings' || !ID.test(p[5]!)) {
    fail('key ring', name, 'projects/{project}/locations/{location}/keyRings/{keyRing}', field);
  }
  return { ...parseLocationName(p.slice(0, 4).join('/'), field), keyRing: p[5]! };
}

export function parseCryptoKeyName(name: string, field = 'name'): CryptoKeyName {
  const p = name.split('/');
  if (p.length !== 8 || p[6] !== 'cryptoKeys' || !ID.test(p[7]!)) {
    fail(
      'crypto key',
      name,
      'projects/{project}/locations/{location}/keyRings/{keyRing}/cryptoKeys/{cryptoKey}',
      field,
    );
  }
  return { ...parseKeyRingName(p.slice(0, 6).join('/'), field), cryptoKey: p[7]! };
}

export function parseCryptoKeyVersionName(name: string, field = 'name'): CryptoKeyVersionName {
  const p = name.split('/');
  if (p.length !== 10 || p[8] !== 'cryptoKeyVersions' || !VERSION_ID.test(p[9]!)) {
    fail(
      'crypto key version',
      name,
      'projects/{project}/locations/{location}/keyRings/{keyRing}/cryptoKeys/{cryptoKey}/cryptoKeyVersions/{version}',
      field,
    );
  }
  return { ...parseCryptoKeyName(p.slice(0, 8).join('/'), field), version: p[9]! };
}

export interface EkmConnectionName extends LocationName {
  ekmConnection: string;
}

export function parseEkmConnectionName(name: string, field = 'name'): EkmConnectionName {
  const p = name.split('/');
  if (p.length !== 6 || p[4] !== 'ekmConnections' || !ID.test(p[5]!)) {
    fail(
      'EKM connection',
      name,
      'projects/{project}/locations/{location}/ekmConnections/{ekmConnection}',
      field,
    );
  }
  return { ...parseLocationName(p.slice(0, 4).join('/'), field), ekmConnection: p[5]! };
}

/** `projects/{project}/locations/{location}/ekmConfig` → its location. */
export function parseEkmConfigName(name: string, field = 'name'): LocationName {
  const p = name.split('/');
  if (p.length !== 5 || p[4] !== 'ekmConfig') {
    fail('EKM config', name, 'projects/{project}/locations/{location}/ekmConfig', field);
  }
  return parseLocationName(p.slice(0, 4).join('/'), field);
}

export const locationPath = (n: LocationName): string => `projects/${n.project}/locations/${n.location}`;
export const keyRingPath = (n: KeyRingName): string => `${locationPath(n)}/keyRings/${n.keyRing}`;
export const cryptoKeyPath = (n: CryptoKeyName): string => `${keyRingPath(n)}/cryptoKeys/${n.cryptoKey}`;
export const ekmConnectionPath = (n: EkmConnectionName): string =>
  `${locationPath(n)}/ekmConnections/${n.ekmConnection}`;
export const cryptoKeyVersionPath = (n: CryptoKeyVersionName): string =>
  `${cryptoKeyPath(n)}/cryptoKeyVersions/${n.version}`;

/** The crypto key a version belongs to: `…/cryptoKeys/k/cryptoKeyVersions/3` → `…/cryptoKeys/k`. */
export function cryptoKeyOfVersion(versionName: string): string {
  return versionName.slice(0, versionName.lastIndexOf('/cryptoKeyVersions/'));
}
