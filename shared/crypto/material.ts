/**
 * Internal key material of a CryptoKeyVersion: 32 random bytes made when the version is created, stored only
 * sealed under a root key from configuration. The seal is AES-256-GCM bound to the version's resource name, so
 * sealed material copied onto another version does not open. Destroying a version deletes the sealed blob.
 *
 * sealed = iv (12) ‖ ciphertext (32) ‖ tag (16), base64 in the store, tagged with the root key id.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RootKey } from '../config.js';
import { RpcError } from '../errors.js';
import type { SealedMaterial } from '../resources/types.js';

const SEAL_CONTEXT = 'openekm/material/v1\0';
const FINGERPRINT_CONTEXT = 'openekm/import-fingerprint/v1';

export class RootKeyring {
  readonly active: RootKey;
  private readonly byId: Map<string, Buffer>;

  constructor(keys: RootKey[]) {
    if (keys.length === 0) throw new Error('RootKeyring needs at least one key');
    this.active = keys[0]!;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  seal(material: Buffer, versionName: string): SealedMaterial {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.active.key, iv);
    cipher.setAAD(Buffer.from(SEAL_CONTEXT + versionName, 'utf8'));
    const ct = Buffer.concat([cipher.update(material), cipher.final()]);
    return {
      rootKeyId: this.active.id,
      sealed: Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64'),
    };
  }

  unseal(sealed: SealedMaterial, versionName: string): Buffer {
    const key = this.rootKey(sealed.rootKeyId, `The key material of ${versionName} is sealed`);
    const blob = Buffer.from(sealed.sealed, 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
      decipher.setAAD(Buffer.from(SEAL_CONTEXT + versionName, 'utf8'));
      decipher.setAuthTag(blob.subarray(blob.length - 16));
      return Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
    } catch (err) {
      throw new RpcError(
        'DATA_LOSS',
        `The stored key material of ${versionName} does not open under root key "${sealed.rootKeyId}".`,
        [],
        { cause: err },
      );
    }
  }

  /**
   * A keyed fingerprint of material imported into `versionName`: HMAC-SHA256 under a key derived from the active
   * root key. Kept when the material is destroyed, so that a re-import can prove it brings the same material
   * without the material itself being kept; without the root key it tells nothing about the material.
   */
  fingerprint(material: Buffer, versionName: string): { rootKeyId: string; value: string } {
    return {
      rootKeyId: this.active.id,
      value: fingerprintUnder(this.active.key, material, versionName).toString('base64'),
    };
  }

  /** Whether `material` is what `fingerprint` was made of (under the root key it names). */
  matchesFingerprint(
    material: Buffer,
    versionName: string,
    fingerprint: { rootKeyId: string; value: string },
  ): boolean {
    const key = this.rootKey(fingerprint.rootKeyId, `The import fingerprint of ${versionName} was made`);
    const want = Buffer.from(fingerprint.value, 'base64');
    const got = fingerprintUnder(key, material, versionName);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  /**
   * The root key `id`. Something made under a root key this instance is not configured with is an operator
   * problem, not the caller's: FAILED_PRECONDITION, `what` saying what was made under it.
   */
  private rootKey(id: string, what: string): Buffer {
    const key = this.byId.get(id);
    if (key) return key;
    throw new RpcError(
      'FAILED_PRECONDITION',
      `${what} under root key "${id}", which this service is not configured with. An operator must add that root key to OPENEKM_ROOT_KEYS.`,
    );
  }

  static generateMaterial(): Buffer {
    return randomBytes(32);
  }
}

function fingerprintUnder(rootKey: Buffer, material: Buffer, versionName: string): Buffer {
  const key = createHmac('sha256', rootKey).update(FINGERPRINT_CONTEXT).digest();
  return createHmac('sha256', key).update(`${versionName}\0`, 'utf8').update(material).digest();
}
