import { xksPrincipal } from '../admin/admin.js';
import { DomainError } from '../core/errors.js';
import type { Reply, RequestContext, Route } from '../http/types.js';
import type { XksDeps } from './common.js';
import { injectedXksStatus, XksError, xksFailure, xksReply } from './errors.js';
import { decrypt } from './handlers/decrypt.js';
import { encrypt } from './handlers/encrypt.js';
import { getHealthStatus } from './handlers/get-health-status.js';
import { getKeyMetadata } from './handlers/get-key-metadata.js';
import { SigV4Error, verifySigV4, XKS_SERVICE } from './sigv4.js';

const XKS_PATH = /^\/(?:(.+?)\/)?kms\/xks\/v1\/(.*)$/;
const KEY_OPERATION = /^keys\/([^/]+)\/(metadata|encrypt|decrypt)$/;
const KEY_ID = /^[A-Za-z0-9._-]{1,128}$/;

type KeyHandler = (ctx: RequestContext, deps: XksDeps, keyId: string, principals: string[]) => Promise<Reply>;
const KEY_HANDLERS: Record<string, [string, KeyHandler]> = {
  metadata: ['getKeyMetadata', getKeyMetadata],
  encrypt: ['encrypt', encrypt],
  decrypt: ['decrypt', decrypt],
};

/**
 * AWS XKS proxy API v1 routes, under any URI path prefix that has a live credential:
 *   POST /{prefix}/kms/xks/v1/health
 *   POST /{prefix}/kms/xks/v1/keys/{externalKeyId}/metadata | encrypt | decrypt
 * Check order: path and prefix (404 InvalidUriPathException), method (405), SigV4 (401), rate (429),
 * body (400), then the operation. Returns undefined for paths that are not XKS paths.
 */
export function matchXks(method: string, path: string, deps: XksDeps): Route | undefined {
  const match = XKS_PATH.exec(path);
  if (!match) return undefined;
  const prefix = match[1] ?? '';
  const rest = match[2] ?? '';
  const base = {
    protocol: 'xks' as const,
    fail: (error: unknown, ctx: RequestContext) => xksFailure(error, deps.log, ctx.fields),
    injectedStatus: injectedXksStatus,
  };
  let operation: string;
  let keyId: string | undefined;
  let run: (ctx: RequestContext, principals: string[]) => Promise<Reply>;
  const keyOperation = KEY_OPERATION.exec(rest);
  if (rest === 'health') {
    operation = 'getHealthStatus';
    run = (ctx) => getHealthStatus(ctx, deps);
  } else if (keyOperation) {
    const [name, handler] = KEY_HANDLERS[keyOperation[2]!]!;
    operation = name;
    keyId = keyOperation[1]!;
    const id = keyId;
    run = (ctx, principals) => {
      if (!KEY_ID.test(id))
        throw new DomainError('KEY_NOT_FOUND', 'externalKeyId must be 1-128 of [A-Za-z0-9._-]');
      return handler(ctx, deps, id, principals);
    };
  } else {
    return {
      ...base,
      operation: 'unknown',
      run: async () => xksReply('InvalidUriPathException', 'no such XKS path'),
    };
  }
  return {
    ...base,
    operation,
    keyId,
    run: async (ctx) => {
      const credentials = Object.values(deps.keys.state.read().xksCredentials);
      if (!credentials.some((c) => c.uriPrefix === prefix)) {
        return xksReply('InvalidUriPathException', 'the URI path prefix is not served by this proxy');
      }
      if (method !== 'POST') {
        return { status: 405, headers: { allow: 'POST' }, outcome: 'MethodNotAllowed' };
      }
      try {
        const auth = await verifySigV4(
          { method, path, query: ctx.query, headers: ctx.req.headers, body: ctx.body },
          (accessKeyId) =>
            credentials.find((c) => c.accessKeyId === accessKeyId && c.uriPrefix === prefix)?.secretAccessKey,
          { service: XKS_SERVICE, region: deps.region, now: deps.now() },
        );
        ctx.fields.accessKeyId = auth.accessKeyId;
      } catch (error) {
        if (error instanceof SigV4Error) throw new XksError('AuthenticationFailedException', error.message);
        throw error;
      }
      ctx.fields.principal = xksPrincipal(prefix);
      if (!deps.limiter.take(`xks:${prefix}`)) {
        throw new XksError(
          'ThrottlingException',
          'request rate for this URI path prefix exceeded; retry with backoff',
        );
      }
      return run(ctx, [xksPrincipal(prefix), 'xks:*']);
    },
  };
}
