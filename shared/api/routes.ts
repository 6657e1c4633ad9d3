/**
 * The one route table of the API. Each entry carries everything the pipeline needs about a method: which of the
 * four functions serves it, its HTTP method and path template (Cloud KMS's google.api.http binding), the RPC
 * method name (logs and audit), the permission checked on the path's resource, which audit log it goes to, its
 * query schema, and its handler. Adding a Cloud KMS method is one handler (an operation in shared/operations/)
 * plus one entry here; the matcher (match.ts), the Lambda router and the infra test all read this table.
 */
import {
  GENERATE_RANDOM_BYTES,
  RUN_TASKS,
  USE_TO_DECRYPT,
  USE_TO_ENCRYPT,
  USE_TO_SIGN,
  USE_TO_VERIFY,
  VIEW_PUBLIC_KEY,
  VIEW_STATUS,
} from '../access/roles.js';
import type { Deps, RequestContext } from '../context.js';
import { RpcError } from '../errors.js';
import { buildReport, runProbe } from '../health/probe.js';
import { renderStatusPage } from '../health/status-page.js';
import { visibleReport } from '../health/visibility.js';
import { asymmetricDecrypt } from '../operations/asymmetric-decrypt.js';
import { asymmetricSign } from '../operations/asymmetric-sign.js';
import { decrypt, encrypt } from '../operations/crypto.js';
import {
  createCryptoKeyVersion,
  destroyCryptoKeyVersion,
  getCryptoKeyVersion,
  listCryptoKeyVersions,
  patchCryptoKeyVersion,
  restoreCryptoKeyVersion,
} from '../operations/crypto-key-versions.js';
import {
  createCryptoKey,
  getCryptoKey,
  listCryptoKeys,
  patchCryptoKey,
  updatePrimaryVersion,
} from '../operations/crypto-keys.js';
import {
  createEkmConnection,
  getEkmConfig,
  getEkmConnection,
  listEkmConnections,
  patchEkmConnection,
  updateEkmConfig,
  verifyConnectivity,
} from '../operations/ekm-connections.js';
import { getPublicKey } from '../operations/get-public-key.js';
import { getIamPolicy, setIamPolicy, testIamPermissions } from '../operations/iam.js';
import { createImportJob, getImportJob, listImportJobs } from '../operations/import-jobs.js';
import { importCryptoKeyVersion } from '../operations/import-version.js';
import { createKeyRing, getKeyRing, listKeyRings } from '../operations/key-rings.js';
import type { ListRequest } from '../operations/list.js';
import { macSign, macVerify } from '../operations/mac.js';
import { generateRandomBytes } from '../operations/random-bytes.js';
import { rawDecrypt, rawEncrypt } from '../operations/raw-encryption.js';
import { runScheduledTasks } from '../operations/scheduled.js';
import { fieldMask, type JsonObject } from '../resources/fields.js';
import { bool, LIST_QUERY, publicKeyFormat, type QueryOf, type QuerySchema, text, view } from './query.js';

export type FunctionName = 'keyAdmin' | 'encrypt' | 'decrypt' | 'healthCheck';
export const FUNCTION_NAMES: readonly FunctionName[] = ['keyAdmin', 'encrypt', 'decrypt', 'healthCheck'];

/** What a handler receives besides its collaborators and the request context. */
export interface Call<Q> {
  /** The resource the path names (the parent, for a collection), without /v1/; '' for /health routes. */
  name: string;
  query: QueryOf<Q>;
  body: JsonObject;
}

export type Handler<Q> = (deps: Deps, ctx: RequestContext, call: Call<Q>) => Promise<unknown>;

export interface Route<Q extends QuerySchema = QuerySchema> {
  fn: FunctionName;
  method: 'GET' | 'POST' | 'PATCH';
  /** google.api.http path template: `{var=…}` binds the resource name; `*` is one segment. */
  path: string;
  /** Full RPC method name, e.g. google.cloud.kms.v1.KeyManagementService.Encrypt. */
  rpc: string;
  /**
   * The permission the caller must hold on the path's resource (the parent, for a collection), checked before
   * the handler runs. Undefined for unauthenticated routes and testIamPermissions (which checks nothing).
   */
  permission?: string;
  /** Whether a caller identity is required (false: /health, /health/ready, the JWKS). */
  authenticated: boolean;
  /** Which Cloud Audit Log the call goes to: Admin Activity, Data Access, or none (health, probes). */
  audit?: 'admin' | 'data';
  /** The query parameters this method accepts, each with its decoder; anything else is refused. */
  query: Q;
  handler: Handler<Q>;
}

function route<Q extends QuerySchema>(
  r: Omit<Route<Q>, 'authenticated' | 'query'> & { authenticated?: boolean; query?: Q },
): Route {
  return { authenticated: true, query: {} as Q, ...r } as unknown as Route;
}

const KMS = 'google.cloud.kms.v1.KeyManagementService.';
const EKM = 'google.cloud.kms.v1.EkmService.';
const IAM = 'google.iam.v1.IAMPolicy.';
const KR = 'cloudkms.keyRings.';
const CK = 'cloudkms.cryptoKeys.';
const CKV = 'cloudkms.cryptoKeyVersions.';
const EC = 'cloudkms.ekmConnections.';
const IJ = 'cloudkms.importJobs.';

const LOCATION = 'projects/*/locations/*';
const KEY_RING = `${LOCATION}/keyRings/*`;
const CRYPTO_KEY = `${KEY_RING}/cryptoKeys/*`;
const VERSION = `${CRYPTO_KEY}/cryptoKeyVersions/*`;
const CONNECTION = `${LOCATION}/ekmConnections/*`;
const IMPORT_JOB = `${KEY_RING}/importJobs/*`;

function listRequest(q: QueryOf<typeof LIST_QUERY>): ListRequest {
  return { pageSize: q.pageSize, pageToken: q.pageToken, filter: q.filter, orderBy: q.orderBy };
}

function page<T>(field: string, p: { items: T[]; nextPageToken?: string; totalSize: number }) {
  return { [field]: p.items, nextPageToken: p.nextPageToken, totalSize: p.totalSize };
}

/** A non-JSON answer (the status page). */
export class Rendered {
  constructor(
    readonly contentType: string,
    readonly body: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** The status page loads nothing and runs nothing; it is never cached (it is live state). */
const STATUS_PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

/** Where the gateway publishes the public keys of its EKM tokens (served by healthCheck). */
export const JWKS_PATH = '/.well-known/openekm/jwks.json';

/** `options.requestedPolicyVersion` of a getIamPolicy body (`{options: {requestedPolicyVersion}}`), as text. */
function requestedPolicyVersionOf(body: JsonObject): string | undefined {
  const options = body.options;
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw RpcError.invalidArgument('options must be an object {requestedPolicyVersion}.', 'options');
  }
  const v = options.requestedPolicyVersion;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' && typeof v !== 'string') {
    throw RpcError.invalidArgument(
      'options.requestedPolicyVersion must be 1 or 3.',
      'options.requestedPolicyVersion',
    );
  }
  return String(v);
}

/**
 * A Cloud KMS method OpenEKM does not implement: routed (with Cloud KMS's permission) so that the caller gets
 * 501 UNIMPLEMENTED naming it, never a 404 that reads as a wrong path.
 */
function notImplemented(
  method: Route['method'],
  path: string,
  rpc: string,
  permission: string,
  what: string,
): Route {
  return route({
    fn: 'keyAdmin',
    method,
    path,
    rpc: rpc.includes('.') ? rpc : `${KMS}${rpc}`,
    permission,
    audit: method === 'GET' ? 'data' : 'admin',
    query: LIST_QUERY,
    handler: async () => {
      throw RpcError.unimplemented(
        `${rpc.slice(rpc.lastIndexOf('.') + 1)} is not implemented by OpenEKM: ${what}`,
      );
    },
  });
}

/** getIamPolicy, setIamPolicy and testIamPermissions on one resource type. */
function iamRoutes(resource: string, prefix: string) {
  return [
    route({
      fn: 'keyAdmin',
      method: 'GET',
      path: `/v1/{resource=${resource}}:getIamPolicy`,
      rpc: `${IAM}GetIamPolicy`,
      permission: `${prefix}getIamPolicy`,
      audit: 'data',
      query: { 'options.requestedPolicyVersion': text },
      handler: (d, _ctx, c) => getIamPolicy(d, c.name, c.query['options.requestedPolicyVersion'] ?? null),
    }),
    // The REST binding is a GET, but google-gax's REST transport (the Node client) sends a POST with the options
    // in a JSON body (googleapis/gax-nodejs#1462); both are served.
    route({
      fn: 'keyAdmin',
      method: 'POST',
      path: `/v1/{resource=${resource}}:getIamPolicy`,
      rpc: `${IAM}GetIamPolicy`,
      permission: `${prefix}getIamPolicy`,
      audit: 'data',
      query: { 'options.requestedPolicyVersion': text },
      handler: (d, _ctx, c) =>
        getIamPolicy(
          d,
          c.name,
          c.query['options.requestedPolicyVersion'] ?? requestedPolicyVersionOf(c.body) ?? null,
        ),
    }),
    route({
      fn: 'keyAdmin',
      method: 'POST',
      path: `/v1/{resource=${resource}}:setIamPolicy`,
      rpc: `${IAM}SetIamPolicy`,
      permission: `${prefix}setIamPolicy`,
      audit: 'admin',
      handler: (d, ctx, c) => setIamPolicy(d, c.name, c.body, ctx.caller),
    }),
    // Needs no permission (as in Google IAM): it answers only about the caller's own permissions.
    route({
      fn: 'keyAdmin',
      method: 'POST',
      path: `/v1/{resource=${resource}}:testIamPermissions`,
      rpc: `${IAM}TestIamPermissions`,
      audit: 'data',
      handler: (d, ctx, c) => testIamPermissions(d, d.authorizer, ctx.caller, c.name, c.body),
    }),
  ];
}

export const ROUTES: readonly Route[] = [
  // --- healthCheck ------------------------------------------------------------------------------------------
  route({
    fn: 'healthCheck',
    method: 'GET',
    path: '/health',
    rpc: 'openekm.Health.Check',
    authenticated: false,
    handler: async () => ({ status: 'SERVING' }),
  }),
  route({
    fn: 'healthCheck',
    method: 'GET',
    path: '/health/ready',
    rpc: 'openekm.Health.Ready',
    authenticated: false,
    handler: async (d) => {
      await d.store.get('openekm/readiness');
      return { status: 'SERVING', firestore: 'reachable' };
    },
  }),
  route({
    fn: 'healthCheck',
    method: 'POST',
    path: '/health/tasks:run',
    rpc: 'openekm.Health.RunScheduledTasks',
    permission: RUN_TASKS,
    handler: (d) => runScheduledTasks(d),
  }),
  route({
    fn: 'healthCheck',
    method: 'POST',
    path: '/health/probe',
    rpc: 'openekm.Health.RunProbe',
    permission: RUN_TASKS,
    handler: (d, ctx) => runProbe(d, ctx.signal),
  }),
  // Authenticated unless OPENEKM_STATUS_PUBLIC=true (the pipeline's authenticate stage).
  route({
    fn: 'healthCheck',
    method: 'GET',
    path: '/health/ekm',
    rpc: 'openekm.Health.EkmStatus',
    permission: VIEW_STATUS,
    handler: async (d, ctx) => visibleReport(ctx, await buildReport(d)),
  }),
  route({
    fn: 'healthCheck',
    method: 'GET',
    path: '/health/status',
    rpc: 'openekm.Health.StatusPage',
    permission: VIEW_STATUS,
    handler: async (d, ctx) =>
      new Rendered(
        'text/html; charset=utf-8',
        renderStatusPage(await visibleReport(ctx, await buildReport(d))),
        STATUS_PAGE_HEADERS,
      ),
  }),
  route({
    fn: 'healthCheck',
    method: 'GET',
    path: JWKS_PATH,
    rpc: 'openekm.Health.Jwks',
    authenticated: false,
    handler: async (d) => {
      if (!d.identity)
        throw new RpcError('NOT_FOUND', 'This deployment has no gateway signing key configured.');
      return d.identity.jwks();
    },
  }),
  // --- EKM connections and the EKM config -------------------------------------------------------------------
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{parent=${LOCATION}}/ekmConnections`,
    rpc: `${EKM}CreateEkmConnection`,
    permission: `${EC}create`,
    audit: 'admin',
    query: { ekmConnectionId: text },
    handler: (d, _ctx, c) => createEkmConnection(d, c.name, c.query.ekmConnectionId ?? null, c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{parent=${LOCATION}}/ekmConnections`,
    rpc: `${EKM}ListEkmConnections`,
    permission: `${EC}list`,
    audit: 'data',
    query: LIST_QUERY,
    handler: async (d, _ctx, c) =>
      page('ekmConnections', await listEkmConnections(d, c.name, listRequest(c.query))),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${CONNECTION}}`,
    rpc: `${EKM}GetEkmConnection`,
    permission: `${EC}get`,
    audit: 'data',
    handler: (d, _ctx, c) => getEkmConnection(d, c.name),
  }),
  route({
    fn: 'keyAdmin',
    method: 'PATCH',
    path: `/v1/{name=${CONNECTION}}`,
    rpc: `${EKM}UpdateEkmConnection`,
    permission: `${EC}update`,
    audit: 'admin',
    query: { updateMask: text },
    handler: (d, _ctx, c) => patchEkmConnection(d, c.name, fieldMask(c.query.updateMask ?? null), c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${CONNECTION}}:verifyConnectivity`,
    rpc: `${EKM}VerifyConnectivity`,
    // As in Cloud KMS: it makes the gateway call the EKM, so the viewer roles do not hold it.
    permission: `${EC}verifyConnectivity`,
    audit: 'data',
    handler: (d, ctx, c) => verifyConnectivity(d, ctx, c.name),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${LOCATION}/ekmConfig}`,
    rpc: `${EKM}GetEkmConfig`,
    permission: 'cloudkms.ekmConfigs.get',
    audit: 'data',
    handler: (d, _ctx, c) => getEkmConfig(d, c.name),
  }),
  route({
    fn: 'keyAdmin',
    method: 'PATCH',
    path: `/v1/{name=${LOCATION}/ekmConfig}`,
    rpc: `${EKM}UpdateEkmConfig`,
    permission: 'cloudkms.ekmConfigs.update',
    audit: 'admin',
    query: { updateMask: text },
    handler: (d, _ctx, c) => updateEkmConfig(d, c.name, fieldMask(c.query.updateMask ?? null), c.body),
  }),
  // --- Key rings -------------------------------------------------------------------------------------------
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{parent=${LOCATION}}/keyRings`,
    rpc: `${KMS}CreateKeyRing`,
    permission: `${KR}create`,
    audit: 'admin',
    query: { keyRingId: text },
    handler: (d, _ctx, c) => createKeyRing(d, c.name, c.query.keyRingId ?? null, c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{parent=${LOCATION}}/keyRings`,
    rpc: `${KMS}ListKeyRings`,
    permission: `${KR}list`,
    audit: 'data',
    query: LIST_QUERY,
    handler: async (d, _ctx, c) => page('keyRings', await listKeyRings(d, c.name, listRequest(c.query))),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${KEY_RING}}`,
    rpc: `${KMS}GetKeyRing`,
    permission: `${KR}get`,
    audit: 'data',
    handler: (d, _ctx, c) => getKeyRing(d, c.name),
  }),
  // --- Crypto keys -----------------------------------------------------------------------------------------
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{parent=${KEY_RING}}/cryptoKeys`,
    rpc: `${KMS}CreateCryptoKey`,
    permission: `${CK}create`,
    audit: 'admin',
    query: { cryptoKeyId: text, skipInitialVersionCreation: bool },
    handler: (d, ctx, c) =>
      createCryptoKey(
        d,
        ctx,
        c.name,
        c.query.cryptoKeyId ?? null,
        c.query.skipInitialVersionCreation ?? false,
        c.body,
      ),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{parent=${KEY_RING}}/cryptoKeys`,
    rpc: `${KMS}ListCryptoKeys`,
    permission: `${CK}list`,
    audit: 'data',
    query: { ...LIST_QUERY, versionView: view },
    handler: async (d, _ctx, c) => page('cryptoKeys', await listCryptoKeys(d, c.name, listRequest(c.query))),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${CRYPTO_KEY}}`,
    rpc: `${KMS}GetCryptoKey`,
    permission: `${CK}get`,
    audit: 'data',
    handler: (d, _ctx, c) => getCryptoKey(d, c.name),
  }),
  route({
    fn: 'keyAdmin',
    method: 'PATCH',
    path: `/v1/{name=${CRYPTO_KEY}}`,
    rpc: `${KMS}UpdateCryptoKey`,
    permission: `${CK}update`,
    audit: 'admin',
    query: { updateMask: text },
    handler: (d, _ctx, c) => patchCryptoKey(d, c.name, fieldMask(c.query.updateMask ?? null), c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{name=${CRYPTO_KEY}}:updatePrimaryVersion`,
    rpc: `${KMS}UpdateCryptoKeyPrimaryVersion`,
    permission: `${CK}update`,
    audit: 'admin',
    handler: (d, _ctx, c) => updatePrimaryVersion(d, c.name, c.body),
  }),
  // --- Crypto: encrypt and decrypt (their own functions) ---------------------------------------------------
  route({
    fn: 'encrypt',
    method: 'POST',
    path: `/v1/{name=${CRYPTO_KEY}}:encrypt`,
    rpc: `${KMS}Encrypt`,
    permission: USE_TO_ENCRYPT,
    audit: 'data',
    handler: (d, ctx, c) => encrypt(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'encrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:encrypt`,
    rpc: `${KMS}Encrypt`,
    permission: USE_TO_ENCRYPT,
    audit: 'data',
    handler: (d, ctx, c) => encrypt(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'decrypt',
    method: 'POST',
    path: `/v1/{name=${CRYPTO_KEY}}:decrypt`,
    rpc: `${KMS}Decrypt`,
    permission: USE_TO_DECRYPT,
    audit: 'data',
    handler: (d, ctx, c) => decrypt(d, ctx, c.name, c.body),
  }),
  // Not in Cloud KMS's URL map; routed so the caller learns to use the key name instead of a bare 404.
  route({
    fn: 'decrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:decrypt`,
    rpc: `${KMS}Decrypt`,
    permission: USE_TO_DECRYPT,
    audit: 'data',
    handler: (d, ctx, c) => decrypt(d, ctx, c.name, c.body),
  }),
  // --- Crypto key versions ---------------------------------------------------------------------------------
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{parent=${CRYPTO_KEY}}/cryptoKeyVersions`,
    rpc: `${KMS}CreateCryptoKeyVersion`,
    permission: `${CKV}create`,
    audit: 'admin',
    handler: (d, ctx, c) => createCryptoKeyVersion(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{parent=${CRYPTO_KEY}}/cryptoKeyVersions`,
    rpc: `${KMS}ListCryptoKeyVersions`,
    permission: `${CKV}list`,
    audit: 'data',
    query: { ...LIST_QUERY, view },
    handler: async (d, _ctx, c) =>
      page('cryptoKeyVersions', await listCryptoKeyVersions(d, c.name, listRequest(c.query))),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${VERSION}}`,
    rpc: `${KMS}GetCryptoKeyVersion`,
    permission: `${CKV}get`,
    audit: 'data',
    handler: (d, _ctx, c) => getCryptoKeyVersion(d, c.name),
  }),
  route({
    fn: 'keyAdmin',
    method: 'PATCH',
    path: `/v1/{name=${VERSION}}`,
    rpc: `${KMS}UpdateCryptoKeyVersion`,
    permission: `${CKV}update`,
    audit: 'admin',
    query: { updateMask: text },
    handler: (d, ctx, c) =>
      patchCryptoKeyVersion(d, ctx, c.name, fieldMask(c.query.updateMask ?? null), c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:destroy`,
    rpc: `${KMS}DestroyCryptoKeyVersion`,
    permission: `${CKV}destroy`,
    audit: 'admin',
    handler: (d, _ctx, c) => destroyCryptoKeyVersion(d, c.name, c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:restore`,
    rpc: `${KMS}RestoreCryptoKeyVersion`,
    permission: `${CKV}restore`,
    audit: 'admin',
    handler: (d, _ctx, c) => restoreCryptoKeyVersion(d, c.name, c.body),
  }),
  // --- Key import: import jobs and cryptoKeyVersions.import (docs/key-import.md) -----------------------------
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{parent=${KEY_RING}}/importJobs`,
    rpc: `${KMS}CreateImportJob`,
    permission: `${IJ}create`,
    audit: 'admin',
    query: { importJobId: text },
    handler: (d, _ctx, c) => createImportJob(d, c.name, c.query.importJobId ?? null, c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{parent=${KEY_RING}}/importJobs`,
    rpc: `${KMS}ListImportJobs`,
    permission: `${IJ}list`,
    audit: 'data',
    query: LIST_QUERY,
    handler: async (d, _ctx, c) => page('importJobs', await listImportJobs(d, c.name, listRequest(c.query))),
  }),
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${IMPORT_JOB}}`,
    rpc: `${KMS}GetImportJob`,
    permission: `${IJ}get`,
    audit: 'data',
    query: { publicKeyFormat },
    handler: (d, _ctx, c) => getImportJob(d, c.name, c.query.publicKeyFormat),
  }),
  // cryptoKeyVersions.create on the key here; cloudkms.importJobs.useToImport on the job in the handler.
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{parent=${CRYPTO_KEY}}/cryptoKeyVersions:import`,
    rpc: `${KMS}ImportCryptoKeyVersion`,
    permission: `${CKV}create`,
    audit: 'admin',
    handler: (d, ctx, c) => importCryptoKeyVersion(d, ctx, c.name, c.body),
  }),
  // --- IAM on key rings, keys, import jobs and EKM connections ---------------------------------------------
  ...iamRoutes(KEY_RING, KR),
  ...iamRoutes(CRYPTO_KEY, CK),
  ...iamRoutes(IMPORT_JOB, IJ),
  ...iamRoutes(CONNECTION, EC),
  // --- Keys of the other purposes: signing, asymmetric decryption, MAC, raw AES, random bytes ---------------
  // Methods that make a signature, tag or ciphertext are served by encrypt, those that check or open one by
  // decrypt (the URL map, infra/routing.tf, sends them there by their verb); reading a public key and random
  // bytes are keyAdmin's.
  route({
    fn: 'keyAdmin',
    method: 'GET',
    path: `/v1/{name=${VERSION}}/publicKey`,
    rpc: `${KMS}GetPublicKey`,
    permission: VIEW_PUBLIC_KEY,
    audit: 'data',
    query: { publicKeyFormat },
    handler: (d, _ctx, c) => getPublicKey(d, c.name, c.query.publicKeyFormat),
  }),
  route({
    fn: 'encrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:asymmetricSign`,
    rpc: `${KMS}AsymmetricSign`,
    permission: USE_TO_SIGN,
    audit: 'data',
    handler: (d, ctx, c) => asymmetricSign(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'decrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:asymmetricDecrypt`,
    rpc: `${KMS}AsymmetricDecrypt`,
    permission: USE_TO_DECRYPT,
    audit: 'data',
    handler: (d, ctx, c) => asymmetricDecrypt(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'encrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:macSign`,
    rpc: `${KMS}MacSign`,
    permission: USE_TO_SIGN,
    audit: 'data',
    handler: (d, ctx, c) => macSign(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'decrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:macVerify`,
    rpc: `${KMS}MacVerify`,
    permission: USE_TO_VERIFY,
    audit: 'data',
    handler: (d, ctx, c) => macVerify(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'encrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:rawEncrypt`,
    rpc: `${KMS}RawEncrypt`,
    permission: USE_TO_ENCRYPT,
    audit: 'data',
    handler: (d, ctx, c) => rawEncrypt(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'decrypt',
    method: 'POST',
    path: `/v1/{name=${VERSION}}:rawDecrypt`,
    rpc: `${KMS}RawDecrypt`,
    permission: USE_TO_DECRYPT,
    audit: 'data',
    handler: (d, ctx, c) => rawDecrypt(d, ctx, c.name, c.body),
  }),
  route({
    fn: 'keyAdmin',
    method: 'POST',
    path: `/v1/{location=${LOCATION}}:generateRandomBytes`,
    rpc: `${KMS}GenerateRandomBytes`,
    permission: GENERATE_RANDOM_BYTES,
    audit: 'data',
    handler: (d, ctx, c) => generateRandomBytes(d, ctx, c.name, c.body),
  }),
  // --- Cloud KMS methods not implemented: 501 naming them ---------------------------------------------------
  notImplemented(
    'POST',
    `/v1/{name=${VERSION}}:decapsulate`,
    'Decapsulate',
    `${CKV}useToDecapsulate`,
    'KEY_ENCAPSULATION keys (ML-KEM, X-Wing) cannot be created here.',
  ),
  notImplemented(
    'GET',
    '/v1/{name=projects/*}/locations',
    'google.cloud.location.Locations.ListLocations',
    'cloudkms.locations.list',
    'any location name may be used for key rings and EKM connections.',
  ),
  notImplemented(
    'GET',
    `/v1/{name=${LOCATION}}`,
    'google.cloud.location.Locations.GetLocation',
    'cloudkms.locations.get',
    'any location name may be used for key rings and EKM connections.',
  ),
];
