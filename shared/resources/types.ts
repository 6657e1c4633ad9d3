/**
 * Resource shapes and enums of Cloud KMS v1 as proto3 JSON (lowerCamelCase, enums by NAME, timestamps as
 * RFC 3339 strings, durations as "86400s"). Stored documents use the same shapes plus a few internal fields,
 * which `toApi*` strips before anything leaves the core.
 */

export const ProtectionLevel = {
  PROTECTION_LEVEL_UNSPECIFIED: 0,
  SOFTWARE: 1,
  HSM: 2,
  EXTERNAL: 3,
  EXTERNAL_VPC: 4,
  HSM_SINGLE_TENANT: 5,
} as const;
export type ProtectionLevelName = keyof typeof ProtectionLevel;

export const CryptoKeyPurpose = {
  CRYPTO_KEY_PURPOSE_UNSPECIFIED: 0,
  ENCRYPT_DECRYPT: 1,
  ASYMMETRIC_SIGN: 5,
  ASYMMETRIC_DECRYPT: 6,
  RAW_ENCRYPT_DECRYPT: 7,
  MAC: 9,
  KEY_ENCAPSULATION: 10,
  AES_WRAPPING: 11,
} as const;
export type CryptoKeyPurposeName = keyof typeof CryptoKeyPurpose;

/** google.cloud.kms.v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm: names and numbers as in resources.proto. */
export const CryptoKeyVersionAlgorithm = {
  CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED: 0,
  GOOGLE_SYMMETRIC_ENCRYPTION: 1,
  AES_128_GCM: 41,
  AES_256_GCM: 19,
  AES_128_CBC: 42,
  AES_256_CBC: 43,
  AES_128_CTR: 44,
  AES_256_CTR: 45,
  RSA_SIGN_PSS_2048_SHA256: 2,
  RSA_SIGN_PSS_3072_SHA256: 3,
  RSA_SIGN_PSS_4096_SHA256: 4,
  RSA_SIGN_PSS_4096_SHA512: 15,
  RSA_SIGN_PKCS1_2048_SHA256: 5,
  RSA_SIGN_PKCS1_3072_SHA256: 6,
  RSA_SIGN_PKCS1_4096_SHA256: 7,
  RSA_SIGN_PKCS1_4096_SHA512: 16,
  RSA_SIGN_RAW_PKCS1_2048: 28,
  RSA_SIGN_RAW_PKCS1_3072: 29,
  RSA_SIGN_RAW_PKCS1_4096: 30,
  RSA_DECRYPT_OAEP_2048_SHA256: 8,
  RSA_DECRYPT_OAEP_3072_SHA256: 9,
  RSA_DECRYPT_OAEP_4096_SHA256: 10,
  RSA_DECRYPT_OAEP_4096_SHA512: 17,
  RSA_DECRYPT_OAEP_2048_SHA1: 37,
  RSA_DECRYPT_OAEP_3072_SHA1: 38,
  RSA_DECRYPT_OAEP_4096_SHA1: 39,
  EC_SIGN_P256_SHA256: 12,
  EC_SIGN_P384_SHA384: 13,
  EC_SIGN_SECP256K1_SHA256: 31,
  EC_SIGN_ED25519: 40,
  HMAC_SHA256: 32,
  HMAC_SHA1: 33,
  HMAC_SHA384: 34,
  HMAC_SHA512: 35,
  HMAC_SHA224: 36,
  EXTERNAL_SYMMETRIC_ENCRYPTION: 18,
  ML_KEM_768: 47,
  ML_KEM_1024: 48,
  KEM_XWING: 63,
  PQ_SIGN_ML_DSA_44: 68,
  PQ_SIGN_ML_DSA_65: 56,
  PQ_SIGN_ML_DSA_87: 69,
  PQ_SIGN_SLH_DSA_SHA2_128S: 57,
  PQ_SIGN_HASH_SLH_DSA_SHA2_128S_SHA256: 60,
  PQ_SIGN_ML_DSA_44_EXTERNAL_MU: 70,
  PQ_SIGN_ML_DSA_65_EXTERNAL_MU: 67,
  PQ_SIGN_ML_DSA_87_EXTERNAL_MU: 71,
  AES_256_KWP: 73,
} as const;
export type AlgorithmName = keyof typeof CryptoKeyVersionAlgorithm;

export const CryptoKeyVersionState = {
  CRYPTO_KEY_VERSION_STATE_UNSPECIFIED: 0,
  PENDING_GENERATION: 5,
  ENABLED: 1,
  DISABLED: 2,
  DESTROYED: 3,
  DESTROY_SCHEDULED: 4,
  PENDING_IMPORT: 6,
  IMPORT_FAILED: 7,
  GENERATION_FAILED: 8,
  PENDING_EXTERNAL_DESTRUCTION: 9,
  EXTERNAL_DESTRUCTION_FAILED: 10,
} as const;
export type StateName = keyof typeof CryptoKeyVersionState;

/** google.cloud.kms.v1.PublicKey.PublicKeyFormat (getPublicKey's `publicKeyFormat`). */
export const PublicKeyFormat = {
  PUBLIC_KEY_FORMAT_UNSPECIFIED: 0,
  PEM: 1,
  DER: 2,
  NIST_PQC: 3,
  XWING_RAW_BYTES: 4,
} as const;
export type PublicKeyFormatName = keyof typeof PublicKeyFormat;

/** google.cloud.kms.v1.ImportJob.ImportMethod. */
export const ImportMethod = {
  IMPORT_METHOD_UNSPECIFIED: 0,
  RSA_OAEP_3072_SHA1_AES_256: 1,
  RSA_OAEP_4096_SHA1_AES_256: 2,
  RSA_OAEP_3072_SHA256_AES_256: 3,
  RSA_OAEP_4096_SHA256_AES_256: 4,
  RSA_OAEP_3072_SHA256: 5,
  RSA_OAEP_4096_SHA256: 6,
  HPKE_KEM_ML_KEM_768_HKDF_SHA256_AES_256_GCM: 8,
  HPKE_KEM_ML_KEM_1024_HKDF_SHA256_AES_256_GCM: 9,
  HPKE_KEM_XWING_HKDF_SHA256_AES_256_GCM: 10,
} as const;
export type ImportMethodName = keyof typeof ImportMethod;

/**
 * google.cloud.kms.v1.ImportJob.ImportJobState. Its numbers differ from CryptoKeyVersionState's (which owns the
 * JSON field name `state` in enumsByField): OpenEKM never answers PENDING_GENERATION for a job, and ACTIVE and
 * EXPIRED are not version states, so they are always rendered by name, which every client accepts.
 */
export const ImportJobState = {
  IMPORT_JOB_STATE_UNSPECIFIED: 0,
  PENDING_GENERATION: 1,
  ACTIVE: 2,
  EXPIRED: 3,
} as const;
export type ImportJobStateName = keyof typeof ImportJobState;

export const CryptoKeyVersionView = {
  CRYPTO_KEY_VERSION_VIEW_UNSPECIFIED: 0,
  FULL: 1,
} as const;

export const AccessReason = {
  REASON_UNSPECIFIED: 0,
  CUSTOMER_INITIATED_SUPPORT: 1,
  GOOGLE_INITIATED_SERVICE: 2,
  THIRD_PARTY_DATA_REQUEST: 3,
  GOOGLE_INITIATED_REVIEW: 4,
  CUSTOMER_INITIATED_ACCESS: 5,
  GOOGLE_INITIATED_SYSTEM_OPERATION: 6,
  REASON_NOT_EXPECTED: 7,
  MODIFIED_CUSTOMER_INITIATED_ACCESS: 8,
  MODIFIED_GOOGLE_INITIATED_SYSTEM_OPERATION: 9,
  GOOGLE_RESPONSE_TO_PRODUCTION_ALERT: 10,
  CUSTOMER_AUTHORIZED_WORKFLOW_SERVICING: 11,
} as const;
export type AccessReasonName = keyof typeof AccessReason;

export const KeyManagementMode = {
  KEY_MANAGEMENT_MODE_UNSPECIFIED: 0,
  MANUAL: 1,
  CLOUD_KMS: 2,
} as const;
export type KeyManagementModeName = keyof typeof KeyManagementMode;

/** Every enum of the API by the JSON field names it appears under; used to render integers on request. */
export const enumsByField: Record<string, Record<string, number>> = {
  protectionLevel: ProtectionLevel,
  purpose: CryptoKeyPurpose,
  algorithm: CryptoKeyVersionAlgorithm,
  state: CryptoKeyVersionState,
  allowedAccessReasons: AccessReason,
  keyManagementMode: KeyManagementMode,
  publicKeyFormat: PublicKeyFormat,
  importMethod: ImportMethod,
};

export interface KeyRing {
  name: string;
  createTime: string;
}

export interface ExternalProtectionLevelOptions {
  externalKeyUri?: string;
  ekmConnectionKeyPath?: string;
}

export interface CryptoKeyVersion {
  name: string;
  state: StateName;
  protectionLevel: ProtectionLevelName;
  algorithm: AlgorithmName;
  createTime: string;
  generateTime?: string;
  destroyTime?: string;
  destroyEventTime?: string;
  externalProtectionLevelOptions?: ExternalProtectionLevelOptions;
  /** Imported versions: the import job used, when the material arrived, and why an import failed. */
  importJob?: string;
  importTime?: string;
  importFailureReason?: string;
  reimportEligible?: boolean;
  generationFailureReason?: string;
  externalDestructionFailureReason?: string;
}

export interface CryptoKey {
  name: string;
  primary?: CryptoKeyVersion;
  purpose: CryptoKeyPurposeName;
  createTime: string;
  nextRotationTime?: string;
  rotationPeriod?: string;
  versionTemplate: { protectionLevel: ProtectionLevelName; algorithm: AlgorithmName };
  labels?: Record<string, string>;
  importOnly: boolean;
  destroyScheduledDuration: string;
  cryptoKeyBackend?: string;
  keyAccessJustificationsPolicy?: { allowedAccessReasons: AccessReasonName[] };
}

/** Internal key material, only ever stored sealed under a root key. */
export interface SealedMaterial {
  rootKeyId: string;
  /** base64 of the sealed blob (see shared/crypto/material.ts). */
  sealed: string;
}

export interface StoredCryptoKey extends Omit<CryptoKey, 'primary'> {
  primaryVersionId?: string;
  /** The last version number handed out; the next create gets this + 1. */
  versionCounter: number;
}

export interface StoredCryptoKeyVersion extends CryptoKeyVersion {
  material?: SealedMaterial;
  /** The EKM creates and destroys this version's external key (an EKM connection in CLOUD_KMS mode). */
  coordinated?: boolean;
  /** Since when the version waits for its EKM (PENDING_GENERATION, PENDING_EXTERNAL_DESTRUCTION). */
  pendingSince?: string;
  /** HSM versions: the token object that holds the key (its CKA_ID in hex, and label); never material. */
  hsmKey?: { ckaId: string; label: string };
  /**
   * Imported versions: a keyed fingerprint of the imported material (HMAC under a key derived from a root key,
   * shared/crypto/material.ts), kept after destruction so that a re-import can check it brings the same material.
   */
  importFingerprint?: { rootKeyId: string; value: string };
  /** Coordinated versions: the replica hosts and crypto space the key was generated through (ekm/binding.ts). */
  ekmBinding?: { hosts: string[]; cryptoSpacePath: string };
}

/** google.cloud.kms.v1.ImportJob as OpenEKM answers it (RSA wrapping keys only; no attestation). */
export interface ImportJob {
  name: string;
  importMethod: ImportMethodName;
  protectionLevel: ProtectionLevelName;
  createTime: string;
  generateTime?: string;
  expireTime: string;
  expireEventTime?: string;
  state: ImportJobStateName;
  publicKey?: { pem?: string; data?: string };
  publicKeyFormat?: PublicKeyFormatName;
}

export interface StoredImportJob extends Omit<ImportJob, 'publicKey' | 'publicKeyFormat'> {
  /** The wrapping key pair's public half (SubjectPublicKeyInfo, PEM). */
  publicKeyPem: string;
  /** The wrapping key pair's private half (PKCS#8 DER), only ever sealed under a root key. */
  privateKey: SealedMaterial;
}

/** A pinned leaf certificate of an EKM replica: rawDer is the input, the rest is parsed output. */
export interface Certificate {
  rawDer: string;
  parsed?: boolean;
  issuer?: string;
  subject?: string;
  subjectAlternativeDnsNames?: string[];
  notBeforeTime?: string;
  notAfterTime?: string;
  serialNumber?: string;
  sha256Fingerprint?: string;
}

/** One replica of an EKM connection. */
export interface ServiceResolver {
  /** Recorded as given; OpenEKM reaches the replica by `hostname` (docs/ekm-connections.md). */
  serviceDirectoryService?: string;
  endpointFilter?: string;
  /** host or host:port, used for the TCP connection, TLS (SNI) and the HTTP Host header. */
  hostname: string;
  serverCertificates: Certificate[];
}

export interface EkmConnection {
  name: string;
  createTime: string;
  serviceResolvers: ServiceResolver[];
  etag: string;
  keyManagementMode: KeyManagementModeName;
  cryptoSpacePath?: string;
}

export interface EkmConfig {
  name: string;
  defaultEkmConnection?: string;
}
