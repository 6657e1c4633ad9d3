/**
 * The Google Cloud EKM API v0 (partner protocol, JSON over HTTPS): `{keyUri}:wrap` / `:unwrap` with a Bearer
 * token (our signed JWT or a Google ID token), GetInfo, and the coordinated-key control plane. Field names follow
 * the specification verbatim. Request bodies and answer checks are plain functions (unit-tested with recorded
 * answers); the class adds the token and the transport.
 */
import { type GatewayIdentity, MetadataIdTokenSource } from '../access/outgoing.js';
import type { EkmEndpoint, ResolvedKey } from './endpoints.js';
import { EkmFailure } from './errors.js';
import { ekmIdentityFor } from './identity.js';
import { b64, type EkmCallContext, type EkmProtocol, failureOf } from './protocols.js';
import type { EkmHttpResponse, EkmTransport } from './transport.js';

/** additionalContext of every Google EKM request. */
function requestContext(ctx: EkmCallContext) {
  return {
    relativeResourceName: ctx.versionName,
    fullResourceName: `//cloudkms.googleapis.com/${ctx.versionName}`,
    accessReasonContext: { reason: ctx.reason },
    isKeyHealthCheck: ctx.healthCheck === true,
  };
}

/** The WrapRequest body. */
export function wrapRequest(plaintext: Buffer, ctx: EkmCallContext): string {
  return JSON.stringify({
    plaintext: plaintext.toString('base64'),
    additionalAuthenticatedData: ctx.aad.toString('base64'),
    additionalContext: requestContext(ctx),
  });
}

/** The wrapped blob of a WrapResponse; throws EkmFailure for a refusal or an unusable answer. */
export function wrapAnswer(res: EkmHttpResponse): Buffer {
  if (res.status !== 200) throw failureOf(res, 'wrap');
  const blob = b64((res.body as { wrappedBlob?: unknown } | undefined)?.wrappedBlob, 'wrappedBlob');
  if (blob.length === 0 || blob.length > 4096)
    throw new EkmFailure('UNEXPECTED_RESPONSE', 'wrappedBlob has an unusable size');
  return blob;
}

/** The UnwrapRequest body. */
export function unwrapRequest(blob: Buffer, ctx: EkmCallContext): string {
  return JSON.stringify({
    wrappedBlob: blob.toString('base64'),
    additionalAuthenticatedData: ctx.aad.toString('base64'),
    additionalContext: requestContext(ctx),
  });
}

/** The plaintext of an UnwrapResponse; throws EkmFailure for a refusal or an unusable answer. */
export function unwrapAnswer(res: EkmHttpResponse): Buffer {
  if (res.status !== 200) throw failureOf(res, 'unwrap');
  return b64((res.body as { plaintext?: unknown } | undefined)?.plaintext, 'plaintext');
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
    body: string,
    signal: AbortSignal,
    /** The resource the call is for (its project's EKM identity signs the token). */
    resource: string,
  ): Promise<EkmHttpResponse> {
    const token = await this.token(endpoint, signal, resource);
    return this.transport.send(
      endpoint,
      url,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      },
      signal,
    );
  }

  async wrap(key: ResolvedKey, plaintext: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    return wrapAnswer(
      await this.post(
        key.endpoint,
        `${key.keyUri}:wrap`,
        wrapRequest(plaintext, ctx),
        signal,
        ctx.versionName,
      ),
    );
  }

  async unwrap(key: ResolvedKey, blob: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    return unwrapAnswer(
      await this.post(
        key.endpoint,
        `${key.keyUri}:unwrap`,
        unwrapRequest(blob, ctx),
        signal,
        ctx.versionName,
      ),
    );
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
      JSON.stringify({ keyUsage: ['ENCRYPT', 'DECRYPT'], additionalContext: requestContext(ctx) }),
      signal,
      ctx.versionName,
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
      JSON.stringify({ additionalContext: requestContext(ctx) }),
      signal,
      ctx.versionName,
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
      JSON.stringify({ additionalContext: requestContext(ctx) }),
      signal,
      ctx.versionName,
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
