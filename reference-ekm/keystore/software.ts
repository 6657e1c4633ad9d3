import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyMaterialRef } from '../state/types.js';
import { GCM_IV_BYTES, GCM_TAG_BYTES, type GcmSealed, type KeyStore, KeyStoreError } from './key-store.js';

const SEAL_AAD_PREFIX = 'openekm-reference-ekm key seal v1:';

/**
 * Keys in software: each AES-256 key is sealed (AES-256-GCM) under a master key and the sealed blob is
 * kept in the state file, bound to its key id. The master key comes from OPENEKM_EKM_MASTER_KEY or a
 * file `master.key` (mode 0600) generated in the data directory on first use.
 */
export class SoftwareKeyStore implements KeyStore {
  readonly backend = 'software' as const;
  readonly model = 'OpenEKM software key store (AES-256-GCM, node:crypto)';
  private readonly master: KeyObject;
  private readonly masterKeyId: string;
  /** Unsealed keys, by sealed blob. Bounded: the number of keys in the state file. */
  private readonly unsealed = new Map<string, KeyObject>();
  private readonly healthKey = createSecretKey(randomBytes(32));

  constructor(options: { dataDir: string; masterKey?: Buffer }) {
    const raw = options.masterKey ?? loadOrCreateMasterKey(options.dataDir);
    if (raw.length !== 32) throw new Error('the master key must be 32 bytes');
    this.master = createSecretKey(raw);
    this.masterKeyId = createHash('sha256')
      .update('openekm master key id')
      .update(raw)
      .digest('hex')
      .slice(0, 16);
  }

  async createKey(keyId: string): Promise<KeyMaterialRef> {
    const material = randomBytes(32);
    const iv = randomBytes(GCM_IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.master, iv);
    cipher.setAAD(Buffer.from(SEAL_AAD_PREFIX + keyId));
    const ct = Buffer.concat([cipher.update(material), cipher.final()]);
    material.fill(0);
    const sealed = Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64');
    return { backend: 'software', label: keyId, masterKeyId: this.masterKeyId, sealed };
  }

  async encrypt(ref: KeyMaterialRef, plaintext: Buffer, aad: Buffer, iv?: Buffer): Promise<GcmSealed> {
    return gcmEncrypt(this.key(ref), plaintext, aad, iv ?? randomBytes(GCM_IV_BYTES));
  }

  async decrypt(ref: KeyMaterialRef, sealed: GcmSealed, aad: Buffer): Promise<Buffer> {
    return gcmDecrypt(this.key(ref), sealed, aad);
  }

  async destroyKey(ref: KeyMaterialRef): Promise<void> {
    if (ref.backend === 'software') this.unsealed.delete(ref.sealed);
  }

  async healthCheck(): Promise<void> {
    const probe = randomBytes(32);
    const sealed = gcmEncrypt(this.healthKey, probe, Buffer.alloc(0), randomBytes(GCM_IV_BYTES));
    if (!gcmDecrypt(this.healthKey, sealed, Buffer.alloc(0)).equals(probe)) {
      throw new KeyStoreError('BACKEND_ERROR', 'software health round trip returned different bytes');
    }
  }

  async close(): Promise<void> {
    this.unsealed.clear();
  }

  private key(ref: KeyMaterialRef): KeyObject {
    if (ref.backend !== 'software') {
      throw new KeyStoreError('KEY_MATERIAL_MISSING', 'the key is held by another back end');
    }
    const hit = this.unsealed.get(ref.sealed);
    if (hit) return hit;
    if (ref.masterKeyId !== this.masterKeyId) {
      throw new KeyStoreError(
        'KEY_MATERIAL_MISSING',
        `key sealed under master key ${ref.masterKeyId}, not this one`,
      );
    }
    const keyId = ref.label;
    const blob = Buffer.from(ref.sealed, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.master, blob.subarray(0, GCM_IV_BYTES));
    decipher.setAAD(Buffer.from(SEAL_AAD_PREFIX + keyId));
    decipher.setAuthTag(blob.subarray(GCM_IV_BYTES, GCM_IV_BYTES + GCM_TAG_BYTES));
    let material: Buffer;
    try {
      material = Buffer.concat([
        decipher.update(blob.subarray(GCM_IV_BYTES + GCM_TAG_BYTES)),
        decipher.final(),
      ]);
    } catch (cause) {
      throw new KeyStoreError('KEY_MATERIAL_MISSING', 'sealed key material did not verify', { cause });
    }
    const key = createSecretKey(material);
    material.fill(0);
    this.unsealed.set(ref.sealed, key);
    return key;
  }
}

function gcmEncrypt(key: KeyObject, plaintext: Buffer, aad: Buffer, iv: Buffer): GcmSealed {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

function gcmDecrypt(key: KeyObject, sealed: GcmSealed, aad: Buffer): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch (cause) {
    throw new KeyStoreError('DECRYPT_FAILED', 'authentication tag did not verify', { cause });
  }
}

function loadOrCreateMasterKey(dataDir: string): Buffer {
  const path = join(dataDir, 'master.key');
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  const raw = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  if (raw.length !== 32) throw new Error(`${path} must hold 32 bytes in base64`);
  return raw;
}
