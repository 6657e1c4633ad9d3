/**
 * The EKM's persistent state: everything the admin CLI changes and the running server obeys.
 * It lives in one JSON file in the data directory (state.json, mode 0600). The server re-reads it
 * whenever the file changes, so CLI changes take effect on the next request without a restart.
 */

/** Key usages, named as in the AWS XKS proxy API (GetKeyMetadata keyUsage). */
export const KEY_USAGES = ['ENCRYPT', 'DECRYPT', 'SIGN', 'VERIFY', 'WRAP', 'UNWRAP', 'DERIVE'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

export type KeyStatus = 'ENABLED' | 'DISABLED' | 'DESTROYED';

export type BackendName = 'software' | 'softhsm';

/** Where a key's material is. Never the material itself in clear. */
export type KeyMaterialRef =
  | { backend: 'software'; label: string; masterKeyId: string; sealed: string }
  | { backend: 'softhsm'; label: string; ckaId: string };

export interface JustificationPolicy {
  /** Allowed Key Access Justification reason names, or 'any' for every known reason. */
  allowed: string[] | 'any';
  /** Accept requests that carry no reason (or REASON_UNSPECIFIED). */
  allowMissing: boolean;
  /** Accept requests whose reason is not one this EKM knows. */
  allowUnknown: boolean;
}

export interface KeyRecord {
  keyId: string;
  createTime: string;
  status: KeyStatus;
  usage: KeyUsage[];
  /** Principals allowed to use the key: Google EKM token principals, or `xks:<prefix>` / `xks:*`. */
  grants: string[];
  justifications: JustificationPolicy;
  /** Absent once the key is destroyed. */
  material?: KeyMaterialRef;
  /** Set for coordinated keys created through the control plane (`:createKey`). */
  coordinated?: { cryptoSpaceId: string; relativeResourceName: string; createdBy: string };
  destroyTime?: string;
}

export interface XksCredential {
  accessKeyId: string;
  secretAccessKey: string;
  uriPrefix: string;
  createTime: string;
}

export type FaultKind = 'latency' | 'status' | 'hang' | 'reset' | 'garbage' | 'oversize';

export interface FaultRule {
  /** A key id, or '*' for every request (health and info included). */
  target: string;
  kind: FaultKind;
  /** For latency: milliseconds. For status: the HTTP status code. */
  value?: number;
  /** Fraction of matching requests that get the fault, applied deterministically (every 1/rate-th). */
  rate: number;
}

export interface CryptoSpace {
  cryptoSpaceId: string;
  createTime: string;
  /** Principals allowed to create, destroy and check keys in the crypto space. */
  grants: string[];
}

export interface EkmState {
  formatVersion: 1;
  /** The key store back end the data directory is bound to (set on first use). */
  backend?: BackendName;
  keys: Record<string, KeyRecord>;
  cryptoSpaces: Record<string, CryptoSpace>;
  xksCredentials: Record<string, XksCredential>;
  faults: FaultRule[];
}

export function emptyState(): EkmState {
  return { formatVersion: 1, keys: {}, cryptoSpaces: {}, xksCredentials: {}, faults: [] };
}

export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
