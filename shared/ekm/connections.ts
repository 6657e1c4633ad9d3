/**
 * EKM connections (EXTERNAL_VPC) as the EKM client sees them: every service resolver of a connection is one
 * replica, reached at `https://{hostname}/` with the Google EKM protocol, our JWT, and TLS that trusts exactly
 * the replica's pinned leaf certificates. Also the stable ids under which probes record each target's health.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { Certificate, EkmConnection } from '../resources/types.js';
import { DEFAULT_ATTEMPT_TIMEOUT_MS, type EkmEndpoint, type ResolvedKey } from './endpoints.js';

/** How many service resolvers (replicas) one connection may have. Cloud EKM allows one. */
export const MAX_REPLICAS = 5;
/** Pinned certificates per replica, as in Cloud KMS. */
export const MAX_CERTIFICATES = 10;

/** A place the probes check: a declared endpoint (EXTERNAL keys) or one replica of a connection. */
export interface ProbeTarget {
  id: string;
  kind: 'endpoint' | 'connection';
  /** The endpoint's URI prefix, or the connection's resource name. */
  name: string;
  /** host[:port] */
  replica: string;
  endpoint: EkmEndpoint;
}

/** The id of a target's health record: stable across instances, safe as a Firestore document id. */
function targetId(kind: ProbeTarget['kind'], name: string, replica: string): string {
  return createHash('sha256').update(`${kind}\0${name}\0${replica}`).digest('hex').slice(0, 32);
}

/** host, host:port, or an IPv4 address with an optional port; lower case. */
const HOSTNAME =
  /^(?=.{1,253}(:|$))([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[1-9][0-9]{0,4})?$/;

export function isValidHostname(h: string): boolean {
  if (!HOSTNAME.test(h)) return false;
  const port = h.includes(':') ? Number(h.slice(h.indexOf(':') + 1)) : 443;
  return port >= 1 && port <= 65535;
}

/** The SHA-256 fingerprint of a DER certificate as Node's `fingerprint256` writes it (what the pinning compares). */
function nodeFingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

/**
 * The output fields Cloud KMS fills in for a pinned certificate. Throws a plain Error with a reason when the
 * bytes are not one DER X.509 certificate (the caller turns it into INVALID_ARGUMENT).
 */
export function parseCertificate(rawDer: string): Certificate {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(rawDer)) throw new Error('rawDer is not base64');
  const der = Buffer.from(rawDer.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    throw new Error('rawDer is not a DER-encoded X.509 certificate');
  }
  if (!cert.raw.equals(der)) throw new Error('rawDer holds more than one DER certificate');
  const dns = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
  return {
    rawDer: der.toString('base64'),
    parsed: true,
    issuer: cert.issuer.replace(/\n/g, ', '),
    subject: cert.subject.replace(/\n/g, ', '),
    subjectAlternativeDnsNames: dns,
    notBeforeTime: new Date(cert.validFrom).toISOString(),
    notAfterTime: new Date(cert.validTo).toISOString(),
    serialNumber: cert.serialNumber.toLowerCase(),
    sha256Fingerprint: createHash('sha256').update(der).digest('hex'),
  };
}

/** The replicas of a connection as EKM targets, in the connection's order. */
export function connectionTargets(
  conn: Pick<EkmConnection, 'name' | 'serviceResolvers'>,
  timeoutMs = DEFAULT_ATTEMPT_TIMEOUT_MS,
): ProbeTarget[] {
  return conn.serviceResolvers.map((r) => {
    const origin = `https://${r.hostname}`;
    const endpoint: EkmEndpoint = {
      prefix: `${origin}/`,
      origin,
      protocol: 'google-ekm-v0',
      auth: { type: 'jwt' },
      pinnedCertSha256: r.serverCertificates.map((c) => nodeFingerprint(Buffer.from(c.rawDer, 'base64'))),
      timeoutMs,
      region: '',
    };
    return {
      id: targetId('connection', conn.name, r.hostname),
      kind: 'connection',
      name: conn.name,
      replica: r.hostname,
      endpoint,
    };
  });
}

/** The declared endpoints (EXTERNAL keys) as probe targets. */
export function endpointTargets(endpoints: readonly EkmEndpoint[]): ProbeTarget[] {
  return endpoints.map((e) => {
    const replica = new URL(e.origin).host;
    return {
      id: targetId('endpoint', e.prefix, replica),
      kind: 'endpoint',
      name: e.prefix,
      replica,
      endpoint: e,
    };
  });
}

/** A key path on each replica of a connection: the candidates one EXTERNAL_VPC request may use. */
export function replicaKeys(targets: readonly ProbeTarget[], keyPath: string): ResolvedKey[] {
  return targets.map((t) => ({
    endpoint: t.endpoint,
    keyUri: `${t.endpoint.prefix}${keyPath}`,
    keyPath,
    targetId: t.id,
  }));
}
