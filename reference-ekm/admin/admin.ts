import { randomBytes, randomInt } from 'node:crypto';
import type { EkmMode } from '../config.js';
import { ACCESS_REASONS, DEFAULT_JUSTIFICATION_POLICY } from '../core/justification.js';
import type { GcmSealed, KeyStore } from '../keystore/key-store.js';
import type { StateStore } from '../state/state-store.js';
import {
  type CryptoSpace,
  type EkmState,
  type FaultRule,
  KEY_ID_PATTERN,
  KEY_USAGES,
  type KeyRecord,
  type KeyUsage,
  type XksCredential,
} from '../state/types.js';

/** A refused admin operation; the CLI prints the message and exits with status 2. */
export class AdminError extends Error {
  override name = 'AdminError';
}

/** The XKS principal a request under `prefix` acts as; `xks:*` grants every prefix. */
export function xksPrincipal(prefix: string): string {
  return `xks:${prefix}`;
}
export const ANY_XKS_PREFIX = 'xks:*';

export const DEFAULT_USAGE: KeyUsage[] = ['ENCRYPT', 'DECRYPT'];
export const DEFAULT_XKS_PREFIX = 'openekm';
const PREFIX_PATTERN = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function validatePrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix) || `/${prefix}/kms/xks/v1`.length > 128) {
    throw new AdminError(
      `bad XKS URI path prefix "${prefix}": use [A-Za-z0-9_-] segments separated by "/", at most 116 characters`,
    );
  }
}

export function parseUsage(spec: string): KeyUsage[] {
  if (spec === '' || spec.toUpperCase() === 'NONE') return [];
  const usage = spec.split(',').map((u) => u.trim().toUpperCase());
  for (const u of usage) {
    if (!(KEY_USAGES as readonly string[]).includes(u)) {
      throw new AdminError(
        `unknown key usage "${u}"; use a comma list of ${KEY_USAGES.join(', ')} (or NONE)`,
      );
    }
  }
  return [...new Set(usage)] as KeyUsage[];
}

/** Admin operations on the EKM's state; used by the CLI and by tests. Everything goes through the state file. */
export class EkmAdmin {
  constructor(
    private readonly options: {
      state: StateStore;
      store: KeyStore;
      defaultPrincipal: string;
      mode: EkmMode;
    },
  ) {}

  get defaultPrincipal(): string {
    return this.options.defaultPrincipal;
  }

  /**
   * Creates an AES-256 key in the key store. It is granted at once to the default principal (the local
   * gateway) and to every XKS prefix, so a new key works through both protocols; revoke to narrow it.
   */
  async createKey(
    keyId: string,
    usage: KeyUsage[] = DEFAULT_USAGE,
    extra?: Partial<KeyRecord>,
  ): Promise<KeyRecord> {
    if (!KEY_ID_PATTERN.test(keyId))
      throw new AdminError(`bad key id "${keyId}": use 1-128 of [A-Za-z0-9._-]`);
    this.checkBackend(this.options.state.read());
    if (this.options.state.read().keys[keyId])
      throw new AdminError(`key ${keyId} already exists (ids are never reused)`);
    const material = await this.options.store.createKey(keyId);
    return this.options.state.update((state) => {
      this.checkBackend(state);
      if (state.keys[keyId]) throw new AdminError(`key ${keyId} already exists (ids are never reused)`);
      state.backend = this.options.store.backend;
      const key: KeyRecord = {
        keyId,
        createTime: new Date().toISOString(),
        status: 'ENABLED',
        usage,
        grants: [this.options.defaultPrincipal, ANY_XKS_PREFIX],
        justifications: { ...DEFAULT_JUSTIFICATION_POLICY },
        material,
        ...extra,
      };
      state.keys[keyId] = key;
      return key;
    });
  }

  listKeys(): KeyRecord[] {
    return Object.values(this.options.state.read().keys).sort((a, b) => a.keyId.localeCompare(b.keyId));
  }

  showKey(keyId: string): KeyRecord {
    const key = this.options.state.read().keys[keyId];
    if (!key) throw new AdminError(`no key ${keyId}`);
    return key;
  }

  async setEnabled(keyId: string, enabled: boolean): Promise<KeyRecord> {
    return this.options.state.update((state) => {
      const key = liveKey(state, keyId);
      key.status = enabled ? 'ENABLED' : 'DISABLED';
      return key;
    });
  }

  /** Destroys the key material in the key store; the record stays as a tombstone so the id is never reused. */
  async destroyKey(keyId: string): Promise<KeyRecord> {
    const key = this.options.state.read().keys[keyId];
    if (!key) throw new AdminError(`no key ${keyId}`);
    if (key.status === 'DESTROYED') return key;
    if (key.material) await this.options.store.destroyKey(key.material);
    return this.options.state.update((state) => {
      const current = state.keys[keyId]!;
      current.status = 'DESTROYED';
      current.destroyTime = new Date().toISOString();
      delete current.material;
      current.grants = [];
      return current;
    });
  }

  /** `target` is a key id or `cryptospaces/<id>`. */
  async grant(target: string, principal = this.options.defaultPrincipal): Promise<string[]> {
    // Grants match a token's verified email, which is compared in lower case.
    principal = principal.includes('@') ? principal.toLowerCase() : principal;
    return this.changeGrants(target, (grants) =>
      grants.includes(principal) ? grants : [...grants, principal],
    );
  }

  async revoke(target: string, principal = this.options.defaultPrincipal): Promise<string[]> {
    principal = principal.includes('@') ? principal.toLowerCase() : principal;
    return this.changeGrants(target, (grants) => grants.filter((g) => g !== principal));
  }

  async setJustifications(
    keyId: string,
    reasons: string,
    flags: { allowMissing: boolean; allowUnknown: boolean },
  ): Promise<KeyRecord> {
    let allowed: string[] | 'any';
    if (reasons === 'any') {
      allowed = 'any';
    } else {
      allowed = reasons.split(',').map((r) => r.trim().toUpperCase());
      for (const r of allowed) {
        if (!(ACCESS_REASONS as readonly string[]).includes(r) || r === 'REASON_UNSPECIFIED') {
          throw new AdminError(
            `unknown justification reason "${r}"; use names such as CUSTOMER_INITIATED_ACCESS, or "any"`,
          );
        }
      }
    }
    return this.options.state.update((state) => {
      const key = liveKey(state, keyId);
      key.justifications = { allowed, allowMissing: flags.allowMissing, allowUnknown: flags.allowUnknown };
      return key;
    });
  }

  async createXksCredential(uriPrefix = DEFAULT_XKS_PREFIX): Promise<XksCredential> {
    validatePrefix(uriPrefix);
    let accessKeyId = 'OEKM';
    for (let i = 0; i < 16; i += 1) accessKeyId += BASE32[randomInt(32)];
    const credential: XksCredential = {
      accessKeyId,
      secretAccessKey: randomBytes(42).toString('base64'),
      uriPrefix,
      createTime: new Date().toISOString(),
    };
    await this.options.state.update((state) => {
      state.xksCredentials[accessKeyId] = credential;
    });
    return credential;
  }

  async revokeXksCredential(accessKeyId: string): Promise<void> {
    await this.options.state.update((state) => {
      if (!state.xksCredentials[accessKeyId]) throw new AdminError(`no XKS credential ${accessKeyId}`);
      delete state.xksCredentials[accessKeyId];
    });
  }

  listXksCredentials(): Array<Omit<XksCredential, 'secretAccessKey'>> {
    return Object.values(this.options.state.read().xksCredentials).map(
      ({ secretAccessKey: _, ...rest }) => rest,
    );
  }

  async createCryptoSpace(
    cryptoSpaceId: string,
    principal = this.options.defaultPrincipal,
  ): Promise<CryptoSpace> {
    if (!KEY_ID_PATTERN.test(cryptoSpaceId))
      throw new AdminError(`bad crypto space id "${cryptoSpaceId}": use 1-128 of [A-Za-z0-9._-]`);
    return this.options.state.update((state) => {
      const existing = state.cryptoSpaces[cryptoSpaceId];
      if (existing) return existing;
      const space: CryptoSpace = { cryptoSpaceId, createTime: new Date().toISOString(), grants: [principal] };
      state.cryptoSpaces[cryptoSpaceId] = space;
      return space;
    });
  }

  listCryptoSpaces(): CryptoSpace[] {
    return Object.values(this.options.state.read().cryptoSpaces);
  }

  async setFault(rule: FaultRule): Promise<FaultRule[]> {
    this.requireFaultMode();
    return this.options.state.update((state) => {
      state.faults = [...state.faults.filter((f) => f.target !== rule.target), rule];
      return state.faults;
    });
  }

  async clearFaults(): Promise<void> {
    await this.options.state.update((state) => {
      state.faults = [];
    });
  }

  listFaults(): FaultRule[] {
    return this.options.state.read().faults;
  }

  /**
   * Encrypts with a caller-chosen IV, for conformance tests of 16-byte IVs only. Refused in production:
   * a chosen IV is a GCM nonce-reuse hazard.
   */
  async encryptWithIvForTest(keyId: string, plaintext: Buffer, aad: Buffer, iv: Buffer): Promise<GcmSealed> {
    if (this.options.mode !== 'test')
      throw new AdminError('encryptWithIvForTest is available in test mode only');
    const key = liveKey(this.options.state.read(), keyId);
    return this.options.store.encrypt(key.material!, plaintext, aad, iv);
  }

  private requireFaultMode(): void {
    if (this.options.mode === 'production') {
      throw new AdminError(
        'fault injection is refused in production mode (OPENEKM_EKM_MODE=local or test enables it)',
      );
    }
  }

  private checkBackend(state: EkmState): void {
    if (state.backend && state.backend !== this.options.store.backend) {
      throw new AdminError(
        `this data directory holds ${state.backend} keys; set OPENEKM_EKM_BACKEND=${state.backend} or use another OPENEKM_EKM_DATA_DIR`,
      );
    }
  }

  private async changeGrants(target: string, change: (grants: string[]) => string[]): Promise<string[]> {
    return this.options.state.update((state) => {
      if (target.startsWith('cryptospaces/')) {
        const id = target.slice('cryptospaces/'.length);
        const space = state.cryptoSpaces[id];
        if (!space) throw new AdminError(`no crypto space ${id} (create it with: cryptospaces create ${id})`);
        space.grants = change(space.grants);
        return space.grants;
      }
      const key = liveKey(state, target);
      key.grants = change(key.grants);
      return key.grants;
    });
  }
}

function liveKey(state: EkmState, keyId: string): KeyRecord {
  const key = state.keys[keyId];
  if (!key) throw new AdminError(`no key ${keyId}`);
  if (key.status === 'DESTROYED') throw new AdminError(`key ${keyId} is destroyed`);
  return key;
}
