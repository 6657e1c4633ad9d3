/**
 * Coordinated versions (EKM connections in CLOUD_KMS mode) are bound to where their key was generated: the
 * connection's replica host names and crypto space at generation time are stored on the version, and the key is
 * only ever used or destroyed through replicas of that set and while the connection keeps that crypto space.
 * Otherwise a project owner could generate a version through an EKM it controls, have it answer another
 * project's key path, then point the connection at the real EKM and use or destroy that key. The key path the
 * EKM answers must also lie inside the connection's crypto space (docs/ekm-connections.md, "Coordinated keys").
 */
import type { EkmConnection } from '../resources/types.js';
import type { ProbeTarget } from './connections.js';
import { EkmFailure } from './errors.js';

/** Where a coordinated version's key was generated. */
export interface EkmBinding {
  /** The connection's replica host names (host[:port], sorted) when the key was generated. */
  hosts: string[];
  cryptoSpacePath: string;
}

export function bindingOf(conn: Pick<EkmConnection, 'serviceResolvers' | 'cryptoSpacePath'>): EkmBinding {
  return {
    hosts: conn.serviceResolvers.map((r) => r.hostname).sort(),
    cryptoSpacePath: conn.cryptoSpacePath ?? '',
  };
}

/**
 * Throws EkmFailure UNEXPECTED_RESPONSE unless the key path an EKM answered to createKey lies inside the crypto
 * space it was asked to create the key in (`{cryptoSpacePath}/…`).
 */
export function requireInsideCryptoSpace(keyPath: string, cryptoSpacePath: string): void {
  const space = cryptoSpacePath.replace(/\/+$/, '');
  if (!keyPath.startsWith(`${space}/`) || keyPath.length === space.length + 1) {
    throw new EkmFailure(
      'UNEXPECTED_RESPONSE',
      `the EKM answered createKey with a key path outside the crypto space ${space}`,
    );
  }
}

/**
 * The replicas a bound version may use: those of the connection whose host names were in its binding, while the
 * connection keeps the crypto space. Throws EkmFailure EXTERNAL_KEY_HOST_NOT_WHITELISTED naming why when none is
 * left. A version without a binding (generated before bindings were recorded) uses every replica.
 */
export function boundReplicas(
  binding: EkmBinding | undefined,
  conn: Pick<EkmConnection, 'name' | 'cryptoSpacePath'>,
  replicas: readonly ProbeTarget[],
): ProbeTarget[] {
  if (!binding) return [...replicas];
  if ((conn.cryptoSpacePath ?? '') !== binding.cryptoSpacePath) {
    throw new EkmFailure(
      'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
      `${conn.name} no longer has the crypto space ${binding.cryptoSpacePath} this version's key was generated in`,
    );
  }
  const kept = replicas.filter((r) => binding.hosts.includes(r.replica));
  if (kept.length === 0) {
    throw new EkmFailure(
      'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
      `none of the replicas this version's key was generated through (${binding.hosts.join(', ')}) is still a replica of ${conn.name}`,
    );
  }
  return kept;
}
