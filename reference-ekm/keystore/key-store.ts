import type { BackendName, KeyMaterialRef } from '../state/types.js';

/** Output of AES-256-GCM encryption inside a key store. */
export interface GcmSealed {
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/**
 * Why a key store operation failed. Protocol layers map these to their own error names;
 * the underlying cause (an HSM return value, an OS error) is kept for the log only.
 */
export type KeyStoreFailure =
  | 'DECRYPT_FAILED'
  | 'KEY_MATERIAL_MISSING'
  | 'BACKEND_UNAVAILABLE'
  | 'BACKEND_ERROR';

export class KeyStoreError extends Error {
  constructor(
    readonly failure: KeyStoreFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KeyStoreError';
  }
}

/**
 * An AES-256 key store. Key material never leaves it: callers hold only a KeyMaterialRef.
 * Two implementations pass the same tests: software (sealed under a master key) and PKCS#11 (SoftHSM2).
 */
export interface KeyStore {
  readonly backend: BackendName;
  /** Human-readable model for health reports, e.g. "SoftHSM 2.6 token openekm". */
  readonly model: string;
  /** Generates a new AES-256 key; `keyId` labels it inside the store. */
  createKey(keyId: string): Promise<KeyMaterialRef>;
  /**
   * AES-256-GCM with a fresh random 96-bit IV (or `iv` when given: tests use 16-byte IVs), 128-bit tag.
   */
  encrypt(ref: KeyMaterialRef, plaintext: Buffer, aad: Buffer, iv?: Buffer): Promise<GcmSealed>;
  /** Throws KeyStoreError('DECRYPT_FAILED') when the tag does not verify. */
  decrypt(ref: KeyMaterialRef, sealed: GcmSealed, aad: Buffer): Promise<Buffer>;
  destroyKey(ref: KeyMaterialRef): Promise<void>;
  /** A real round trip on a key that is not a customer key; throws when the store cannot serve. */
  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;
