import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { BackendName } from './state/types.js';

export type EkmMode = 'local' | 'test' | 'production';

export interface TrustedIssuer {
  issuer: string;
  jwksUrl?: string;
  jwksFile?: string;
}

/** Everything configurable, resolved and validated. Built from the environment by configFromEnv(). */
export interface EkmConfig {
  dataDir: string;
  host: string;
  httpPort: number;
  httpsPort: number;
  backend: BackendName;
  mode: EkmMode;
  trustedIssuers: TrustedIssuer[];
  defaultPrincipal: string;
  /** Whether OPENEKM_EKM_DEFAULT_PRINCIPAL was set (else the CLI follows the running server's default). */
  defaultPrincipalSet: boolean;
  extraAudiences: string[];
  xksRegion: string;
  /** Requests per second per caller (Google EKM principal or XKS prefix); 0 = unlimited. */
  rateLimit: number;
  masterKey?: Buffer;
  pkcs11: { modulePath?: string; tokenLabel: string; pin?: string };
  tls: { certFile?: string; keyFile?: string; hostnames: string[] };
}

export const DEFAULTS = {
  dataDir: '.openekm/ekm',
  host: '127.0.0.1',
  httpPort: 8190,
  httpsPort: 8191,
  defaultPrincipal: 'gateway@openekm.local',
  xksRegion: 'us-east-1',
  tokenLabel: 'openekm',
} as const;

export const SOFTHSM_MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

export function findSoftHsmModule(): string | undefined {
  return SOFTHSM_MODULE_CANDIDATES.find((path) => existsSync(path));
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function port(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(`${name}=${raw} is not a TCP port (0-65535; 0 picks a free port)`);
  }
  return Number(raw);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name}=${raw} is not valid; use one of: ${allowed.join(', ')}`);
  }
  return raw as T;
}

export function parseTrustedIssuers(raw: string, source = 'OPENEKM_EKM_TRUSTED_ISSUERS'): TrustedIssuer[] {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ConfigError(
      `${source} is not JSON; expected [{"issuer": "...", "jwksUrl": "..."} or {"issuer", "jwksFile"}]`,
    );
  }
  if (!Array.isArray(value)) throw new ConfigError(`${source} must be a JSON array`);
  return value.map((entry, index) => validateIssuer(entry, `${source}[${index}]`));
}

export function validateIssuer(entry: unknown, where: string): TrustedIssuer {
  if (typeof entry !== 'object' || entry === null) throw new ConfigError(`${where} must be an object`);
  const { issuer, jwksUrl, jwksFile } = entry as Record<string, unknown>;
  if (typeof issuer !== 'string' || issuer === '')
    throw new ConfigError(`${where}.issuer must be a non-empty string`);
  if ((jwksUrl === undefined) === (jwksFile === undefined)) {
    throw new ConfigError(`${where} needs exactly one of jwksUrl or jwksFile`);
  }
  if (jwksUrl !== undefined) {
    if (typeof jwksUrl !== 'string' || !/^https?:\/\//.test(jwksUrl)) {
      throw new ConfigError(`${where}.jwksUrl must be an http(s) URL`);
    }
    return { issuer, jwksUrl };
  }
  if (typeof jwksFile !== 'string' || jwksFile === '')
    throw new ConfigError(`${where}.jwksFile must be a path`);
  return { issuer, jwksFile };
}

/** Reads the OPENEKM_EKM_* environment. Throws ConfigError naming the variable on a bad value. */
export function configFromEnv(env: Env = process.env, cwd = process.cwd()): EkmConfig {
  // The local stack keeps the EKM's data in its state directory (OPENEKM_STATE_DIR), so the CLI follows it.
  const dataDirRaw =
    env.OPENEKM_EKM_DATA_DIR || (env.OPENEKM_STATE_DIR ? `${env.OPENEKM_STATE_DIR}/ekm` : DEFAULTS.dataDir);
  const rateRaw = env.OPENEKM_EKM_RATE_LIMIT ?? '0';
  if (!/^\d+$/.test(rateRaw))
    throw new ConfigError(
      `OPENEKM_EKM_RATE_LIMIT=${rateRaw} must be a whole number of requests per second (0 = unlimited)`,
    );
  let masterKey: Buffer | undefined;
  if (env.OPENEKM_EKM_MASTER_KEY) {
    masterKey = Buffer.from(env.OPENEKM_EKM_MASTER_KEY, 'base64');
    if (masterKey.length !== 32) throw new ConfigError('OPENEKM_EKM_MASTER_KEY must be 32 bytes in base64');
  }
  const certFile = env.OPENEKM_EKM_TLS_CERT || undefined;
  const keyFile = env.OPENEKM_EKM_TLS_KEY || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('set both OPENEKM_EKM_TLS_CERT and OPENEKM_EKM_TLS_KEY, or neither');
  }
  const list = (name: string) =>
    (env[name] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const region = env.OPENEKM_EKM_XKS_REGION || DEFAULTS.xksRegion;
  if (!/^[a-z0-9-]{1,32}$/.test(region))
    throw new ConfigError(`OPENEKM_EKM_XKS_REGION=${region} is not a region name`);
  return {
    dataDir: isAbsolute(dataDirRaw) ? dataDirRaw : resolve(cwd, dataDirRaw),
    host: env.OPENEKM_EKM_HOST || DEFAULTS.host,
    httpPort: port(env, 'OPENEKM_EKM_HTTP_PORT', DEFAULTS.httpPort),
    httpsPort: port(env, 'OPENEKM_EKM_HTTPS_PORT', DEFAULTS.httpsPort),
    backend: oneOf(env, 'OPENEKM_EKM_BACKEND', ['software', 'softhsm'], 'software'),
    mode: oneOf(env, 'OPENEKM_EKM_MODE', ['local', 'test', 'production'], 'local'),
    trustedIssuers: env.OPENEKM_EKM_TRUSTED_ISSUERS
      ? parseTrustedIssuers(env.OPENEKM_EKM_TRUSTED_ISSUERS)
      : [],
    defaultPrincipal: (env.OPENEKM_EKM_DEFAULT_PRINCIPAL || DEFAULTS.defaultPrincipal).toLowerCase(),
    defaultPrincipalSet: Boolean(env.OPENEKM_EKM_DEFAULT_PRINCIPAL),
    extraAudiences: list('OPENEKM_EKM_AUDIENCES'),
    xksRegion: region,
    rateLimit: Number(rateRaw),
    masterKey,
    pkcs11: {
      modulePath: env.OPENEKM_EKM_PKCS11_MODULE || undefined,
      tokenLabel: env.OPENEKM_EKM_PKCS11_TOKEN_LABEL || DEFAULTS.tokenLabel,
      pin: env.OPENEKM_EKM_PKCS11_PIN || undefined,
    },
    tls: { certFile, keyFile, hostnames: list('OPENEKM_EKM_TLS_HOSTNAMES') },
  };
}
