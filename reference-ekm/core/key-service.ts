import { type GcmSealed, type KeyStore, KeyStoreError } from '../keystore/key-store.js';
import type { StateStore } from '../state/state-store.js';
import type { KeyRecord, KeyUsage } from '../state/types.js';
import { DomainError } from './errors.js';

/** What the caller wants to do with the key; each needs one of the listed usages. */
export type KeyOperation = 'encrypt' | 'decrypt' | 'wrap' | 'unwrap' | 'metadata';

const NEEDED_USAGE: Record<KeyOperation, KeyUsage[]> = {
  encrypt: ['ENCRYPT'],
  decrypt: ['DECRYPT'],
  wrap: ['ENCRYPT', 'WRAP'],
  unwrap: ['DECRYPT', 'UNWRAP'],
  metadata: [],
};

/**
 * The protocol-independent rules for using a key: it exists, the principal holds a grant, it is enabled,
 * its usage allows the operation. Key material stays in the key store; this holds only references.
 */
export class KeyService {
  constructor(
    readonly state: StateStore,
    readonly store: KeyStore,
  ) {}

  /** The key record if it exists and is not destroyed. */
  find(keyId: string): KeyRecord {
    const key = this.state.read().keys[keyId];
    if (!key || key.status === 'DESTROYED' || !key.material) {
      throw new DomainError('KEY_NOT_FOUND', `key ${keyId} does not exist at this EKM`);
    }
    return key;
  }

  /** Checks in the order: exists, granted, enabled, usage. `principals` match if any is granted. */
  authorize(keyId: string, principals: string[], operation: KeyOperation): KeyRecord {
    const key = this.find(keyId);
    if (!principals.some((p) => key.grants.includes(p))) {
      throw new DomainError('ACCESS_DENIED', `the caller has no grant on key ${keyId}`);
    }
    if (operation === 'metadata') return key;
    if (key.status !== 'ENABLED') throw new DomainError('KEY_DISABLED', `key ${keyId} is disabled`);
    this.requireUsage(key, operation);
    return key;
  }

  requireUsage(key: KeyRecord, operation: KeyOperation): void {
    const needed = NEEDED_USAGE[operation];
    if (needed.length > 0 && !needed.some((u) => key.usage.includes(u))) {
      throw new DomainError(
        'USAGE_NOT_ALLOWED',
        `key ${key.keyId} does not allow ${operation} (its usage is ${key.usage.join(',') || 'empty'})`,
      );
    }
  }

  async encrypt(key: KeyRecord, plaintext: Buffer, aad: Buffer): Promise<GcmSealed> {
    try {
      return await this.store.encrypt(key.material!, plaintext, aad);
    } catch (error) {
      throw fromKeyStore(error);
    }
  }

  async decrypt(key: KeyRecord, sealed: GcmSealed, aad: Buffer): Promise<Buffer> {
    try {
      return await this.store.decrypt(key.material!, sealed, aad);
    } catch (error) {
      throw fromKeyStore(error);
    }
  }
}

export function fromKeyStore(error: unknown): DomainError {
  if (error instanceof DomainError) return error;
  if (error instanceof KeyStoreError) {
    switch (error.failure) {
      case 'DECRYPT_FAILED':
        return new DomainError(
          'DECRYPT_FAILED',
          'the ciphertext, IV, tag or additional authenticated data is not valid for this key',
          { cause: error },
        );
      case 'BACKEND_UNAVAILABLE':
        return new DomainError('BACKEND_UNAVAILABLE', 'the key store is not available', { cause: error });
      default:
        return new DomainError('BACKEND_ERROR', 'the key store could not complete the operation', {
          cause: error,
        });
    }
  }
  return new DomainError('BACKEND_ERROR', 'the key store could not complete the operation', { cause: error });
}
