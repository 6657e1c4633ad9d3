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
/** asymmetricSign and macSign. */
export const USE_TO_SIGN = 'cloudkms.cryptoKeyVersions.useToSign';
/** macVerify. */
export const USE_TO_VERIFY = 'cloudkms.cryptoKeyVersions.useToVerify';
/** getPublicKey. */
export const VIEW_PUBLIC_KEY = 'cloudkms.cryptoKeyVersions.viewPublicKey';
/** generateRandomBytes, checked on the location. */
export const GENERATE_RANDOM_BYTES = 'cloudkms.locations.generateRandomBytes';
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

/**
 * Google's predefined Cloud KMS roles (roles/cloudkms.*) with their cloudkms.* permissions, as Google publishes
 * them (the permissions of other services these roles also hold, such as resourcemanager.projects.get, are not
 * OpenEKM's and are left out). Many name resources OpenEKM does not have (key handles, Autokey): they
 * are accepted in policies so that a policy read from Cloud KMS can be written here unchanged, and grant nothing
 * more than the permissions OpenEKM checks.
 */
const GOOGLE: Record<string, string> = {
  // Cloud KMS Admin
  admin:
    'autokeyConfigs.get autokeyConfigs.update cryptoKeyVersions.create cryptoKeyVersions.delete ' +
    'cryptoKeyVersions.destroy cryptoKeyVersions.get cryptoKeyVersions.list cryptoKeyVersions.restore ' +
    'cryptoKeyVersions.trustedImportExport cryptoKeyVersions.update ' +
    'cryptoKeyVersions.useToDecryptViaDelegation cryptoKeyVersions.useToEncryptViaDelegation ' +
    'cryptoKeys.create cryptoKeys.delete cryptoKeys.get cryptoKeys.getIamPolicy cryptoKeys.list ' +
    'cryptoKeys.setIamPolicy cryptoKeys.update ekmConfigs.get ekmConfigs.getIamPolicy ' +
    'ekmConfigs.setIamPolicy ekmConfigs.update ekmConnections.create ekmConnections.get ' +
    'ekmConnections.getIamPolicy ekmConnections.list ekmConnections.setIamPolicy ekmConnections.update ' +
    'ekmConnections.use ekmConnections.verifyConnectivity folders.showEffectiveAutokeyConfig ' +
    'importJobs.create importJobs.delete importJobs.get importJobs.getIamPolicy importJobs.list ' +
    'importJobs.setIamPolicy importJobs.useToImport kajPolicyConfigs.get kajPolicyConfigs.update ' +
    'keyHandles.create keyHandles.get keyHandles.list keyRings.create keyRings.createTagBinding ' +
    'keyRings.delete keyRings.deleteTagBinding keyRings.get keyRings.getIamPolicy keyRings.list ' +
    'keyRings.listEffectiveTags keyRings.listTagBindings keyRings.setIamPolicy locations.get ' +
    'locations.list locations.optOutKeyDeletionMsa operations.get projects.showEffectiveAutokeyConfig ' +
    'projects.showEffectiveKajEnrollmentConfig projects.showEffectiveKajPolicyConfig retiredResources.get ' +
    'retiredResources.list singleTenantHsmInstanceProposals.delete singleTenantHsmInstanceProposals.get ' +
    'singleTenantHsmInstanceProposals.list singleTenantHsmInstances.create singleTenantHsmInstances.get ' +
    'singleTenantHsmInstances.list singleTenantHsmInstances.use',
  // Cloud KMS Autokey Admin
  autokeyAdmin:
    'autokeyConfigs.get autokeyConfigs.update folders.showEffectiveAutokeyConfig ' +
    'projects.showEffectiveAutokeyConfig',
  // Cloud KMS Autokey User
  autokeyUser:
    'keyHandles.create keyHandles.get keyHandles.list operations.get projects.showEffectiveAutokeyConfig',
  // Cloud KMS CryptoKey Decrypter
  cryptoKeyDecrypter: 'cryptoKeyVersions.useToDecrypt locations.get locations.list',
  // Cloud KMS CryptoKey Decrypter Via Delegation
  cryptoKeyDecrypterViaDelegation: 'cryptoKeyVersions.useToDecryptViaDelegation locations.get locations.list',
  // Cloud KMS CryptoKey Encrypter
  cryptoKeyEncrypter: 'cryptoKeyVersions.useToEncrypt locations.get locations.list',
  // Cloud KMS CryptoKey Encrypter/Decrypter
  cryptoKeyEncrypterDecrypter:
    'cryptoKeyVersions.useToDecrypt cryptoKeyVersions.useToEncrypt locations.get locations.list',
  // Cloud KMS CryptoKey Encrypter/Decrypter Via Delegation
  cryptoKeyEncrypterDecrypterViaDelegation:
    'cryptoKeyVersions.useToDecryptViaDelegation cryptoKeyVersions.useToEncryptViaDelegation ' +
    'locations.get locations.list',
  // Cloud KMS CryptoKey Encrypter Via Delegation
  cryptoKeyEncrypterViaDelegation: 'cryptoKeyVersions.useToEncryptViaDelegation locations.get locations.list',
  // Cloud KMS Crypto Operator
  cryptoOperator:
    'cryptoKeyVersions.useToDecapsulate cryptoKeyVersions.useToDecrypt cryptoKeyVersions.useToEncrypt ' +
    'cryptoKeyVersions.useToSign cryptoKeyVersions.useToVerify cryptoKeyVersions.viewPublicKey ' +
    'locations.generateRandomBytes locations.get locations.list',
  // Cloud KMS CryptoKey Decapsulator
  decapsulator:
    'cryptoKeyVersions.useToDecapsulate cryptoKeyVersions.viewPublicKey locations.get locations.list',
  // Cloud KMS EkmConnections Admin
  ekmConnectionsAdmin:
    'ekmConfigs.get ekmConfigs.update ekmConnections.create ekmConnections.get ekmConnections.list ' +
    'ekmConnections.update ekmConnections.verifyConnectivity',
  // Cloud KMS Encryption Dashboard Viewer
  encryptionDashboardViewer: 'cryptoKeys.list protectableResources.list',
  // Cloud KMS Expert PQ Asymmetric Signing Key Manager
  expertPqcSigner: 'cryptoKeyVersions.managePqcSign locations.get locations.list',
  // Cloud KMS Expert Raw AES-CBC Key Manager
  expertRawAesCbc: 'cryptoKeyVersions.manageRawAesCbcKeys locations.get locations.list',
  // Cloud KMS Expert Raw AES-CTR Key Manager
  expertRawAesCtr: 'cryptoKeyVersions.manageRawAesCtrKeys locations.get locations.list',
  // Cloud KMS Expert Raw PKCS#1 Key Manager
  expertRawPKCS1: 'cryptoKeyVersions.manageRawPKCS1Keys locations.get locations.list',
  // Cloud KMS single-tenant HSM Executor
  hsmSingleTenantExecutor:
    'operations.get singleTenantHsmInstanceProposals.execute singleTenantHsmInstanceProposals.get ' +
    'singleTenantHsmInstanceProposals.list singleTenantHsmInstances.get singleTenantHsmInstances.list',
  // Cloud KMS single-tenant HSM Key Creator
  hsmSingleTenantKeyCreator:
    'singleTenantHsmInstances.get singleTenantHsmInstances.list singleTenantHsmInstances.use',
  // Cloud KMS single-tenant HSM Proposer
  hsmSingleTenantProposer:
    'operations.get singleTenantHsmInstanceProposals.create singleTenantHsmInstanceProposals.delete ' +
    'singleTenantHsmInstanceProposals.get singleTenantHsmInstanceProposals.list ' +
    'singleTenantHsmInstances.create singleTenantHsmInstances.get singleTenantHsmInstances.list',
  // Cloud KMS single-tenant HSM Quorum Member
  hsmSingleTenantQuorumMember:
    'operations.get singleTenantHsmInstanceProposals.approve singleTenantHsmInstanceProposals.get ' +
    'singleTenantHsmInstanceProposals.list singleTenantHsmInstances.get singleTenantHsmInstances.list',
  // Cloud KMS Importer
  importer:
    'cryptoKeyVersions.trustedImportExport importJobs.create importJobs.get importJobs.list ' +
    'importJobs.useToImport locations.get locations.list',
  // Key Access Justifications Enrollment Viewer
  keyAccessJustificationsEnrollmentConfigViewer: 'projects.showEffectiveKajEnrollmentConfig',
  // Key Access Justifications Policy Config Admin
  keyAccessJustificationsPolicyConfigAdmin:
    'kajPolicyConfigs.get kajPolicyConfigs.update projects.showEffectiveKajPolicyConfig',
  // Cloud KMS Protected Resources Viewer
  protectedResourcesViewer: 'protectedResources.search',
  // Cloud KMS CryptoKey Public Key Viewer
  publicKeyViewer: 'cryptoKeyVersions.viewPublicKey locations.get locations.list',
  // Cloud KMS Service Agent
  serviceAgent:
    'cryptoKeys.create cryptoKeys.getIamPolicy cryptoKeys.setIamPolicy keyRings.create keyRings.get',
  // Cloud KMS CryptoKey Signer
  signer: 'cryptoKeyVersions.useToSign locations.get locations.list',
  // Cloud KMS CryptoKey Signer/Verifier
  signerVerifier:
    'cryptoKeyVersions.useToSign cryptoKeyVersions.useToVerify cryptoKeyVersions.viewPublicKey ' +
    'locations.get locations.list',
  // Cloud KMS CryptoKey Verifier
  verifier: 'cryptoKeyVersions.useToVerify cryptoKeyVersions.viewPublicKey locations.get locations.list',
  // Cloud KMS Viewer
  viewer:
    'autokeyConfigs.get cryptoKeyVersions.get cryptoKeyVersions.list cryptoKeys.get cryptoKeys.list ' +
    'ekmConfigs.get ekmConnections.get ekmConnections.list folders.showEffectiveAutokeyConfig ' +
    'importJobs.get importJobs.list kajPolicyConfigs.get keyHandles.get keyHandles.list keyRings.get ' +
    'keyRings.list locations.get locations.list operations.get projects.showEffectiveAutokeyConfig ' +
    'protectableResources.list retiredResources.get retiredResources.list ' +
    'singleTenantHsmInstanceProposals.get singleTenantHsmInstanceProposals.list ' +
    'singleTenantHsmInstances.get singleTenantHsmInstances.list',
  // Cloud KMS Organization Service Agent (no cloudkms.* permissions)
  orgServiceAgent: '',
};

const get = (ps: string[]) => ps.filter((p) => /\.(get|list)$/.test(p));

/** OpenEKM's own definitions of the roles it had before Google's full list; merged with Google's below. */
const OWN: Record<string, readonly string[]> = {
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

function buildRoles(): Record<string, readonly string[]> {
  const roles: Record<string, Set<string>> = {};
  for (const [name, perms] of Object.entries(OWN)) roles[name] = new Set(perms);
  for (const [short, list] of Object.entries(GOOGLE)) {
    const name = `roles/cloudkms.${short}`;
    const set = roles[name] ?? new Set<string>();
    for (const p of list.split(' ')) if (p) set.add(`cloudkms.${p}`);
    roles[name] = set;
  }
  // The project owner holds every permission any role grants.
  const owner = roles['roles/owner']!;
  for (const set of Object.values(roles)) for (const p of set) owner.add(p);
  return Object.fromEntries(Object.entries(roles).map(([k, v]) => [k, [...v].sort()]));
}

export const ROLES: Readonly<Record<string, readonly string[]>> = buildRoles();

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
