/**
 * The predefined roles OpenEKM knows and the permissions each grants, named as Cloud KMS names them
 * (`cloudkms.{resource}.{verb}`), and the member forms a policy binding may name. docs/iam.md lists them.
 */

const KEY_RINGS = ['create', 'get', 'list', 'getIamPolicy', 'setIamPolicy'].map(
  (v) => `cloudkms.keyRings.${v}`,
);
const CRYPTO_KEYS = ['create', 'get', 'list', 'update', 'getIamPolicy', 'setIamPolicy'].map(
  (v) => `cloudkms.cryptoKeys.${v}`,
);
const VERSIONS_ADMIN = ['create', 'get', 'list', 'update', 'destroy', 'restore'].map(
  (v) => `cloudkms.cryptoKeyVersions.${v}`,
);
export const USE_TO_ENCRYPT = 'cloudkms.cryptoKeyVersions.useToEncrypt';
export const USE_TO_DECRYPT = 'cloudkms.cryptoKeyVersions.useToDecrypt';
const EKM_CONNECTIONS = [
  'create',
  'get',
  'list',
  'update',
  'use',
  'verifyConnectivity',
  'getIamPolicy',
  'setIamPolicy',
].map((v) => `cloudkms.ekmConnections.${v}`);
const EKM_CONFIGS = ['cloudkms.ekmConfigs.get', 'cloudkms.ekmConfigs.update'];

/**
 * Runs the scheduled work (`POST /health/tasks:run`: due destructions, EKM probes) for every project at once.
 * No role grants it: it belongs to the deployment's operators (OPENEKM_OPERATORS) and default owners.
 */
export const RUN_TASKS = 'openekm.tasks.run';
/** Reads the EKM health report and status page (`/health/ekm`, `/health/status`); held like RUN_TASKS. */
export const VIEW_STATUS = 'openekm.status.get';
/** Permissions of the deployment itself rather than of a project's resources. */
export const DEPLOYMENT_PERMISSIONS: ReadonlySet<string> = new Set([RUN_TASKS, VIEW_STATUS]);

const get = (ps: string[]) => ps.filter((p) => /\.(get|list)$/.test(p));

export const ROLES: Readonly<Record<string, readonly string[]>> = {
  'roles/owner': [
    ...KEY_RINGS,
    ...CRYPTO_KEYS,
    ...VERSIONS_ADMIN,
    USE_TO_ENCRYPT,
    USE_TO_DECRYPT,
    ...EKM_CONNECTIONS,
    ...EKM_CONFIGS,
  ],
  'roles/cloudkms.admin': [
    ...KEY_RINGS,
    ...CRYPTO_KEYS,
    ...VERSIONS_ADMIN,
    ...EKM_CONNECTIONS,
    ...EKM_CONFIGS,
  ],
  'roles/cloudkms.cryptoKeyEncrypterDecrypter': [USE_TO_ENCRYPT, USE_TO_DECRYPT],
  'roles/cloudkms.cryptoKeyEncrypter': [USE_TO_ENCRYPT],
  'roles/cloudkms.cryptoKeyDecrypter': [USE_TO_DECRYPT],
  'roles/cloudkms.viewer': get([
    ...KEY_RINGS,
    ...CRYPTO_KEYS,
    ...VERSIONS_ADMIN,
    ...EKM_CONNECTIONS,
    ...EKM_CONFIGS,
  ]),
  'roles/cloudkms.ekmConnectionsAdmin': [...EKM_CONNECTIONS, ...EKM_CONFIGS],
  'roles/cloudkms.ekmConnectionsViewer': get([...EKM_CONNECTIONS, ...EKM_CONFIGS]),
};

/** Every permission some role grants (what testIamPermissions can answer about). */
export const KNOWN_PERMISSIONS: ReadonlySet<string> = new Set(Object.values(ROLES).flat());

export function isKnownRole(role: string): boolean {
  return Object.hasOwn(ROLES, role);
}

const EMAIL = '[^@\\s:]+@[^@\\s:]+\\.[^@\\s:]+';
const MEMBER = new RegExp(
  `^(?:(?:user|serviceAccount|group):${EMAIL}|domain:[a-z0-9][a-z0-9.-]*\\.[a-z]{2,}|allUsers|allAuthenticatedUsers)$`,
  'i',
);

/** The member forms a binding may hold: user:, serviceAccount:, group: (an email), domain:, allUsers, allAuthenticatedUsers. */
export function isValidMember(member: string): boolean {
  return member.length <= 320 && MEMBER.test(member);
}

export const MEMBER_FORMS =
  'user:{email}, serviceAccount:{email}, group:{email}, domain:{domain}, allUsers or allAuthenticatedUsers';

/**
 * Whether a binding member names the caller. Callers are `user:<email>` or `serviceAccount:<email>` (verified
 * tokens); `domain:d` matches either whose email ends in "@d"; allUsers and allAuthenticatedUsers match every
 * caller (every IAM-checked method requires a verified token). A `group:` member never matches here: group
 * membership comes from OPENEKM_GROUPS and is resolved by the Authorizer (shared/access/iam.ts). Emails compare
 * case-insensitively.
 */
export function memberMatches(member: string, principal: string): boolean {
  if (member.toLowerCase() === principal.toLowerCase()) return true;
  if (member === 'allUsers' || member === 'allAuthenticatedUsers') return true;
  if (member.startsWith('domain:')) {
    const at = principal.lastIndexOf('@');
    return at > 0 && principal.slice(at + 1).toLowerCase() === member.slice(7).toLowerCase();
  }
  return false;
}
