/**
 * The two partner protocols behind one interface: Google EKM API v0 (`{keyUri}:wrap` / `:unwrap`, Bearer JWT)
 * and AWS XKS proxy API v1 (`{prefix}{keyId}/encrypt` / `decrypt` / `metadata`, SigV4). Field names follow the
 * specifications verbatim. Each call is one attempt; retries and deadlines live in EkmClient.
 */
import { createHash, createHmac, type Hash, type Hmac, timingSafeEqual } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { type GatewayIdentity, MetadataIdTokenSource } from '../access/outgoing.js';
import type { EkmEndpoint, ResolvedKey } from './endpoints.js';
import { type EkmDomain, EkmFailure } from './errors.js';
import { ekmIdentityFor } from './identity.js';
import type { EkmHttpResponse, EkmTransport } from './transport.js';

export interface EkmCallContext {
  /** The CryptoKeyVersion resource name the operation is for. */
  versionName: string;
  /** Key Access Justification reason name, e.g. CUSTOMER_INITIATED_ACCESS. */
  reason: string;
  principal: string;
  requestId: string;
  /** The additional authenticated data bound at the EKM (a digest of the version name and the caller's AAD). */
  aad: Buffer;
  healthCheck?: boolean;
}

/**
 * The context of a call OpenEKM makes for itself rather than for a caller's crypto request (health checks,
 * connection checks, the coordinated-key control plane): reason GOOGLE_INITIATED_SYSTEM_OPERATION, no AAD.
 */
export function systemCall(versionName: string, principal: string, requestId: string): EkmCallContext {
  return {
    versionName,
    reason: 'GOOGLE_INITIATED_SYSTEM_OPERATION',
    principal,
    requestId,
    aad: Buffer.alloc(0),
  };
}

export interface EkmProtocol {
  wrap(key: ResolvedKey, plaintext: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer>;
  unwrap(key: ResolvedKey, blob: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer>;
  /** Checks that the key exists, is usable for encrypt and decrypt, and that we are allowed to use it. */
  checkKey(key: ResolvedKey, ctx: EkmCallContext, signal: AbortSignal): Promise<void>;
}

function b64(v: unknown, field: string): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/\-_]*={0,2}$/.test(v)) {
    throw new EkmFailure('UNEXPECTED_RESPONSE', `the EKM answer has no valid ${field}`);
  }
  return Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** HTTP status (and google.rpc status name, when given) of a failed partner answer → error domain. */
function domainOfStatus(status: number, rpcStatus: unknown, op: 'wrap' | 'unwrap' | 'check'): EkmDomain {
  if (status === 401 || status === 403) return 'EXTERNAL_PERMISSION_DENIED';
  if (status === 404) return 'EXTERNAL_NOT_FOUND';
  if (status === 429) return 'EXTERNAL_RESOURCE_EXHAUSTED';
  if (status === 503) return 'OVERLOADED_EKM';
  if (status === 501 || status === 405) return 'EXTERNAL_NOT_IMPLEMENTED';
  if (status === 504) return 'TIMEOUT';
  if (status >= 500) return 'EXTERNAL_SERVER_ERROR';
  // 400: the key exists but refuses this use (disabled, wrong usage), or the request/blob is bad.
  if (status === 400 && rpcStatus === 'FAILED_PRECONDITION') return 'EXTERNAL_PERMISSION_DENIED';
  if (status === 400 && op === 'unwrap') return 'DECRYPTION_FAILED';
  return 'UNEXPECTED_ERROR';
}

// ---- partner refusal classification (by error code, never by message text) ----
/**
 * google.rpc.ErrorInfo `reason` codes by which a Google EKM partner says it refused the request's access reason
 * (its Key Access Justifications policy) rather than OpenEKM's identity (docs/external-keys.md).
 */
export const JUSTIFICATION_REFUSAL_REASONS: ReadonlySet<string> = new Set([
  'JUSTIFICATION_REFUSED',
  'ACCESS_REASON_REFUSED',
  'KEY_ACCESS_JUSTIFICATION_REFUSED',
]);

/**
 * Whether a Google EKM refusal disables the version (docs/external-keys.md, "When the EKM refuses"): the partner
 * refused OpenEKM's identity — HTTP 401/403 or google.rpc status UNAUTHENTICATED / PERMISSION_DENIED — and no
 * ErrorInfo reason code says the refusal was about the request's access reason. A justification refusal belongs to
 * one request (its reason), never to the version. Message text is never read: a key id, a principal or a partner's
 * wording must not decide whether a version is disabled for everyone.
 */
export function googleIdentityRefused(
  httpStatus: number,
  body: { status?: unknown; details?: unknown } | undefined,
): boolean {
  const refused =
    httpStatus === 401 ||
    httpStatus === 403 ||
    body?.status === 'UNAUTHENTICATED' ||
    body?.status === 'PERMISSION_DENIED';
  if (!refused) return false;
  const reasons = Array.isArray(body?.details)
    ? body.details.map((d) => (d && typeof d === 'object' ? (d as { reason?: unknown }).reason : undefined))
    : [];
  return !reasons.some((r) => typeof r === 'string' && JUSTIFICATION_REFUSAL_REASONS.has(r));
}

/**
 * XKS error names that refuse OpenEKM's credentials or their grant on the key, and so disable the version. XKS
 * carries no access reason, so no XKS refusal is a justification refusal.
 */
export const XKS_IDENTITY_REFUSALS: ReadonlySet<string> = new Set([
  'AuthenticationFailedException',
  'AccessDeniedException',
]);
// ---- end of partner refusal classification ----

function failureOf(
  res: EkmHttpResponse,
  op: 'wrap' | 'unwrap' | 'check',
  protocolDomain?: EkmDomain,
  identityRefused?: boolean,
): EkmFailure {
  const raw = res.body as { error?: unknown } | undefined;
  const body = (raw && typeof raw.error === 'object' ? raw.error : raw) as
    | { message?: unknown; status?: unknown; errorName?: unknown; errorMessage?: unknown; details?: unknown }
    | undefined;
  identityRefused ??= googleIdentityRefused(res.status, body);
  const said = [body?.errorName ?? body?.status, body?.message ?? body?.errorMessage]
    .filter((x) => typeof x === 'string')
    .join(': ');
  return new EkmFailure(
    protocolDomain ?? domainOfStatus(res.status, body?.status, op),
    `HTTP ${res.status}${said ? ` ${said.slice(0, 200)}` : ''}`,
    { identityRefused },
  );
}

export class GoogleEkmProtocol implements EkmProtocol {
  private idTokens: MetadataIdTokenSource | undefined;

  constructor(
    private readonly transport: EkmTransport,
    private readonly identity: GatewayIdentity | undefined,
  ) {}

  /**
   * Our Bearer token for this endpoint: our own signed JWT for the EKM identity of the project `resource` belongs
   * to (shared/ekm/identity.ts), or a Google-signed ID token from the metadata server.
   */
  private async token(
    endpoint: EkmEndpoint,
    signal: AbortSignal,
    resource: string | undefined,
  ): Promise<string> {
    if (endpoint.auth.type === 'google-id-token') {
      this.idTokens ??= new MetadataIdTokenSource();
      try {
        return await this.idTokens.tokenFor(endpoint.origin, signal);
      } catch (err) {
        throw new EkmFailure('UNEXPECTED_ERROR', `no Google ID token: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    if (!this.identity) throw new EkmFailure('UNEXPECTED_ERROR', 'no gateway signing key is configured');
    const { email, identityDomain } = this.identity.config;
    return this.identity.tokenFor(endpoint.origin, ekmIdentityFor(resource, email, identityDomain));
  }

  private async post(
    endpoint: EkmEndpoint,
    url: string,
    body: { additionalContext: { relativeResourceName: string }; [field: string]: unknown },
    signal: AbortSignal,
  ): Promise<EkmHttpResponse> {
    const token = await this.token(endpoint, signal, body.additionalContext.relativeResourceName);
    return this.transport.send(
      endpoint,
      url,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
      signal,
    );
  }

  private context(ctx: EkmCallContext) {
    return {
      relativeResourceName: ctx.versionName,
      fullResourceName: `//cloudkms.googleapis.com/${ctx.versionName}`,
      accessReasonContext: { reason: ctx.reason },
      isKeyHealthCheck: ctx.healthCheck === true,
    };
  }

  async wrap(key: ResolvedKey, plaintext: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    const res = await this.post(
      key.endpoint,
      `${key.keyUri}:wrap`,
      {
        plaintext: plaintext.toString('base64'),
        additionalAuthenticatedData: ctx.aad.toString('base64'),
        additionalContext: this.context(ctx),
      },
      signal,
    );
    if (res.status !== 200) throw failureOf(res, 'wrap');
    const blob = b64((res.body as { wrappedBlob?: unknown } | undefined)?.wrappedBlob, 'wrappedBlob');
    if (blob.length === 0 || blob.length > 4096)
      throw new EkmFailure('UNEXPECTED_RESPONSE', 'wrappedBlob has an unusable size');
    return blob;
  }

  async unwrap(key: ResolvedKey, blob: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    const res = await this.post(
      key.endpoint,
      `${key.keyUri}:unwrap`,
      {
        wrappedBlob: blob.toString('base64'),
        additionalAuthenticatedData: ctx.aad.toString('base64'),
        additionalContext: this.context(ctx),
      },
      signal,
    );
    if (res.status !== 200) throw failureOf(res, 'unwrap');
    return b64((res.body as { plaintext?: unknown } | undefined)?.plaintext, 'plaintext');
  }

  /** A wrap marked isKeyHealthCheck, as Cloud EKM does when a version is created. */
  async checkKey(key: ResolvedKey, ctx: EkmCallContext, signal: AbortSignal): Promise<void> {
    const probe = Buffer.alloc(32);
    await this.wrap(key, probe, { ...ctx, healthCheck: true }, signal);
  }

  /**
   * GetInfo (`GET {origin}/v0/info`, authenticated as the identity of the project `resource` belongs to): the EKM
   * is reachable, trusts us, and answers.
   */
  async info(endpoint: EkmEndpoint, signal: AbortSignal, resource?: string): Promise<void> {
    const token = await this.token(endpoint, signal, resource);
    const res = await this.transport.send(
      endpoint,
      `${endpoint.origin}/v0/info`,
      { method: 'GET', headers: { authorization: `Bearer ${token}` } },
      signal,
    );
    if (res.status !== 200) throw failureOf(res, 'check');
  }

  /** Coordinated keys: asks the EKM to create a key in the crypto space; answers the new key's path. */
  async createKey(
    endpoint: EkmEndpoint,
    cryptoSpacePath: string,
    ctx: EkmCallContext,
    signal: AbortSignal,
  ): Promise<string> {
    const res = await this.post(
      endpoint,
      `${endpoint.origin}/${cryptoSpacePath}:createKey`,
      { keyUsage: ['ENCRYPT', 'DECRYPT'], additionalContext: this.context(ctx) },
      signal,
    );
    if (res.status !== 200 && res.status !== 201) throw failureOf(res, 'check');
    const keyPath = (res.body as { keyPath?: unknown } | undefined)?.keyPath;
    if (
      typeof keyPath !== 'string' ||
      !/^[A-Za-z0-9._~\-/]{1,512}$/.test(keyPath) ||
      keyPath.includes('..')
    ) {
      throw new EkmFailure('UNEXPECTED_RESPONSE', 'the createKey answer has no valid keyPath');
    }
    return keyPath;
  }

  /** Coordinated keys: asks the EKM to destroy the key. A key the EKM no longer has counts as destroyed. */
  async destroyKey(key: ResolvedKey, ctx: EkmCallContext, signal: AbortSignal): Promise<void> {
    const res = await this.post(
      key.endpoint,
      `${key.keyUri}:destroyKey`,
      { additionalContext: this.context(ctx) },
      signal,
    );
    if (res.status !== 200 && res.status !== 404) throw failureOf(res, 'check');
  }

  /** Coordinated keys: whether we may create and destroy keys in the crypto space. */
  async checkCryptoSpace(
    endpoint: EkmEndpoint,
    cryptoSpacePath: string,
    ctx: EkmCallContext,
    signal: AbortSignal,
  ): Promise<void> {
    const res = await this.post(
      endpoint,
      `${endpoint.origin}/${cryptoSpacePath}:checkCryptoSpacePermissions`,
      { additionalContext: this.context(ctx) },
      signal,
    );
    if (res.status !== 200) throw failureOf(res, 'check');
    const perms = (res.body as { permissions?: unknown } | undefined)?.permissions;
    if (Array.isArray(perms) && !(perms.includes('createKey') && perms.includes('destroyKey'))) {
      throw new EkmFailure(
        'EXTERNAL_PERMISSION_DENIED',
        'the crypto space does not let OpenEKM create and destroy keys',
      );
    }
  }
}

/** XKS error names → domains (https://github.com/aws/aws-kms-xksproxy-api-spec, "Error codes"). */
const XKS_ERRORS: Record<string, EkmDomain> = {
  ValidationException: 'UNEXPECTED_ERROR',
  InvalidStateException: 'EXTERNAL_PERMISSION_DENIED',
  InvalidCiphertextException: 'DECRYPTION_FAILED',
  InvalidKeyUsageException: 'EXTERNAL_PERMISSION_DENIED',
  AuthenticationFailedException: 'EXTERNAL_PERMISSION_DENIED',
  AccessDeniedException: 'EXTERNAL_PERMISSION_DENIED',
  KeyNotFoundException: 'EXTERNAL_NOT_FOUND',
  InvalidUriPathException: 'EXTERNAL_NOT_FOUND',
  ThrottlingException: 'EXTERNAL_RESOURCE_EXHAUSTED',
  UnsupportedOperationException: 'EXTERNAL_NOT_IMPLEMENTED',
  DependencyTimeoutException: 'TIMEOUT',
  InternalException: 'EXTERNAL_SERVER_ERROR',
};

/**
 * The key-protection block for XKS: the proxy returns ciphertext, IV, tag and optional ciphertextMetadata
 * separately, so we frame them: 0x01 ‖ u8 ivLen ‖ iv ‖ tag (16) ‖ u8 metaLen ‖ metadata ‖ ciphertext.
 */
export function encodeXksBlock(iv: Buffer, tag: Buffer, meta: Buffer, ciphertext: Buffer): Buffer {
  return Buffer.concat([Buffer.from([1, iv.length]), iv, tag, Buffer.from([meta.length]), meta, ciphertext]);
}

export function decodeXksBlock(block: Buffer): { iv: Buffer; tag: Buffer; meta: Buffer; ciphertext: Buffer } {
  const fail = () => new EkmFailure('DECRYPTION_FAILED', 'the key-protection block is malformed');
  if (block.length < 2 || block[0] !== 1) throw fail();
  const ivLen = block[1]!;
  if (ivLen !== 12 && ivLen !== 16) throw fail();
  const iv = block.subarray(2, 2 + ivLen);
  const tag = block.subarray(2 + ivLen, 18 + ivLen);
  const metaAt = 18 + ivLen;
  if (block.length < metaAt + 1) throw fail();
  const metaLen = block[metaAt]!;
  if (metaLen > 20 || block.length < metaAt + 1 + metaLen + 1) throw fail();
  const meta = block.subarray(metaAt + 1, metaAt + 1 + metaLen);
  const o = metaAt + 1 + metaLen;
  return { iv, tag, meta, ciphertext: block.subarray(o) };
}

/**
 * SHA-256 / HMAC-SHA-256 for the SigV4 signer from node:crypto (the signer's checksum interface). The pure-JS
 * implementation costs several times more CPU per signed request.
 */
function toBuffer(data: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(data)
    ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    : Buffer.from(data);
}

class NodeSha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h =
      secret === undefined
        ? createHash('sha256')
        : createHmac('sha256', typeof secret === 'string' ? secret : toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(typeof data === 'string' ? data : toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {
    throw new Error('not supported');
  }
}

export class XksProtocol implements EkmProtocol {
  private readonly signers = new Map<string, SignatureV4>();

  constructor(private readonly transport: EkmTransport) {}

  private signer(endpoint: EkmEndpoint): SignatureV4 {
    let s = this.signers.get(endpoint.prefix);
    if (!s) {
      if (endpoint.auth.type !== 'sigv4')
        throw new EkmFailure('UNEXPECTED_ERROR', 'XKS endpoint without SigV4 credentials');
      s = new SignatureV4({
        service: 'kms-xks-proxy',
        region: endpoint.region,
        credentials: {
          accessKeyId: endpoint.auth.accessKeyId,
          secretAccessKey: endpoint.auth.secretAccessKey,
        },
        sha256: NodeSha256,
      });
      this.signers.set(endpoint.prefix, s);
    }
    return s;
  }

  private async post(
    key: ResolvedKey,
    op: 'encrypt' | 'decrypt' | 'metadata' | 'health',
    body: unknown,
    signal: AbortSignal,
  ) {
    const url = new URL(`${key.keyUri}/${op}`);
    const payload = JSON.stringify(body);
    const signed = await this.signer(key.endpoint).sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      headers: { host: url.host, 'content-type': 'application/json' },
      body: payload,
    });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k !== 'host') headers[k] = String(v);
    return this.transport.send(
      key.endpoint,
      url.toString(),
      { method: 'POST', headers, body: payload },
      signal,
    );
  }

  private metadata(ctx: EkmCallContext, kmsOperation: string) {
    return {
      awsPrincipalArn: ctx.principal,
      kmsOperation,
      kmsRequestId: ctx.requestId,
      kmsKeyArn: ctx.versionName,
    };
  }

  private fail(res: EkmHttpResponse, op: 'wrap' | 'unwrap' | 'check'): EkmFailure {
    const name = (res.body as { errorName?: unknown } | undefined)?.errorName;
    const known = typeof name === 'string' ? XKS_ERRORS[name] : undefined;
    const identityRefused = typeof name === 'string' && XKS_IDENTITY_REFUSALS.has(name);
    return failureOf(res, op, known, identityRefused);
  }

  async wrap(key: ResolvedKey, plaintext: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    const res = await this.post(
      key,
      'encrypt',
      {
        requestMetadata: this.metadata(ctx, 'Encrypt'),
        plaintext: plaintext.toString('base64'),
        encryptionAlgorithm: 'AES_GCM',
        additionalAuthenticatedData: ctx.aad.toString('base64'),
        ciphertextDataIntegrityValueAlgorithm: 'SHA_256',
      },
      signal,
    );
    if (res.status !== 200) throw this.fail(res, 'wrap');
    const r = (res.body ?? {}) as Record<string, unknown>;
    const ciphertext = b64(r.ciphertext, 'ciphertext');
    const iv = b64(r.initializationVector, 'initializationVector');
    const tag = b64(r.authenticationTag, 'authenticationTag');
    const meta =
      r.ciphertextMetadata === undefined ? Buffer.alloc(0) : b64(r.ciphertextMetadata, 'ciphertextMetadata');
    const cdiv = b64(r.ciphertextDataIntegrityValue, 'ciphertextDataIntegrityValue');
    if (
      ciphertext.length !== plaintext.length ||
      (iv.length !== 12 && iv.length !== 16) ||
      tag.length !== 16 ||
      meta.length > 20
    ) {
      throw new EkmFailure('UNEXPECTED_RESPONSE', 'the XKS encrypt answer has fields of the wrong size');
    }
    // CDIV = SHA-256(aad ‖ ciphertextMetadata ‖ iv ‖ ciphertext ‖ tag): proves the proxy's answer arrived intact.
    const expected = createHash('sha256')
      .update(ctx.aad)
      .update(meta)
      .update(iv)
      .update(ciphertext)
      .update(tag)
      .digest();
    if (cdiv.length !== expected.length || !timingSafeEqual(cdiv, expected)) {
      throw new EkmFailure('UNEXPECTED_RESPONSE', 'the XKS ciphertextDataIntegrityValue does not match');
    }
    return encodeXksBlock(iv, tag, meta, ciphertext);
  }

  async unwrap(key: ResolvedKey, blob: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    const { iv, tag, meta, ciphertext } = decodeXksBlock(blob);
    const body: Record<string, unknown> = {
      requestMetadata: this.metadata(ctx, 'Decrypt'),
      ciphertext: ciphertext.toString('base64'),
      initializationVector: iv.toString('base64'),
      authenticationTag: tag.toString('base64'),
      encryptionAlgorithm: 'AES_GCM',
      additionalAuthenticatedData: ctx.aad.toString('base64'),
    };
    if (meta.length > 0) body.ciphertextMetadata = meta.toString('base64');
    const res = await this.post(key, 'decrypt', body, signal);
    if (res.status !== 200) throw this.fail(res, 'unwrap');
    return b64((res.body as { plaintext?: unknown } | undefined)?.plaintext, 'plaintext');
  }

  /** The XKS health call (`POST {uriPrefix}/kms/xks/v1/health`). */
  async health(endpoint: EkmEndpoint, requestId: string, signal: AbortSignal): Promise<void> {
    const key: ResolvedKey = { endpoint, keyUri: endpoint.prefix.replace(/\/keys\/$/, ''), keyPath: '' };
    const res = await this.post(
      key,
      'health',
      { requestMetadata: { kmsOperation: 'KmsHealthCheck', kmsRequestId: requestId } },
      signal,
    );
    if (res.status !== 200) throw this.fail(res, 'check');
  }

  /** XKS metadata: the key must be an ENABLED AES_256 key usable for ENCRYPT and DECRYPT. */
  async checkKey(key: ResolvedKey, ctx: EkmCallContext, signal: AbortSignal): Promise<void> {
    const res = await this.post(
      key,
      'metadata',
      {
        requestMetadata: {
          awsPrincipalArn: ctx.principal,
          kmsOperation: 'CreateKey',
          kmsRequestId: ctx.requestId,
        },
      },
      signal,
    );
    if (res.status !== 200) throw this.fail(res, 'check');
    const m = (res.body ?? {}) as { keySpec?: unknown; keyUsage?: unknown; keyStatus?: unknown };
    if (m.keySpec !== 'AES_256' || !Array.isArray(m.keyUsage)) {
      throw new EkmFailure(
        'UNEXPECTED_RESPONSE',
        'the XKS metadata answer is not an AES_256 key description',
      );
    }
    if (!m.keyUsage.includes('ENCRYPT') || !m.keyUsage.includes('DECRYPT')) {
      throw new EkmFailure(
        'EXTERNAL_PERMISSION_DENIED',
        'the XKS key does not allow both ENCRYPT and DECRYPT',
      );
    }
    if (m.keyStatus !== 'ENABLED')
      throw new EkmFailure('EXTERNAL_PERMISSION_DENIED', `the XKS key is ${String(m.keyStatus)}`);
  }
}
