/**
 * The routing table of the Cloud KMS REST v1 surface we serve, and which of the four functions owns each route.
 * A route names its operation, its allowed query parameters and whether it needs a caller identity.
 */
import { RUN_TASKS, USE_TO_DECRYPT, USE_TO_ENCRYPT, VIEW_STATUS } from '../access/roles.js';
import type { JsonObject } from '../resources/fields.js';

export type FunctionName = 'keyAdmin' | 'encrypt' | 'decrypt' | 'healthCheck';
export const FUNCTION_NAMES: readonly FunctionName[] = ['keyAdmin', 'encrypt', 'decrypt', 'healthCheck'];

/** What the path names: a collection under a parent, or a resource, plus an optional custom verb. */
export type Target =
  | 'health'
  | 'health.ready'
  | 'health.tasks'
  | 'health.probe'
  | 'health.ekm'
  | 'health.status'
  | 'jwks'
  | 'ekmConnections'
  | 'ekmConnection'
  | 'ekmConfig'
  | 'keyRings'
  | 'keyRing'
  | 'cryptoKeys'
  | 'cryptoKey'
  | 'cryptoKeyVersions'
  | 'cryptoKeyVersion';

export interface ParsedPath {
  target: Target;
  /** The resource name (or the parent, for a collection), without the /v1/ prefix. */
  name: string;
  verb: string;
}

export interface Route {
  fn: FunctionName;
  method: 'GET' | 'POST' | 'PATCH';
  target: Target;
  verb: string;
  operation: OperationId;
  query: readonly string[];
  authenticated: boolean;
  /**
   * The permission the caller must hold on the path's resource (the parent, for a collection) — checked once, in
   * Gateway.handle, before the operation runs. Undefined for unauthenticated routes and testIamPermissions.
   */
  permission?: string;
}

export type OperationId =
  | 'health'
  | 'ready'
  | 'runScheduledTasks'
  | 'runProbe'
  | 'ekmHealth'
  | 'statusPage'
  | 'jwks'
  | 'createEkmConnection'
  | 'getEkmConnection'
  | 'listEkmConnections'
  | 'patchEkmConnection'
  | 'verifyConnectivity'
  | 'getEkmConfig'
  | 'updateEkmConfig'
  | 'createKeyRing'
  | 'getKeyRing'
  | 'listKeyRings'
  | 'createCryptoKey'
  | 'getCryptoKey'
  | 'listCryptoKeys'
  | 'patchCryptoKey'
  | 'updatePrimaryVersion'
  | 'encrypt'
  | 'decrypt'
  | 'createCryptoKeyVersion'
  | 'getCryptoKeyVersion'
  | 'listCryptoKeyVersions'
  | 'patchCryptoKeyVersion'
  | 'destroyCryptoKeyVersion'
  | 'restoreCryptoKeyVersion'
  | 'iam';

const LIST = ['pageSize', 'pageToken', 'filter', 'orderBy'];

function r(
  fn: FunctionName,
  method: Route['method'],
  target: Target,
  verb: string,
  operation: OperationId,
  permission: string | undefined,
  query: readonly string[] = [],
  authenticated = true,
): Route {
  return permission
    ? { fn, method, target, verb, operation, query, authenticated, permission }
    : { fn, method, target, verb, operation, query, authenticated };
}

const KR = 'cloudkms.keyRings.';
const CK = 'cloudkms.cryptoKeys.';
const CKV = 'cloudkms.cryptoKeyVersions.';
const EC = 'cloudkms.ekmConnections.';

export const ROUTES: readonly Route[] = [
  r('healthCheck', 'GET', 'health', '', 'health', undefined, [], false),
  r('healthCheck', 'GET', 'health.ready', '', 'ready', undefined, [], false),
  r('healthCheck', 'POST', 'health.tasks', 'run', 'runScheduledTasks', RUN_TASKS),
  r('healthCheck', 'POST', 'health.probe', '', 'runProbe', RUN_TASKS),
  // Authenticated unless OPENEKM_STATUS_PUBLIC=true (checked in the pipeline).
  r('healthCheck', 'GET', 'health.ekm', '', 'ekmHealth', VIEW_STATUS),
  r('healthCheck', 'GET', 'health.status', '', 'statusPage', VIEW_STATUS),
  r('healthCheck', 'GET', 'jwks', '', 'jwks', undefined, [], false),
  r('keyAdmin', 'POST', 'ekmConnections', '', 'createEkmConnection', `${EC}create`, ['ekmConnectionId']),
  r('keyAdmin', 'GET', 'ekmConnections', '', 'listEkmConnections', `${EC}list`, LIST),
  r('keyAdmin', 'GET', 'ekmConnection', '', 'getEkmConnection', `${EC}get`),
  r('keyAdmin', 'PATCH', 'ekmConnection', '', 'patchEkmConnection', `${EC}update`, ['updateMask']),
  r('keyAdmin', 'GET', 'ekmConnection', 'verifyConnectivity', 'verifyConnectivity', `${EC}get`),
  r('keyAdmin', 'GET', 'ekmConfig', '', 'getEkmConfig', 'cloudkms.ekmConfigs.get'),
  r('keyAdmin', 'PATCH', 'ekmConfig', '', 'updateEkmConfig', 'cloudkms.ekmConfigs.update', ['updateMask']),
  r('keyAdmin', 'POST', 'keyRings', '', 'createKeyRing', `${KR}create`, ['keyRingId']),
  r('keyAdmin', 'GET', 'keyRings', '', 'listKeyRings', `${KR}list`, LIST),
  r('keyAdmin', 'GET', 'keyRing', '', 'getKeyRing', `${KR}get`),
  r('keyAdmin', 'POST', 'cryptoKeys', '', 'createCryptoKey', `${CK}create`, [
    'cryptoKeyId',
    'skipInitialVersionCreation',
  ]),
  r('keyAdmin', 'GET', 'cryptoKeys', '', 'listCryptoKeys', `${CK}list`, [...LIST, 'versionView']),
  r('keyAdmin', 'GET', 'cryptoKey', '', 'getCryptoKey', `${CK}get`),
  r('keyAdmin', 'PATCH', 'cryptoKey', '', 'patchCryptoKey', `${CK}update`, ['updateMask']),
  r('keyAdmin', 'POST', 'cryptoKey', 'updatePrimaryVersion', 'updatePrimaryVersion', `${CK}update`),
  r('encrypt', 'POST', 'cryptoKey', 'encrypt', 'encrypt', USE_TO_ENCRYPT),
  r('encrypt', 'POST', 'cryptoKeyVersion', 'encrypt', 'encrypt', USE_TO_ENCRYPT),
  r('decrypt', 'POST', 'cryptoKey', 'decrypt', 'decrypt', USE_TO_DECRYPT),
  // Not in Cloud KMS's URL map; routed so the caller learns to use the key name instead of a bare 404.
  r('decrypt', 'POST', 'cryptoKeyVersion', 'decrypt', 'decrypt', USE_TO_DECRYPT),
  r('keyAdmin', 'POST', 'cryptoKeyVersions', '', 'createCryptoKeyVersion', `${CKV}create`),
  r('keyAdmin', 'GET', 'cryptoKeyVersions', '', 'listCryptoKeyVersions', `${CKV}list`, [...LIST, 'view']),
  r('keyAdmin', 'GET', 'cryptoKeyVersion', '', 'getCryptoKeyVersion', `${CKV}get`),
  r('keyAdmin', 'PATCH', 'cryptoKeyVersion', '', 'patchCryptoKeyVersion', `${CKV}update`, ['updateMask']),
  r('keyAdmin', 'POST', 'cryptoKeyVersion', 'destroy', 'destroyCryptoKeyVersion', `${CKV}destroy`),
  r('keyAdmin', 'POST', 'cryptoKeyVersion', 'restore', 'restoreCryptoKeyVersion', `${CKV}restore`),
  ...(
    [
      ['keyRing', KR],
      ['cryptoKey', CK],
      ['ekmConnection', EC],
    ] as const
  ).flatMap(([t, prefix]) => [
    r('keyAdmin', 'GET', t, 'getIamPolicy', 'iam', `${prefix}getIamPolicy`, [
      'options.requestedPolicyVersion',
    ]),
    r('keyAdmin', 'POST', t, 'setIamPolicy', 'iam', `${prefix}setIamPolicy`),
    // Needs no permission (as in Google IAM): it answers only about the caller's own permissions.
    r('keyAdmin', 'POST', t, 'testIamPermissions', 'iam', undefined),
  ]),
];

/** Where the gateway publishes the public keys of its EKM tokens (served by healthCheck). */
export const JWKS_PATH = '/.well-known/openekm/jwks.json';

/** Query parameters every Google REST API accepts; they never change what an operation does here. */
export const SYSTEM_QUERY = new Set([
  ...['alt', 'fields', 'prettyPrint', 'key', 'quotaUser', 'callback'].flatMap((p) => [p, `$${p}`]),
  '$.xgafv',
  'access_token',
]);

const COLLECTIONS: Record<string, Target> = {
  keyRings: 'keyRings',
  cryptoKeys: 'cryptoKeys',
  cryptoKeyVersions: 'cryptoKeyVersions',
  ekmConnections: 'ekmConnections',
};
const RESOURCE_BY_DEPTH: Record<number, Target> = { 6: 'keyRing', 8: 'cryptoKey', 10: 'cryptoKeyVersion' };

/** Classifies a URL path; undefined when it is not one of ours at all. */
export function parsePath(path: string): ParsedPath | undefined {
  let p = path;
  try {
    p = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  if (p === '/health' || p === '/health/') return { target: 'health', name: '', verb: '' };
  if (p === '/health/ready') return { target: 'health.ready', name: '', verb: '' };
  if (p === JWKS_PATH) return { target: 'jwks', name: '', verb: '' };
  if (p === '/health/tasks:run') return { target: 'health.tasks', name: '', verb: 'run' };
  if (p === '/health/probe') return { target: 'health.probe', name: '', verb: '' };
  if (p === '/health/ekm') return { target: 'health.ekm', name: '', verb: '' };
  if (p === '/health/status') return { target: 'health.status', name: '', verb: '' };
  if (!p.startsWith('/v1/projects/')) return undefined;
  let rest = p.slice('/v1/'.length).replace(/\/$/, '');
  let verb = '';
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    verb = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const segments = rest.split('/');
  const last = segments[segments.length - 1]!;
  if (segments.length % 2 === 1 && COLLECTIONS[last] && !verb) {
    return { target: COLLECTIONS[last]!, name: segments.slice(0, -1).join('/'), verb };
  }
  if (segments[2] === 'locations' && segments[4] === 'ekmConnections' && segments.length === 6) {
    return { target: 'ekmConnection', name: rest, verb };
  }
  if (segments[2] === 'locations' && segments[4] === 'ekmConfig' && segments.length === 5) {
    return { target: 'ekmConfig', name: rest, verb };
  }
  const target = RESOURCE_BY_DEPTH[segments.length];
  if (!target) return undefined;
  const expected = {
    keyRing: ['keyRings'],
    cryptoKey: ['keyRings', 'cryptoKeys'],
    cryptoKeyVersion: ['keyRings', 'cryptoKeys', 'cryptoKeyVersions'],
  }[target as 'keyRing' | 'cryptoKey' | 'cryptoKeyVersion'];
  if (segments[2] !== 'locations' || expected.some((c, i) => segments[4 + 2 * i] !== c)) return undefined;
  return { target, name: rest, verb };
}

export interface Match {
  route?: Route;
  /** Methods that would match this path, for a 405 answer. */
  allowed: string[];
}

export function matchRoute(method: string, parsed: ParsedPath): Match {
  const candidates = ROUTES.filter((x) => x.target === parsed.target && x.verb === parsed.verb);
  return {
    route: candidates.find((x) => x.method === method),
    allowed: [...new Set(candidates.map((x) => x.method))],
  };
}

export type Body = JsonObject;
