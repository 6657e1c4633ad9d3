/**
 * Internal key material of a CryptoKeyVersion: 32 random bytes made when the version is created, stored only
 * sealed under a root key from configuration. The seal is AES-256-GCM bound to the version's resource name, so
 * sealed material copied onto another version does not open. Destroying a version deletes the sealed blob.
 *
 * sealed = iv (12) ‖ ciphertext (32) ‖ tag (16), base64 in the store, tagged with the root key id.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { RootKey } from '../config.js';
import { RpcError } from '../errors.js';
import type { SealedMaterial } from '../resources/types.js';

const SEAL_CONTEXT = 'openekm/material/v1\0';

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
    const key = this.byId.get(sealed.rootKeyId);
    if (!key) {
      // The material exists but this instance cannot open it: an operator problem, not the caller's.
      throw new RpcError(
        'FAILED_PRECONDITION',
        `The key material of ${versionName} is sealed under root key "${sealed.rootKeyId}", which this service is not configured with. An operator must add that root key to OPENEKM_ROOT_KEYS.`,
      );
    }
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

  static generateMaterial(): Buffer {
    return randomBytes(32);
  }
}
