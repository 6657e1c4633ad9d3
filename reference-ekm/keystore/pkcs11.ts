import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { KeyMaterialRef } from '../state/types.js';
import { GCM_IV_BYTES, GCM_TAG_BYTES, type GcmSealed, type KeyStore, KeyStoreError } from './key-store.js';

export interface Pkcs11Options {
  modulePath: string;
  tokenLabel: string;
  pin: string;
  /** When the token does not exist: initialise it on a free slot with this SO PIN (local/test modes). */
  initTokenSoPin?: string;
}

type Handle = Buffer;

/** One loaded module per process: PKCS#11 allows a single C_Initialize per module and process. */
const modules = new Map<string, { lib: pkcs11js.PKCS11; users: number }>();

function acquireModule(path: string): pkcs11js.PKCS11 {
  const existing = modules.get(path);
  if (existing) {
    existing.users += 1;
    return existing.lib;
  }
  const lib = new pkcs11js.PKCS11();
  lib.load(path);
  // OS locking: without it concurrent sessions crash SoftHSM.
  lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  modules.set(path, { lib, users: 1 });
  return lib;
}

function releaseModule(path: string): void {
  const entry = modules.get(path);
  if (!entry) return;
  entry.users -= 1;
  if (entry.users > 0) return;
  modules.delete(path);
  try {
    entry.lib.C_Finalize();
  } finally {
    entry.lib.close();
  }
}

const SESSION_LOST = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
]);
const BAD_CIPHERTEXT = new Set([
  'CKR_GENERAL_ERROR',
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_DATA_INVALID',
]);

function tokenLabelOf(lib: pkcs11js.PKCS11, slot: Handle): string {
  return lib.C_GetTokenInfo(slot).label.replace(/[\s\0]+$/, '');
}

/**
 * Keys inside a PKCS#11 token (SoftHSM2 in CI and the local stack). Each key is an AES-256 token object
 * generated in the token, sensitive and non-extractable, found by CKA_ID. AES-GCM runs in the token;
 * the IV is random per operation (SoftHSM cannot generate GCM IVs itself).
 */
export class Pkcs11KeyStore implements KeyStore {
  readonly backend = 'softhsm' as const;
  readonly model: string;
  private readonly lib: pkcs11js.PKCS11;
  private readonly slot: Handle;
  private session: Handle;
  private readonly handles = new Map<string, Handle>();
  private healthKey: Handle;
  private closed = false;

  constructor(private readonly options: Pkcs11Options) {
    this.lib = acquireModule(options.modulePath);
    try {
      this.slot = this.findOrInitToken();
      this.session = this.openSession();
      this.healthKey = this.generate(false, 'openekm-health-check');
      const info = this.lib.C_GetInfo();
      this.model = `${info.manufacturerID.trim()} ${info.libraryDescription.trim()} ${info.libraryVersion.major}.${info.libraryVersion.minor}, token ${options.tokenLabel}`;
    } catch (error) {
      releaseModule(options.modulePath);
      throw error;
    }
  }

  async createKey(keyId: string): Promise<KeyMaterialRef> {
    const ckaId = randomBytes(16).toString('hex');
    this.withSession(() => this.generate(true, keyId, Buffer.from(ckaId, 'hex')));
    return { backend: 'softhsm', label: keyId, ckaId };
  }

  async encrypt(ref: KeyMaterialRef, plaintext: Buffer, aad: Buffer, iv?: Buffer): Promise<GcmSealed> {
    const nonce = iv ?? randomBytes(GCM_IV_BYTES);
    const out = this.withSession(() => {
      const key = this.keyHandle(ref);
      this.lib.C_EncryptInit(this.session, gcm(nonce, aad), key);
      return this.lib.C_Encrypt(this.session, plaintext, Buffer.alloc(plaintext.length + GCM_TAG_BYTES));
    });
    return {
      iv: nonce,
      ciphertext: Buffer.from(out.subarray(0, plaintext.length)),
      tag: Buffer.from(out.subarray(plaintext.length, plaintext.length + GCM_TAG_BYTES)),
    };
  }

  async decrypt(ref: KeyMaterialRef, sealed: GcmSealed, aad: Buffer): Promise<Buffer> {
    return this.withSession(() => {
      const key = this.keyHandle(ref);
      this.lib.C_DecryptInit(this.session, gcm(sealed.iv, aad), key);
      try {
        const input = Buffer.concat([sealed.ciphertext, sealed.tag]);
        return Buffer.from(this.lib.C_Decrypt(this.session, input, Buffer.alloc(input.length)));
      } catch (cause) {
        if (BAD_CIPHERTEXT.has(pkcs11Code(cause))) {
          throw new KeyStoreError('DECRYPT_FAILED', 'authentication tag did not verify', { cause });
        }
        throw cause;
      }
    });
  }

  async destroyKey(ref: KeyMaterialRef): Promise<void> {
    if (ref.backend !== 'softhsm') return;
    this.withSession(() => {
      const handle = this.find(ref.ckaId);
      if (handle) this.lib.C_DestroyObject(this.session, handle);
      this.handles.delete(ref.ckaId);
    });
  }

  async healthCheck(): Promise<void> {
    const probe = randomBytes(32);
    const iv = randomBytes(GCM_IV_BYTES);
    const back = this.withSession(() => {
      this.lib.C_EncryptInit(this.session, gcm(iv, Buffer.alloc(0)), this.healthKey);
      const ct = this.lib.C_Encrypt(this.session, probe, Buffer.alloc(probe.length + GCM_TAG_BYTES));
      this.lib.C_DecryptInit(this.session, gcm(iv, Buffer.alloc(0)), this.healthKey);
      return this.lib.C_Decrypt(this.session, ct, Buffer.alloc(ct.length));
    });
    if (!probe.equals(back))
      throw new KeyStoreError('BACKEND_ERROR', 'token health round trip returned different bytes');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.lib.C_CloseSession(this.session);
    } catch {
      // the module is finalised next anyway
    }
    releaseModule(this.options.modulePath);
  }

  /** Runs a synchronous token operation; reopens the session once if the token dropped it. */
  private withSession<T>(operation: () => T): T {
    if (this.closed) throw new KeyStoreError('BACKEND_UNAVAILABLE', 'the PKCS#11 key store is closed');
    try {
      return operation();
    } catch (error) {
      if (error instanceof KeyStoreError) throw error;
      if (SESSION_LOST.has(pkcs11Code(error))) {
        try {
          this.handles.clear();
          this.session = this.openSession();
          this.healthKey = this.generate(false, 'openekm-health-check');
          return operation();
        } catch (retryError) {
          if (retryError instanceof KeyStoreError) throw retryError;
          throw new KeyStoreError('BACKEND_UNAVAILABLE', 'the PKCS#11 token is not available', {
            cause: retryError,
          });
        }
      }
      throw new KeyStoreError('BACKEND_ERROR', 'the PKCS#11 operation failed', { cause: error });
    }
  }

  private keyHandle(ref: KeyMaterialRef): Handle {
    if (ref.backend !== 'softhsm')
      throw new KeyStoreError('KEY_MATERIAL_MISSING', 'the key is held by another back end');
    const cached = this.handles.get(ref.ckaId);
    if (cached) return cached;
    const found = this.find(ref.ckaId);
    if (!found)
      throw new KeyStoreError('KEY_MATERIAL_MISSING', `no secret key with CKA_ID ${ref.ckaId} in the token`);
    this.handles.set(ref.ckaId, found);
    return found;
  }

  private find(ckaId: string): Handle | null {
    this.lib.C_FindObjectsInit(this.session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(ckaId, 'hex') },
    ]);
    try {
      return this.lib.C_FindObjects(this.session);
    } finally {
      this.lib.C_FindObjectsFinal(this.session);
    }
  }

  private generate(token: boolean, label: string, ckaId?: Buffer): Handle {
    const template: pkcs11js.Template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: token },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
      { type: pkcs11js.CKA_WRAP, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
    ];
    if (ckaId) template.push({ type: pkcs11js.CKA_ID, value: ckaId });
    return this.lib.C_GenerateKey(this.session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, template);
  }

  private findOrInitToken(): Handle {
    const { tokenLabel, initTokenSoPin, pin } = this.options;
    const slots = this.lib.C_GetSlotList(true);
    const slot = slots.find((s) => tokenLabelOf(this.lib, s) === tokenLabel);
    if (slot) return slot;
    if (initTokenSoPin === undefined) {
      throw new Error(
        `no PKCS#11 token labelled "${tokenLabel}" (set OPENEKM_EKM_PKCS11_TOKEN_LABEL or initialise it)`,
      );
    }
    const free = slots.find((s) => (this.lib.C_GetTokenInfo(s).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
    if (!free) throw new Error('no free PKCS#11 slot to initialise a token in');
    this.lib.C_InitToken(free, initTokenSoPin, tokenLabel.padEnd(32, ' '));
    const created = this.lib.C_GetSlotList(true).find((s) => tokenLabelOf(this.lib, s) === tokenLabel);
    if (!created) throw new Error(`initialised token "${tokenLabel}" did not appear`);
    const session = this.lib.C_OpenSession(created, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      this.lib.C_Login(session, pkcs11js.CKU_SO, initTokenSoPin);
      this.lib.C_InitPIN(session, pin);
      this.lib.C_Logout(session);
    } finally {
      this.lib.C_CloseSession(session);
    }
    return created;
  }

  private openSession(): Handle {
    const session = this.lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      this.lib.C_Login(session, pkcs11js.CKU_USER, this.options.pin);
    } catch (error) {
      // Login state is per application: another session of ours may already be logged in.
      if (pkcs11Code(error) !== 'CKR_USER_ALREADY_LOGGED_IN') {
        this.lib.C_CloseSession(session);
        throw new Error(
          `PKCS#11 login to token "${this.options.tokenLabel}" failed (${pkcs11Code(error)}); check OPENEKM_EKM_PKCS11_PIN`,
        );
      }
    }
    return session;
  }
}

function gcm(iv: Buffer, aad: Buffer): pkcs11js.Mechanism {
  const parameter: pkcs11js.GcmParams = {
    type: pkcs11js.CK_PARAMS_GCM,
    iv,
    ivBits: iv.length * 8,
    aad,
    tagBits: GCM_TAG_BYTES * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

function pkcs11Code(error: unknown): string {
  if (error instanceof Error) {
    const match = /CKR_[A-Z_]+/.exec(error.message);
    if (match) return match[0];
  }
  return 'UNKNOWN';
}
