/**
 * The CryptoKeyVersion state machine and the API views of stored resources.
 *
 *   (create) → ENABLED | DISABLED          ENABLED ↔ DISABLED (patch state)
 *   ENABLED | DISABLED → DESTROY_SCHEDULED (destroy; destroyTime = now + destroyScheduledDuration)
 *   DESTROY_SCHEDULED → DISABLED           (restore; destroyTime cleared)
 *   DESTROY_SCHEDULED → DESTROYED          (destroyTime passed; material deleted; terminal)
 * Coordinated versions (an EKM connection in CLOUD_KMS mode) also pass through the EKM:
 *   (create) → PENDING_GENERATION → ENABLED | GENERATION_FAILED      (the EKM's createKey)
 *   DESTROY_SCHEDULED → PENDING_EXTERNAL_DESTRUCTION → DESTROYED | EXTERNAL_DESTRUCTION_FAILED   (destroyKey)
 */
import { RpcError } from '../errors.js';
import type {
  CryptoKey,
  CryptoKeyVersion,
  StateName,
  StoredCryptoKey,
  StoredCryptoKeyVersion,
} from './types.js';

/** True when a scheduled destruction is due at `now`. */
export function isDueForDestruction(v: StoredCryptoKeyVersion, now: Date): boolean {
  return (
    v.state === 'DESTROY_SCHEDULED' &&
    v.destroyTime !== undefined &&
    Date.parse(v.destroyTime) <= now.getTime()
  );
}

/** The stored form of a version once its due destruction has happened: material gone, state DESTROYED. */
export function destroyed(v: StoredCryptoKeyVersion): StoredCryptoKeyVersion {
  const { material: _material, destroyTime, ...rest } = v;
  const at = destroyTime ?? new Date().toISOString();
  // The internal material goes at once (crypto-shredding); a coordinated key still waits for the EKM.
  if (v.coordinated) return { ...rest, state: 'PENDING_EXTERNAL_DESTRUCTION', pendingSince: at };
  return { ...rest, state: 'DESTROYED', destroyEventTime: at };
}

/** The version as it stands at `now`: a scheduled destruction that is due has happened. */
export function asOf(v: StoredCryptoKeyVersion, now: Date): StoredCryptoKeyVersion {
  return isDueForDestruction(v, now) ? destroyed(v) : v;
}

export function toApiVersion(v: StoredCryptoKeyVersion): CryptoKeyVersion {
  const {
    material: _material,
    coordinated: _c,
    pendingSince: _p,
    hsmKey: _h,
    ekmBinding: _b,
    importFingerprint: _f,
    ...api
  } = v;
  return api;
}

export function toApiKey(k: StoredCryptoKey, primary: StoredCryptoKeyVersion | undefined): CryptoKey {
  const { primaryVersionId: _p, versionCounter: _c, ...rest } = k;
  const key: CryptoKey = { ...rest };
  if (primary && k.purpose === 'ENCRYPT_DECRYPT') key.primary = toApiVersion(primary);
  // Keep the output field order close to Cloud KMS's: name, primary, purpose, …
  const { name, primary: pv, ...others } = key;
  return pv ? { name, primary: pv, ...others } : { name, ...others };
}

export function requireTransition(v: StoredCryptoKeyVersion, to: StateName, action: string): void {
  const from = v.state;
  const ok =
    action === 'restore'
      ? to === 'DISABLED' && from === 'DESTROY_SCHEDULED'
      : (to === 'ENABLED' && (from === 'DISABLED' || from === 'ENABLED')) ||
        (to === 'DISABLED' && (from === 'ENABLED' || from === 'DISABLED')) ||
        (to === 'DESTROY_SCHEDULED' && (from === 'ENABLED' || from === 'DISABLED'));
  if (!ok) {
    throw RpcError.failedPrecondition(`${v.name} cannot be ${action}d: its state is ${from}.`, [
      {
        type: 'STATE',
        subject: v.name,
        description: `A version in state ${from} cannot be ${action}d. ${hint(from, action)}`,
      },
    ]);
  }
}

function hint(from: StateName, action: string): string {
  if (from === 'DESTROYED') return 'DESTROYED is final.';
  if (from === 'DESTROY_SCHEDULED' && action !== 'restore') return 'Restore it first.';
  if (action === 'restore') return 'Only DESTROY_SCHEDULED versions can be restored.';
  return '';
}

/** The FAILED_PRECONDITION a version that cannot be used for crypto gets. */
export function notEnabled(v: StoredCryptoKeyVersion): RpcError {
  const type =
    v.state === 'DISABLED'
      ? 'KEY_DISABLED'
      : v.state.includes('DESTROY')
        ? 'KEY_DESTROYED'
        : 'KEY_NOT_ENABLED';
  return RpcError.failedPrecondition(`${v.name} is not enabled, current state is: ${v.state}.`, [
    {
      type,
      subject: v.name,
      description: `The version must be ENABLED to be used; it is ${v.state}.${v.state === 'DISABLED' ? ' Enable it with updateMask=state.' : ''}`,
    },
  ]);
}
