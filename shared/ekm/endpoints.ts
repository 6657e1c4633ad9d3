/**
 * Which external key managers this deployment may call: operator configuration (OPENEKM_EKM_ENDPOINTS or
 * OPENEKM_EKM_ENDPOINTS_FILE), never API input. Each endpoint is a URI prefix with its protocol, how we
 * authenticate, TLS trust, per-attempt timeout and region. Secrets are given by reference (an environment
 * variable or a file, as Secret Manager mounts them) and never pass through the API or Firestore.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { EkmFailure } from './errors.js';

const secretRef = z.union([z.object({ env: z.string().min(1) }), z.object({ file: z.string().min(1) })]);

const endpointSchema = z.object({
  prefix: z.url(),
  protocol: z.enum(['google-ekm-v0', 'aws-xks-v1']),
  auth: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('jwt') }),
      z.object({ type: z.literal('google-id-token') }),
      z.object({ type: z.literal('sigv4'), accessKeyId: secretRef, secretAccessKey: secretRef }),
    ])
    .optional(),
  tls: z
    .object({
      caFile: z.string().min(1).optional(),
      pinnedCertSha256: z.array(z.string().min(1)).max(10).optional(),
    })
    .optional(),
  timeoutMs: z.number().int().min(10).max(10_000).optional(),
  region: z.string().min(1).max(64).optional(),
  /** Google EKM: the dedicated key (path after the prefix) the probe wraps with; otherwise it calls GetInfo. */
  probeKeyPath: z
    .string()
    .regex(/^[A-Za-z0-9._~\-/]{1,512}$/)
    .optional(),
  /**
   * The projects whose keys may use this endpoint (absent: every project). What separates tenants on an XKS proxy,
   * whose only identity is the endpoint's credential (docs/configuration.md, "Identity at the EKM").
   */
  projects: z.array(z.string().min(1).max(100)).min(1).max(10_000).optional(),
});
type EndpointJson = z.infer<typeof endpointSchema>;

export type EkmAuth =
  | { type: 'jwt' }
  | { type: 'google-id-token' }
  | { type: 'sigv4'; accessKeyId: string; secretAccessKey: string };

export interface EkmEndpoint {
  /** Normalised: ends with "/". */
  prefix: string;
  origin: string;
  protocol: 'google-ekm-v0' | 'aws-xks-v1';
  auth: EkmAuth;
  ca?: string;
  pinnedCertSha256?: string[];
  timeoutMs: number;
  region: string;
  probeKeyPath?: string;
  /** The projects whose keys may use this endpoint; absent: every project. */
  projects?: string[];
}

export const DEFAULT_ATTEMPT_TIMEOUT_MS = 150;

function readSecret(ref: z.infer<typeof secretRef>, what: string): string {
  if ('env' in ref) {
    const v = process.env[ref.env];
    if (!v) throw new ConfigError(`${what}: environment variable ${ref.env} is not set.`);
    return v.trim();
  }
  try {
    return readFileSync(ref.file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${what}: cannot read ${ref.file}: ${(err as Error).message}`);
  }
}

function toEndpoint(e: EndpointJson, i: number): EkmEndpoint {
  const url = new URL(e.prefix);
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(
      `OPENEKM_EKM_ENDPOINTS[${i}].prefix must not carry a query, fragment or credentials.`,
    );
  }
  const prefix = e.prefix.endsWith('/') ? e.prefix : `${e.prefix}/`;
  const auth: EkmAuth =
    e.auth?.type === 'sigv4'
      ? {
          type: 'sigv4',
          accessKeyId: readSecret(e.auth.accessKeyId, `OPENEKM_EKM_ENDPOINTS[${i}].auth.accessKeyId`),
          secretAccessKey: readSecret(
            e.auth.secretAccessKey,
            `OPENEKM_EKM_ENDPOINTS[${i}].auth.secretAccessKey`,
          ),
        }
      : (e.auth ??
        (e.protocol === 'aws-xks-v1'
          ? { type: 'sigv4' as const, accessKeyId: '', secretAccessKey: '' }
          : { type: 'jwt' as const }));
  if (e.protocol === 'aws-xks-v1' && (auth.type !== 'sigv4' || !auth.accessKeyId)) {
    throw new ConfigError(
      `OPENEKM_EKM_ENDPOINTS[${i}]: aws-xks-v1 endpoints need "auth": {"type": "sigv4", "accessKeyId": {...}, "secretAccessKey": {...}}.`,
    );
  }
  if (e.protocol === 'aws-xks-v1' && !/\/kms\/xks\/v1\/keys\/$/.test(prefix)) {
    throw new ConfigError(
      `OPENEKM_EKM_ENDPOINTS[${i}].prefix of an XKS endpoint must end in /kms/xks/v1/keys/.`,
    );
  }
  let ca: string | undefined;
  if (e.tls?.caFile) {
    try {
      ca = readFileSync(e.tls.caFile, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `OPENEKM_EKM_ENDPOINTS[${i}].tls.caFile cannot be read: ${(err as Error).message}`,
      );
    }
  }
  const endpoint: EkmEndpoint = {
    prefix,
    origin: url.origin,
    protocol: e.protocol,
    auth,
    timeoutMs: e.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS,
    region: e.region ?? 'us-east-1',
  };
  if (ca) endpoint.ca = ca;
  if (e.probeKeyPath) endpoint.probeKeyPath = e.probeKeyPath;
  if (e.projects) endpoint.projects = e.projects;
  if (e.tls?.pinnedCertSha256) endpoint.pinnedCertSha256 = e.tls.pinnedCertSha256.map(normaliseFingerprint);
  return endpoint;
}

/** A SHA-256 certificate fingerprint as upper-case colon-separated hex (Node's fingerprint256 form). */
function normaliseFingerprint(f: string): string {
  const hex = /^[0-9a-fA-F:]+$/.test(f) ? f.replace(/:/g, '') : Buffer.from(f, 'base64').toString('hex');
  if (hex.length !== 64)
    throw new ConfigError(`"${f}" is not a SHA-256 certificate fingerprint (hex or base64).`);
  return hex.toUpperCase().match(/../g)!.join(':');
}

export function parseEndpoints(env: Record<string, string | undefined>): EkmEndpoint[] {
  let raw = env.OPENEKM_EKM_ENDPOINTS;
  if (!raw && env.OPENEKM_EKM_ENDPOINTS_FILE) {
    try {
      raw = readFileSync(env.OPENEKM_EKM_ENDPOINTS_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`OPENEKM_EKM_ENDPOINTS_FILE cannot be read: ${(err as Error).message}`);
    }
  }
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('OPENEKM_EKM_ENDPOINTS is not valid JSON: give an array of endpoint objects.');
  }
  const result = z.array(endpointSchema).safeParse(parsed);
  if (!result.success)
    throw new ConfigError(`OPENEKM_EKM_ENDPOINTS is invalid: ${z.prettifyError(result.error)}`);
  return result.data.map(toEndpoint);
}

export interface ResolvedKey {
  endpoint: EkmEndpoint;
  keyUri: string;
  /** Google EKM: the path after the prefix; XKS: the external key id. */
  keyPath: string;
  /** The probe target this key is reached through (a connection's replica), for replica health. */
  targetId?: string;
}

/**
 * The endpoint serving `keyUri`: the longest declared prefix it starts with. A malformed URI is
 * EXTERNAL_KEY_URI_INVALID; one outside every prefix is EXTERNAL_KEY_HOST_NOT_WHITELISTED.
 */
export function resolveKeyUri(endpoints: readonly EkmEndpoint[], keyUri: string): ResolvedKey {
  let url: URL;
  try {
    url = new URL(keyUri);
  } catch {
    throw new EkmFailure('EXTERNAL_KEY_URI_INVALID', 'not a URI');
  }
  if (url.search || url.hash || url.username || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new EkmFailure('EXTERNAL_KEY_URI_INVALID', 'unsupported URI form');
  }
  let best: EkmEndpoint | undefined;
  for (const e of endpoints) {
    if (keyUri.startsWith(e.prefix) && (!best || e.prefix.length > best.prefix.length)) best = e;
  }
  if (!best)
    throw new EkmFailure(
      'EXTERNAL_KEY_HOST_NOT_WHITELISTED',
      `no declared EKM endpoint serves ${url.origin}`,
    );
  const keyPath = keyUri.slice(best.prefix.length);
  const valid =
    best.protocol === 'aws-xks-v1'
      ? /^[A-Za-z0-9._-]{1,128}$/.test(keyPath)
      : /^[A-Za-z0-9._~\-/]{1,512}$/.test(keyPath) && !keyPath.includes('..');
  if (!valid)
    throw new EkmFailure(
      'EXTERNAL_KEY_URI_INVALID',
      'the key path after the endpoint prefix is not a valid key id',
    );
  return { endpoint: best, keyUri, keyPath };
}
