/**
 * Typed configuration, read once from the environment and validated. Every problem is reported at start-up with
 * the variable's name and what a valid value looks like; nothing reads process.env after this.
 * docs/configuration.md documents every variable.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { z } from 'zod';
import type { GatewayIdentityConfig } from './access/outgoing.js';
import { defaultPrincipalForms, isPrincipalForm } from './access/principal-forms.js';
import { isValidMember, MEMBER_FORMS } from './access/roles.js';
import { DEFAULT_ALLOWED_HOSTS, type HostPolicy, hostRefusal, parseHostPolicy } from './ekm/allow-list.js';
import { type EkmEndpoint, parseEndpoints } from './ekm/endpoints.js';
import type { EkmClientSettings } from './ekm/overload.js';
import { ConfigError } from './errors.js';
import { DEFAULT_EKM_QUOTA, type EkmQuotaConfig } from './quota/ekm-quota.js';

const issuerSchema = z
  .object({
    issuer: z.string().min(1),
    audiences: z.array(z.string().min(1)).min(1),
    jwksUrl: z.url().optional(),
    jwksFile: z.string().min(1).optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
    /**
     * The principal forms this issuer may assert (docs/configuration.md): `user:*`, `user:*@example.com`,
     * `serviceAccount:*@*.iam.gserviceaccount.com`, exact principals. Default: Google's issuer any user and
     * service account, others any user.
     */
    principals: z
      .array(
        z.string().refine(isPrincipalForm, {
          message:
            'each entry is "user:<email pattern>" or "serviceAccount:<email pattern>", e.g. "user:*@example.com" (* stands for any characters but @)',
        }),
      )
      .min(1)
      .optional(),
  })
  .refine((i) => [i.jwksUrl, i.jwksFile, i.jwks].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of jwksUrl, jwksFile or jwks',
  });
export type TrustedIssuer = z.infer<typeof issuerSchema>;

export interface RootKey {
  id: string;
  key: Buffer;
}

export interface Config {
  /** Google Cloud project that holds the Firestore database (not the KMS resource projects). */
  firestoreProjectId: string;
  firestoreDatabaseId: string;
  /** How the Firestore client talks to Firestore (OPENEKM_FIRESTORE_TRANSPORT): gRPC, or REST (HTTP/1.1). */
  firestoreTransport: 'grpc' | 'rest';
  /** The first key seals new material; the rest only unseal (rotation). */
  rootKeys: RootKey[];
  trustedIssuers: TrustedIssuer[];
  /** How long resource metadata may be served from the per-instance cache, in ms (0 disables it). */
  metadataCacheMs: number;
  metadataCacheEntries: number;
  /** http:// external key URIs are accepted only for loopback hosts and only when this is true (local stack). */
  allowLoopbackHttpEkm: boolean;
  listDefaultPageSize: number;
  listMaxPageSize: number;
  /** Largest accepted request body in bytes. */
  maxRequestBytes: number;
  /** Default deadline for a request when the caller sends none, in ms. */
  requestDeadlineMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** OPENEKM_LOG_FORMAT: `json` (default, one JSON object per line) or `human` (short lines; JSON to logFile). */
  logFormat: 'json' | 'human';
  /** OPENEKM_LOG_FILE: append the JSON log lines to this file instead of stdout. */
  logFile?: string;
  /** External key managers this deployment may call (docs/configuration.md, "EKM endpoints"). */
  ekmEndpoints: EkmEndpoint[];
  /** Overload behaviour and connections of the EKM client (docs/configuration.md, "EKM client"). */
  ekmClient: EkmClientSettings;
  /** The hosts EKM connections and endpoints may reach (OPENEKM_EKM_ALLOWED_HOSTS, shared/ekm/allow-list.ts). */
  ekmHostPolicy: HostPolicy;
  /** EKM crypto requests per second per project and location (docs/audit-and-metrics.md). */
  ekmQuota: EkmQuotaConfig;
  /** Whether Data Access audit entries (reads, encrypt, decrypt) are written; Admin Activity always is. */
  auditDataAccess: boolean;
  /** OpenEKM's own identity towards EKMs; required when a Google EKM endpoint authenticates with our JWT. */
  gatewayIdentity?: GatewayIdentityConfig;
  /** IAM bootstrap (docs/iam.md): the owners of named projects (OPENEKM_PROJECT_OWNERS). */
  projectOwners: Record<string, string[]>;
  /** Owners of every project (OPENEKM_DEFAULT_OWNERS); they may also run the scheduled tasks. */
  defaultOwners: string[];
  /** Principals allowed to run the scheduled tasks (OPENEKM_OPERATORS), besides the default owners. */
  operators: string[];
  /**
   * Group membership (OPENEKM_GROUPS): group email (lower case) → its user: and serviceAccount: members. A
   * `group:` member of a binding or of the owner lists grants to these principals; Google Groups are not queried.
   */
  groups: Record<string, string[]>;
  /** Per-attempt timeout of calls through EKM connections (EXTERNAL_VPC), in ms. */
  ekmConnectionTimeoutMs: number;
  /** The dedicated key the probe wraps with on every Google EKM connection replica (never a customer key). */
  ekmProbeKeyPath?: string;
  /** How often the scheduler runs the probe; a target whose last probe is older than 3 intervals is UNKNOWN. */
  probeIntervalSeconds: number;
  /** How many probe results each target keeps (the history behind /health/ekm). */
  probeHistory: number;
  /** Whether /health/ekm and /health/status answer without authentication. */
  statusPublic: boolean;
  /**
   * How many proxies in front of the gateway append the caller's address to X-Forwarded-For
   * (OPENEKM_TRUSTED_PROXY_HOPS); 0 believes no forwarding header (docs/security.md).
   */
  trustedProxyHops: number;
  /**
   * Who may state an access reason other than the default CUSTOMER_INITIATED_ACCESS in X-OpenEKM-Access-Reason
   * (OPENEKM_ACCESS_REASON_PRINCIPALS); nobody by default.
   */
  accessReasonPrincipals: string[];
  /**
   * Separation of duties in setIamPolicy (OPENEKM_IAM_SEPARATION_OF_DUTIES, off by default as in Google IAM): a
   * caller may grant only roles whose permissions it holds itself on the resource.
   */
  iamSeparationOfDuties: boolean;
  /** The PKCS#11 token that holds HSM keys (docs/hsm.md); absent: HSM keys are refused. */
  hsm?: HsmConfig;
}

/** A PKCS#11 token for HSM keys (docs/hsm.md). */
export interface HsmConfig {
  /** Path of the vendor's PKCS#11 library (OPENEKM_HSM_MODULE). */
  modulePath: string;
  /** The token, by label (OPENEKM_HSM_TOKEN_LABEL) or by slot id (OPENEKM_HSM_SLOT); exactly one is set. */
  tokenLabel?: string;
  slotId?: number;
  /** The token's user PIN (OPENEKM_HSM_PIN or OPENEKM_HSM_PIN_FILE); never logged. */
  pin: string;
  /** How many sessions (each on its own thread) OpenEKM keeps open to the token. */
  sessions: number;
  /** Upper bound of one token call, in ms, also outside requests (the request deadline bounds it further). */
  timeoutMs: number;
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}="${raw}" is invalid: expected an integer from ${min} to ${max}.`);
  }
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (/^(true|1|yes)$/i.test(raw)) return true;
  if (/^(false|0|no)$/i.test(raw)) return false;
  throw new ConfigError(`${name}="${raw}" is invalid: expected true or false.`);
}

/** Parses "id:base64[,id:base64...]" — the first entry is the active root key. */
function parseRootKeys(raw: string, source: string): RootKey[] {
  const keys = raw
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const i = entry.indexOf(':');
      const id = i > 0 ? entry.slice(0, i) : '';
      const key = Buffer.from(entry.slice(i + 1), 'base64');
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id) || key.length !== 32) {
        throw new ConfigError(
          `${source} is invalid: each entry must be "<id>:<base64 of 32 random bytes>", e.g. "root-1:$(openssl rand -base64 32)".`,
        );
      }
      return { id, key };
    });
  if (keys.length === 0) throw new ConfigError(`${source} is empty: give at least one root key.`);
  if (new Set(keys.map((k) => k.id)).size !== keys.length)
    throw new ConfigError(`${source} repeats a root key id.`);
  return keys;
}

function rootKeysFrom(env: Env): RootKey[] {
  if (env.OPENEKM_ROOT_KEYS) return parseRootKeys(env.OPENEKM_ROOT_KEYS, 'OPENEKM_ROOT_KEYS');
  if (env.OPENEKM_ROOT_KEYS_FILE) {
    let text: string;
    try {
      text = readFileSync(env.OPENEKM_ROOT_KEYS_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`OPENEKM_ROOT_KEYS_FILE cannot be read: ${(err as Error).message}`);
    }
    return parseRootKeys(text, 'OPENEKM_ROOT_KEYS_FILE');
  }
  throw new ConfigError(
    'No root key configured: set OPENEKM_ROOT_KEYS="<id>:<base64 32 bytes>" or OPENEKM_ROOT_KEYS_FILE (npm start makes one for the local stack).',
  );
}

function issuersFrom(env: Env): TrustedIssuer[] {
  const raw = env.OPENEKM_TRUSTED_ISSUERS;
  if (!raw) {
    throw new ConfigError(
      'OPENEKM_TRUSTED_ISSUERS is not set: give a JSON array of {"issuer","audiences":[...],"jwksUrl"|"jwksFile"|"jwks"} (npm start sets the local issuer).',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('OPENEKM_TRUSTED_ISSUERS is not valid JSON.');
  }
  const result = z.array(issuerSchema).min(1).safeParse(parsed);
  if (!result.success) {
    throw new ConfigError(`OPENEKM_TRUSTED_ISSUERS is invalid: ${z.prettifyError(result.error)}`);
  }
  const issuers = result.data;
  if (new Set(issuers.map((i) => i.issuer)).size !== issuers.length) {
    throw new ConfigError('OPENEKM_TRUSTED_ISSUERS lists an issuer twice; list each once.');
  }
  // Two issuers that may both assert any user would each be able to mint the other's users.
  const anyUser = issuers.filter((i) => (i.principals ?? defaultPrincipalForms(i.issuer)).includes('user:*'));
  if (anyUser.length > 1) {
    throw new ConfigError(
      `OPENEKM_TRUSTED_ISSUERS: ${anyUser.map((i) => `"${i.issuer}"`).join(' and ')} may each assert any user (the default, or "user:*"). With more than one trusted issuer give each its own "principals", e.g. ["user:*@example.com"], so that no issuer can assert another's users.`,
    );
  }
  return issuers;
}

function gatewayIdentityFrom(env: Env): GatewayIdentityConfig | undefined {
  const raw =
    env.OPENEKM_SIGNING_KEYS ??
    (env.OPENEKM_SIGNING_KEYS_FILE
      ? readText(env.OPENEKM_SIGNING_KEYS_FILE, 'OPENEKM_SIGNING_KEYS_FILE')
      : undefined);
  if (!raw) return undefined;
  let keys: JWK[];
  try {
    const parsed = JSON.parse(raw) as { keys?: JWK[] };
    keys = parsed.keys ?? [];
  } catch {
    throw new ConfigError(
      'OPENEKM_SIGNING_KEYS is not valid JSON: give a JWKS {"keys": [private JWK, ...]}.',
    );
  }
  if (keys.length === 0 || keys.some((k) => !k.d || !k.kid || (k.kty !== 'EC' && k.kty !== 'RSA'))) {
    throw new ConfigError('OPENEKM_SIGNING_KEYS must hold private EC or RSA JWKs, each with a "kid".');
  }
  const email = env.OPENEKM_GATEWAY_IDENTITY;
  const issuer = env.OPENEKM_GATEWAY_ISSUER;
  if (!email || !/^[^@\s]+@[^@\s]+$/.test(email)) {
    throw new ConfigError(
      "OPENEKM_GATEWAY_IDENTITY must be the gateway identity's email, e.g. openekm@example.com.",
    );
  }
  if (!issuer)
    throw new ConfigError(
      'OPENEKM_GATEWAY_ISSUER must be set with OPENEKM_SIGNING_KEYS (the iss of our tokens).',
    );
  const identityDomain = env.OPENEKM_EKM_IDENTITY_DOMAIN;
  if (
    identityDomain !== undefined &&
    identityDomain !== '' &&
    !/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/.test(
      identityDomain,
    )
  ) {
    throw new ConfigError(
      `OPENEKM_EKM_IDENTITY_DOMAIN="${identityDomain.slice(0, 80)}" is invalid: give a lower-case DNS domain, e.g. ekm.example.com (projects get service-{project}@ekm.example.com).`,
    );
  }
  return identityDomain ? { email, issuer, keys, identityDomain } : { email, issuer, keys };
}

function jsonEnv(env: Env, name: string, example: string): unknown {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new ConfigError(`${name} is not valid JSON: give ${example}.`);
  }
}

function principals(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || value.some((m) => typeof m !== 'string' || !isValidMember(m))) {
    throw new ConfigError(
      `${name} is invalid: give a JSON array of members (${MEMBER_FORMS}), e.g. ["user:alice@example.com"].`,
    );
  }
  return value as string[];
}

function projectOwnersFrom(env: Env): Record<string, string[]> {
  const example = '{"my-project": ["user:alice@example.com"]}';
  const parsed = jsonEnv(env, 'OPENEKM_PROJECT_OWNERS', example);
  if (parsed === undefined) return {};
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`OPENEKM_PROJECT_OWNERS is invalid: give a JSON object, e.g. ${example}.`);
  }
  const out: Record<string, string[]> = {};
  for (const [project, owners] of Object.entries(parsed)) {
    out[project] = principals(owners, `OPENEKM_PROJECT_OWNERS["${project}"]`);
  }
  return out;
}

const GROUPS_EXAMPLE =
  '{"kms-admins@example.com": ["user:alice@example.com", "serviceAccount:ci@p.iam.gserviceaccount.com"]}';

/** OPENEKM_GROUPS: group email → user: and serviceAccount: members (no nested groups, no domains). */
function groupsFrom(env: Env): Record<string, string[]> {
  const parsed = jsonEnv(env, 'OPENEKM_GROUPS', GROUPS_EXAMPLE);
  if (parsed === undefined) return {};
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(
      `OPENEKM_GROUPS is invalid: give a JSON object group email → members, e.g. ${GROUPS_EXAMPLE}.`,
    );
  }
  const out: Record<string, string[]> = {};
  for (const [group, members] of Object.entries(parsed)) {
    const name = `OPENEKM_GROUPS["${group.slice(0, 80)}"]`;
    if (!isValidMember(`group:${group}`)) {
      throw new ConfigError(
        `${name}: the key must be the group's email without "group:", e.g. "kms-admins@example.com".`,
      );
    }
    const key = group.toLowerCase();
    if (Object.hasOwn(out, key))
      throw new ConfigError(`${name}: the group is listed twice (emails compare case-insensitively).`);
    if (!Array.isArray(members)) {
      throw new ConfigError(`${name} must be a JSON array of members, e.g. ["user:alice@example.com"].`);
    }
    out[key] = members.map((m, i) => {
      if (typeof m !== 'string' || !isValidMember(m) || !/^(user|serviceAccount):/.test(m)) {
        const nested = typeof m === 'string' && m.startsWith('group:');
        throw new ConfigError(
          `${name}[${i}] ${JSON.stringify(m).slice(0, 80)} is invalid: ${
            nested
              ? 'groups cannot contain groups; list their members instead'
              : 'a group holds user:{email} and serviceAccount:{email} members only'
          }.`,
        );
      }
      return m;
    });
  }
  return out;
}

function readText(path: string, name: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name} cannot be read: ${(err as Error).message}`);
  }
}

const perSecond = z.number().int().min(1).max(1_000_000);
const quotaSchema = z
  .object({
    enabled: z.boolean().optional(),
    default: perSecond.optional(),
    projects: z.record(z.string().min(1), perSecond).optional(),
    shards: z.number().int().min(1).max(64).optional(),
    leaseSize: z.number().int().min(1).max(10_000).optional(),
    maxWaitMs: z.number().int().min(10).max(10_000).optional(),
  })
  .strict();

function ekmQuotaFrom(env: Env): EkmQuotaConfig {
  const raw = env.OPENEKM_EKM_QUOTA;
  if (raw === undefined || raw.trim() === '') return DEFAULT_EKM_QUOTA;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(
      'OPENEKM_EKM_QUOTA is not valid JSON: give e.g. {"default": 100, "projects": {"my-project": 500}}.',
    );
  }
  const result = quotaSchema.safeParse(parsed);
  if (!result.success) {
    throw new ConfigError(
      `OPENEKM_EKM_QUOTA is invalid: ${z.prettifyError(result.error)} Give e.g. {"default": 100, "projects": {"my-project": 500}} (requests per second per project and location).`,
    );
  }
  const q = result.data;
  return {
    enabled: q.enabled ?? true,
    default: q.default ?? DEFAULT_EKM_QUOTA.default,
    projects: q.projects ?? {},
    shards: q.shards ?? DEFAULT_EKM_QUOTA.shards,
    leaseSize: q.leaseSize ?? DEFAULT_EKM_QUOTA.leaseSize,
    ...(q.maxWaitMs !== undefined ? { maxWaitMs: q.maxWaitMs } : {}),
  };
}

export function loadConfig(env: Env = process.env): Config {
  const logLevel = (env.OPENEKM_LOG_LEVEL ?? 'info') as Config['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError(`OPENEKM_LOG_LEVEL="${logLevel}" is invalid: expected debug, info, warn or error.`);
  }
  const logFormat = (env.OPENEKM_LOG_FORMAT || 'json') as Config['logFormat'];
  if (!['json', 'human'].includes(logFormat)) {
    throw new ConfigError(`OPENEKM_LOG_FORMAT="${logFormat}" is invalid: expected json or human.`);
  }
  const firestoreTransport = (env.OPENEKM_FIRESTORE_TRANSPORT || 'grpc') as Config['firestoreTransport'];
  if (!['grpc', 'rest'].includes(firestoreTransport)) {
    throw new ConfigError(
      `OPENEKM_FIRESTORE_TRANSPORT="${firestoreTransport}" is invalid: expected grpc or rest.`,
    );
  }
  const listMaxPageSize = int(env, 'OPENEKM_LIST_MAX_PAGE_SIZE', 1000, 1, 10000);
  const ekmEndpoints = parseEndpoints(env);
  const gatewayIdentity = gatewayIdentityFrom(env);
  if (!gatewayIdentity && ekmEndpoints.some((e) => e.auth.type === 'jwt')) {
    throw new ConfigError(
      'An EKM endpoint authenticates with the gateway JWT, but no signing key is configured: set OPENEKM_SIGNING_KEYS (or _FILE), OPENEKM_GATEWAY_IDENTITY and OPENEKM_GATEWAY_ISSUER.',
    );
  }
  const ekmHostPolicy = hostPolicyFrom(env);
  ekmEndpoints.forEach((e, i) => {
    const refused = hostRefusal(ekmHostPolicy, new URL(e.origin).hostname);
    if (refused) {
      throw new ConfigError(
        `OPENEKM_EKM_ENDPOINTS[${i}] (${e.origin}): ${refused}. Add the host to OPENEKM_EKM_ALLOWED_HOSTS, e.g. ["public", "${new URL(e.origin).hostname.replace(/^\[|\]$/g, '')}"].`,
      );
    }
  });
  return {
    firestoreProjectId:
      env.OPENEKM_FIRESTORE_PROJECT ?? env.GOOGLE_CLOUD_PROJECT ?? env.GCLOUD_PROJECT ?? 'demo-openekm',
    firestoreDatabaseId: env.OPENEKM_FIRESTORE_DATABASE ?? '(default)',
    firestoreTransport,
    rootKeys: rootKeysFrom(env),
    trustedIssuers: issuersFrom(env),
    metadataCacheMs: int(env, 'OPENEKM_METADATA_CACHE_MS', 1000, 0, 60_000),
    metadataCacheEntries: int(env, 'OPENEKM_METADATA_CACHE_ENTRIES', 10_000, 1, 1_000_000),
    allowLoopbackHttpEkm: bool(env, 'OPENEKM_ALLOW_LOOPBACK_HTTP_EKM', false),
    listDefaultPageSize: Math.min(int(env, 'OPENEKM_LIST_DEFAULT_PAGE_SIZE', 100, 1, 10000), listMaxPageSize),
    listMaxPageSize,
    maxRequestBytes: int(env, 'OPENEKM_MAX_REQUEST_BYTES', 1024 * 1024, 256 * 1024, 32 * 1024 * 1024),
    requestDeadlineMs: int(env, 'OPENEKM_REQUEST_DEADLINE_MS', 30_000, 100, 600_000),
    logLevel,
    logFormat,
    ...(env.OPENEKM_LOG_FILE ? { logFile: env.OPENEKM_LOG_FILE } : {}),
    auditDataAccess: bool(env, 'OPENEKM_AUDIT_DATA_ACCESS', true),
    ekmQuota: ekmQuotaFrom(env),
    ekmEndpoints,
    ekmClient: {
      retryBudgetPercent: int(env, 'OPENEKM_EKM_RETRY_BUDGET_PERCENT', 10, 0, 100),
      retryBudgetMinPerSecond: int(env, 'OPENEKM_EKM_RETRY_BUDGET_MIN_PER_SECOND', 1, 0, 1000),
      retryBudgetWindowMs: int(env, 'OPENEKM_EKM_RETRY_BUDGET_WINDOW_MS', 10_000, 1000, 600_000),
      maxConcurrent: int(env, 'OPENEKM_EKM_MAX_CONCURRENT', 64, 1, 10_000),
      maxQueueWaitMs: int(env, 'OPENEKM_EKM_MAX_QUEUE_WAIT_MS', 50, 0, 10_000),
      http2: bool(env, 'OPENEKM_EKM_HTTP2', false),
      keepAliveMs: int(env, 'OPENEKM_EKM_KEEPALIVE_MS', 30_000, 1000, 600_000),
      lingerMs: int(env, 'OPENEKM_EKM_LINGER_MS', 2000, 0, 60_000),
    },
    ekmHostPolicy,
    gatewayIdentity,
    projectOwners: projectOwnersFrom(env),
    defaultOwners: principals(
      jsonEnv(env, 'OPENEKM_DEFAULT_OWNERS', '["user:alice@example.com"]') ?? [],
      'OPENEKM_DEFAULT_OWNERS',
    ),
    operators: principals(
      jsonEnv(env, 'OPENEKM_OPERATORS', '["serviceAccount:…"]') ?? [],
      'OPENEKM_OPERATORS',
    ),
    groups: groupsFrom(env),
    ekmConnectionTimeoutMs: int(env, 'OPENEKM_EKM_CONNECTION_TIMEOUT_MS', 150, 10, 10_000),
    ...probeKeyPathFrom(env),
    probeIntervalSeconds: int(env, 'OPENEKM_PROBE_INTERVAL_SECONDS', 60, 1, 3600),
    probeHistory: int(env, 'OPENEKM_PROBE_HISTORY', 1440, 10, 5000),
    statusPublic: bool(env, 'OPENEKM_STATUS_PUBLIC', false),
    trustedProxyHops: int(env, 'OPENEKM_TRUSTED_PROXY_HOPS', 0, 0, 10),
    accessReasonPrincipals: principals(
      jsonEnv(env, 'OPENEKM_ACCESS_REASON_PRINCIPALS', '["serviceAccount:…"]') ?? [],
      'OPENEKM_ACCESS_REASON_PRINCIPALS',
    ),
    iamSeparationOfDuties: bool(env, 'OPENEKM_IAM_SEPARATION_OF_DUTIES', false),
    ...hsmFrom(env),
  };
}

/** The HSM variables: all absent means no HSM; a partial or inconsistent set is refused at start-up. */
function hsmFrom(env: Env): { hsm?: HsmConfig } {
  const modulePath = env.OPENEKM_HSM_MODULE;
  const names = ['OPENEKM_HSM_TOKEN_LABEL', 'OPENEKM_HSM_SLOT', 'OPENEKM_HSM_PIN', 'OPENEKM_HSM_PIN_FILE'];
  if (modulePath === undefined || modulePath === '') {
    const stray = names.find((n) => env[n]);
    if (stray) {
      throw new ConfigError(
        `${stray} is set but OPENEKM_HSM_MODULE is not: give the path of the HSM's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so (docs/hsm.md).`,
      );
    }
    return {};
  }
  if (!existsSync(modulePath)) {
    throw new ConfigError(
      `OPENEKM_HSM_MODULE="${modulePath}" does not exist: install the HSM vendor's PKCS#11 library and give its path (docs/hsm.md).`,
    );
  }
  const tokenLabel = env.OPENEKM_HSM_TOKEN_LABEL || undefined;
  const slotRaw = env.OPENEKM_HSM_SLOT || undefined;
  if ((tokenLabel === undefined) === (slotRaw === undefined)) {
    throw new ConfigError(
      'With OPENEKM_HSM_MODULE, set exactly one of OPENEKM_HSM_TOKEN_LABEL (the token label, e.g. "openekm") or OPENEKM_HSM_SLOT (the slot id, e.g. 0).',
    );
  }
  if (tokenLabel !== undefined && Buffer.byteLength(tokenLabel, 'utf8') > 32) {
    throw new ConfigError(
      'OPENEKM_HSM_TOKEN_LABEL is longer than 32 bytes, the most a PKCS#11 token label has.',
    );
  }
  const slotId = slotRaw === undefined ? undefined : int(env, 'OPENEKM_HSM_SLOT', 0, 0, 0xffffffff);
  const pinValue = env.OPENEKM_HSM_PIN || undefined;
  const pinFile = env.OPENEKM_HSM_PIN_FILE || undefined;
  if ((pinValue === undefined) === (pinFile === undefined)) {
    throw new ConfigError(
      "With OPENEKM_HSM_MODULE, set exactly one of OPENEKM_HSM_PIN_FILE (a file holding the token's user PIN; preferred) or OPENEKM_HSM_PIN.",
    );
  }
  const pin = (pinValue ?? readText(pinFile as string, 'OPENEKM_HSM_PIN_FILE')).replace(/\r?\n$/, '');
  if (pin === '')
    throw new ConfigError('The HSM user PIN (OPENEKM_HSM_PIN or OPENEKM_HSM_PIN_FILE) is empty.');
  return {
    hsm: {
      modulePath,
      ...(tokenLabel !== undefined ? { tokenLabel } : { slotId }),
      pin,
      sessions: int(env, 'OPENEKM_HSM_SESSIONS', 2, 1, 64),
      timeoutMs: int(env, 'OPENEKM_HSM_TIMEOUT_MS', 5000, 100, 600_000),
    },
  };
}

/** OPENEKM_EKM_ALLOWED_HOSTS: a JSON array or a comma-separated list of entries (default ["public"]). */
function hostPolicyFrom(env: Env): HostPolicy {
  const raw = env.OPENEKM_EKM_ALLOWED_HOSTS?.trim();
  let entries: string[] = DEFAULT_ALLOWED_HOSTS;
  if (raw) {
    if (raw.startsWith('[')) {
      const parsed = jsonEnv(env, 'OPENEKM_EKM_ALLOWED_HOSTS', '["public", "10.20.0.0/16", "ekm.internal"]');
      if (!Array.isArray(parsed) || parsed.some((e) => typeof e !== 'string')) {
        throw new ConfigError(
          'OPENEKM_EKM_ALLOWED_HOSTS is invalid: give a JSON array of strings, e.g. ["public", "10.20.0.0/16"].',
        );
      }
      entries = parsed as string[];
    } else {
      entries = raw
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean);
    }
  }
  try {
    return parseHostPolicy(entries);
  } catch (err) {
    throw new ConfigError(`OPENEKM_EKM_ALLOWED_HOSTS is invalid: ${(err as Error).message}.`);
  }
}

function probeKeyPathFrom(env: Env): { ekmProbeKeyPath?: string } {
  const raw = env.OPENEKM_EKM_PROBE_KEY_PATH;
  if (raw === undefined || raw === '') return {};
  if (!/^[A-Za-z0-9._~\-/]{1,512}$/.test(raw) || raw.includes('..') || raw.startsWith('/')) {
    throw new ConfigError(
      `OPENEKM_EKM_PROBE_KEY_PATH="${raw}" is invalid: give a key path on the EKM, e.g. "v0/keys/openekm-probe".`,
    );
  }
  return { ekmProbeKeyPath: raw };
}
