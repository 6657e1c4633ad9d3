/**
 * ekmConnections.create / get / list / patch / verifyConnectivity and locations.getEkmConfig / updateEkmConfig.
 * A connection names one or more replicas of an EKM (service resolvers) with their pinned certificates; keys
 * with protection level EXTERNAL_VPC reach their EKM through one (docs/ekm-connections.md). Connections cannot
 * be deleted, as in Cloud KMS.
 */
import { randomBytes } from 'node:crypto';
import type { Deps, RequestContext } from '../context.js';
import { canonicalHost, canonicalHostPort, type HostPolicy, hostRefusal } from '../ekm/allow-list.js';
import {
  connectionTargets,
  isValidHostname,
  MAX_CERTIFICATES,
  MAX_REPLICAS,
  type ProbeTarget,
  parseCertificate,
} from '../ekm/connections.js';
import { EkmFailure, ekmError } from '../ekm/errors.js';
import { systemCall } from '../ekm/protocols.js';
import { RpcError } from '../errors.js';
import {
  allowOnly,
  enumValue,
  type Json,
  type JsonObject,
  optionalString,
  requireMask,
} from '../resources/fields.js';
import {
  checkId,
  ekmConnectionPath,
  locationPath,
  parseEkmConfigName,
  parseEkmConnectionName,
  parseLocationName,
} from '../resources/names.js';
import {
  type Certificate,
  type EkmConfig,
  type EkmConnection,
  KeyManagementMode,
  type KeyManagementModeName,
  type ServiceResolver,
} from '../resources/types.js';
import { type ListRequest, type Page, paginate } from './list.js';

const CONNECTION_FIELDS = [
  'name',
  'createTime',
  'serviceResolvers',
  'etag',
  'keyManagementMode',
  'cryptoSpacePath',
];
const PATCHABLE = ['serviceResolvers', 'keyManagementMode', 'cryptoSpacePath'];
const SERVICE_DIRECTORY =
  /^projects\/[^/]+\/locations\/[^/]+\/namespaces\/[a-z0-9-]{1,63}\/services\/[a-z0-9-]{1,63}$/;
const CRYPTO_SPACE_PATH = /^[A-Za-z0-9._~\-/]{1,512}$/;

function newEtag(): string {
  return randomBytes(12).toString('base64url');
}

function certificates(raw: Json | undefined, path: string): Certificate[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw RpcError.invalidArgument(
      `${path} is required: give the replica's TLS leaf certificate(s) as [{"rawDer": "<base64 DER>"}] (at most ${MAX_CERTIFICATES}). OpenEKM trusts exactly these certificates for this replica.`,
      path,
    );
  }
  if (raw.length > MAX_CERTIFICATES) {
    throw RpcError.invalidArgument(
      `${path} holds ${raw.length} certificates; at most ${MAX_CERTIFICATES}.`,
      path,
    );
  }
  return raw.map((c, i) => {
    const at = `${path}[${i}]`;
    if (!c || typeof c !== 'object' || Array.isArray(c)) {
      throw RpcError.invalidArgument(`${at} must be an object {"rawDer": "<base64 DER>"}.`, at);
    }
    // Output fields a client echoes back from a get are accepted and recomputed.
    allowOnly(
      c,
      [
        'rawDer',
        'parsed',
        'issuer',
        'subject',
        'subjectAlternativeDnsNames',
        'notBeforeTime',
        'notAfterTime',
        'serialNumber',
        'sha256Fingerprint',
      ],
      at,
    );
    const der = optionalString(c, 'rawDer', `${at}.rawDer`);
    if (!der) throw RpcError.invalidArgument(`${at}.rawDer is required.`, `${at}.rawDer`);
    try {
      return parseCertificate(der);
    } catch (err) {
      throw RpcError.invalidArgument(
        `${at}.rawDer is not usable: ${(err as Error).message}. Give the leaf certificate's DER bytes, base64-encoded (e.g. openssl x509 -outform der | base64 -w0).`,
        `${at}.rawDer`,
      );
    }
  });
}

/**
 * A replica's hostname in canonical form (numeric IPv4 forms such as 0x7f000001 or 2130706433 read as the address
 * they are, as the transport would) and allowed by the operator's EKM host allow-list (shared/ekm/allow-list.ts).
 */
function allowedHostname(hostname: string, policy: HostPolicy, at: string): string {
  const canonical = canonicalHostPort(hostname);
  const host = canonical ? canonicalHost(canonical.replace(/:\d+$/, '')) : undefined;
  if (!canonical || !host || !isValidHostname(canonical)) {
    throw RpcError.invalidArgument(
      `${at}.hostname must be the replica's DNS name or IPv4 address, optionally with a port ("ekm1.example.com" or "10.0.0.5:8443").`,
      `${at}.hostname`,
    );
  }
  const refused = hostRefusal(policy, host);
  if (refused) {
    throw RpcError.invalidArgument(
      `${at}.hostname ${hostname.slice(0, 100)}: ${refused}. EKM replicas must be hosts this deployment's operator allows (OPENEKM_EKM_ALLOWED_HOSTS).`,
      `${at}.hostname`,
    );
  }
  return canonical;
}

function serviceResolvers(raw: Json | undefined, policy: HostPolicy): ServiceResolver[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw RpcError.invalidArgument(
      'serviceResolvers is required: give one entry per EKM replica, e.g. [{"hostname": "ekm1.example.com", "serverCertificates": [{"rawDer": "…"}]}].',
      'serviceResolvers',
    );
  }
  if (raw.length > MAX_REPLICAS) {
    throw RpcError.invalidArgument(
      `serviceResolvers has ${raw.length} entries; OpenEKM allows at most ${MAX_REPLICAS} replicas per connection.`,
      'serviceResolvers',
    );
  }
  const seen = new Set<string>();
  return raw.map((r, i) => {
    const at = `serviceResolvers[${i}]`;
    if (!r || typeof r !== 'object' || Array.isArray(r)) {
      throw RpcError.invalidArgument(`${at} must be an object.`, at);
    }
    allowOnly(r, ['serviceDirectoryService', 'endpointFilter', 'hostname', 'serverCertificates'], at);
    const given = optionalString(r, 'hostname', `${at}.hostname`)?.toLowerCase();
    if (!given || !isValidHostname(given)) {
      throw RpcError.invalidArgument(
        `${at}.hostname must be the replica's DNS name or IPv4 address, optionally with a port ("ekm1.example.com" or "10.0.0.5:8443").`,
        `${at}.hostname`,
      );
    }
    const hostname = allowedHostname(given, policy, at);
    if (seen.has(hostname)) {
      throw RpcError.invalidArgument(`${at}.hostname ${hostname} is listed twice.`, `${at}.hostname`);
    }
    seen.add(hostname);
    const resolver: ServiceResolver = {
      hostname,
      serverCertificates: certificates(r.serverCertificates, `${at}.serverCertificates`),
    };
    const sd = optionalString(r, 'serviceDirectoryService', `${at}.serviceDirectoryService`);
    if (sd) {
      if (!SERVICE_DIRECTORY.test(sd)) {
        throw RpcError.invalidArgument(
          `${at}.serviceDirectoryService must look like projects/{project}/locations/{location}/namespaces/{namespace}/services/{service}.`,
          `${at}.serviceDirectoryService`,
        );
      }
      resolver.serviceDirectoryService = sd;
    }
    const filter = optionalString(r, 'endpointFilter', `${at}.endpointFilter`);
    if (filter) resolver.endpointFilter = filter;
    return resolver;
  });
}

/** keyManagementMode and cryptoSpacePath, checked together: CLOUD_KMS needs a crypto space, MANUAL has none. */
function mode(body: JsonObject): { keyManagementMode: KeyManagementModeName; cryptoSpacePath?: string } {
  let m = enumValue(KeyManagementMode, body.keyManagementMode, 'keyManagementMode') ?? 'MANUAL';
  if (m === 'KEY_MANAGEMENT_MODE_UNSPECIFIED') m = 'MANUAL';
  const space = optionalString(body, 'cryptoSpacePath');
  if (m === 'CLOUD_KMS') {
    if (!space || !CRYPTO_SPACE_PATH.test(space) || space.includes('..') || space.startsWith('/')) {
      throw RpcError.invalidArgument(
        'keyManagementMode CLOUD_KMS needs cryptoSpacePath: the path of the crypto space at the EKM, e.g. "v0/cryptospaces/my-space".',
        'cryptoSpacePath',
      );
    }
    return { keyManagementMode: m, cryptoSpacePath: space };
  }
  if (space) {
    throw RpcError.invalidArgument(
      'cryptoSpacePath applies only to keyManagementMode CLOUD_KMS (coordinated keys).',
      'cryptoSpacePath',
    );
  }
  return { keyManagementMode: m };
}

function toApiConnection(c: EkmConnection): EkmConnection {
  const out: EkmConnection = {
    name: c.name,
    createTime: c.createTime,
    serviceResolvers: c.serviceResolvers,
    etag: c.etag,
    keyManagementMode: c.keyManagementMode,
  };
  if (c.cryptoSpacePath) out.cryptoSpacePath = c.cryptoSpacePath;
  return out;
}

export async function createEkmConnection(
  deps: Deps,
  parent: string,
  ekmConnectionId: string | null,
  body: JsonObject,
): Promise<EkmConnection> {
  const loc = parseLocationName(parent);
  const id = checkId(ekmConnectionId ?? undefined, 'ekmConnectionId');
  allowOnly(body, CONNECTION_FIELDS);
  const name = ekmConnectionPath({ ...loc, ekmConnection: id });
  const conn: EkmConnection = {
    name,
    createTime: deps.now().toISOString(),
    serviceResolvers: serviceResolvers(body.serviceResolvers, deps.config.ekmHostPolicy),
    etag: newEtag(),
    ...mode(body),
  };
  await deps.store.transaction(async (tx) => {
    if (await tx.get(name)) throw RpcError.alreadyExists(name);
    tx.create(name, { ...conn });
  });
  deps.cache.invalidate(name);
  return toApiConnection(conn);
}

export async function readConnection(deps: Deps, name: string, cached = false): Promise<EkmConnection> {
  const c = cached
    ? await deps.cache.get<EkmConnection & JsonObject>(name)
    : await deps.store.get<EkmConnection & JsonObject>(name);
  if (!c) throw RpcError.notFound(name);
  return c;
}

export async function getEkmConnection(deps: Deps, name: string): Promise<EkmConnection> {
  parseEkmConnectionName(name);
  return toApiConnection(await readConnection(deps, name));
}

export async function listEkmConnections(
  deps: Deps,
  parent: string,
  req: ListRequest,
): Promise<Page<EkmConnection>> {
  parseLocationName(parent);
  const all = await deps.store.list<EkmConnection & JsonObject>(parent, 'ekmConnections');
  return paginate(all.map(toApiConnection), req, deps.config);
}

export async function patchEkmConnection(
  deps: Deps,
  name: string,
  mask: string[],
  body: JsonObject,
): Promise<EkmConnection> {
  parseEkmConnectionName(name);
  allowOnly(body, CONNECTION_FIELDS);
  const fields = requireMask(mask, PATCHABLE);
  const resolvers = fields.includes('serviceResolvers')
    ? serviceResolvers(body.serviceResolvers, deps.config.ekmHostPolicy)
    : undefined;
  const etag = optionalString(body, 'etag');
  const updated = await deps.store.transaction(async (tx) => {
    const current = await tx.get<EkmConnection & JsonObject>(name);
    if (!current) throw RpcError.notFound(name);
    if (etag && etag !== current.etag) {
      throw RpcError.aborted(
        `The etag ${etag} does not match the current etag of ${name}: it changed since you read it. Get it again and retry.`,
      );
    }
    const next: EkmConnection = { ...current };
    if (resolvers) next.serviceResolvers = resolvers;
    if (fields.includes('keyManagementMode') || fields.includes('cryptoSpacePath')) {
      const m = mode({
        keyManagementMode: fields.includes('keyManagementMode')
          ? (body.keyManagementMode ?? null)
          : current.keyManagementMode,
        // Switching to MANUAL drops the stored crypto space unless the mask names a new one.
        cryptoSpacePath: fields.includes('cryptoSpacePath')
          ? (body.cryptoSpacePath ?? null)
          : body.keyManagementMode !== undefined &&
              fields.includes('keyManagementMode') &&
              enumValue(KeyManagementMode, body.keyManagementMode, 'keyManagementMode') !== 'CLOUD_KMS'
            ? null
            : (current.cryptoSpacePath ?? null),
      });
      next.keyManagementMode = m.keyManagementMode;
      if (m.cryptoSpacePath) next.cryptoSpacePath = m.cryptoSpacePath;
      else delete next.cryptoSpacePath;
    }
    next.etag = newEtag();
    tx.set(name, { ...next });
    return next;
  });
  deps.cache.invalidate(name);
  return toApiConnection(updated);
}

/** Probe targets of a connection, memoised per stored document (the cache hands out the same object). */
const targetsOf = new WeakMap<object, ProbeTarget[]>();
export function replicasOf(deps: Deps, conn: EkmConnection): ProbeTarget[] {
  let t = targetsOf.get(conn);
  if (!t) {
    t = connectionTargets(conn, deps.config.ekmConnectionTimeoutMs);
    targetsOf.set(conn, t);
  }
  return t;
}

/**
 * Checks every replica of the connection now (GetInfo with our identity over the pinned TLS, plus
 * checkCryptoSpacePermissions for coordinated connections). {} when all answer; otherwise FAILED_PRECONDITION
 * naming the first replica that failed and its error domain.
 */
export async function verifyConnectivity(deps: Deps, ctx: RequestContext, name: string): Promise<object> {
  parseEkmConnectionName(name);
  const conn = await readConnection(deps, name);
  for (const target of replicasOf(deps, conn)) {
    try {
      await deps.ekm.probe(
        target,
        {
          ...(conn.cryptoSpacePath ? { cryptoSpacePath: conn.cryptoSpacePath } : {}),
          ctx: systemCall(name, ctx.caller.principal, ctx.requestId),
        },
        ctx.signal,
      );
    } catch (err) {
      const failure = EkmFailure.from(err);
      if (ctx.audit) ctx.audit.ekmErrorDomain = failure.domain;
      deps.log.warn(`EKM connection check failed: ${failure.domain}`, {
        requestId: ctx.requestId,
        ekmConnection: name,
        replica: target.replica,
        errorDomain: failure.domain,
        detail: failure.detail.slice(0, 300),
      });
      throw ekmError(failure, `https://${target.replica}`, name, `replica ${target.replica}`);
    }
  }
  return {};
}

function configPath(name: string): string {
  return `${locationPath(parseEkmConfigName(name))}/ekmConfig`;
}

/** Where a location's EkmConfig is stored (a Firestore document path needs an even number of segments). */
export function ekmConfigDoc(location: string): string {
  return `${location}/ekmConfig/current`;
}

export async function getEkmConfig(deps: Deps, name: string): Promise<EkmConfig> {
  const path = configPath(name);
  const doc = await deps.store.get<EkmConfig & JsonObject>(
    ekmConfigDoc(locationPath(parseEkmConfigName(name))),
  );
  return doc?.defaultEkmConnection
    ? { name: path, defaultEkmConnection: doc.defaultEkmConnection }
    : { name: path };
}

export async function updateEkmConfig(
  deps: Deps,
  name: string,
  mask: string[],
  body: JsonObject,
): Promise<EkmConfig> {
  const path = configPath(name);
  allowOnly(body, ['name', 'defaultEkmConnection']);
  requireMask(mask, ['defaultEkmConnection']);
  const target = optionalString(body, 'defaultEkmConnection');
  const loc = parseEkmConfigName(name);
  if (target) {
    const c = parseEkmConnectionName(target, 'defaultEkmConnection');
    if (c.project !== loc.project || c.location !== loc.location) {
      throw RpcError.invalidArgument(
        `defaultEkmConnection must be an EKM connection in ${locationPath(loc)}.`,
        'defaultEkmConnection',
      );
    }
  }
  const config: EkmConfig = target ? { name: path, defaultEkmConnection: target } : { name: path };
  await deps.store.transaction(async (tx) => {
    if (target && !(await tx.get(target))) {
      throw RpcError.failedPrecondition(`defaultEkmConnection ${target} does not exist; create it first.`);
    }
    tx.set(ekmConfigDoc(locationPath(loc)), { ...config });
  });
  deps.cache.invalidate(ekmConfigDoc(locationPath(loc)));
  return config;
}
