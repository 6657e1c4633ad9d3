import type { Route } from '../http/types.js';
import type { GoogleEkmDeps } from './common.js';
import { googleEkmFailure, injectedGoogleStatus, rpcReply } from './errors.js';
import { checkCryptoSpacePermissions } from './handlers/check-crypto-space-permissions.js';
import { createKey } from './handlers/create-key.js';
import { destroyKey } from './handlers/destroy-key.js';
import { getInfo } from './handlers/get-info.js';
import { unwrap } from './handlers/unwrap.js';
import { wrap } from './handlers/wrap.js';

const KEY_VERB = /^\/v0\/keys\/([A-Za-z0-9._-]{1,128}):(wrap|unwrap|destroyKey)$/;
const SPACE_KEY_VERB =
  /^\/v0\/cryptospaces\/([A-Za-z0-9._-]{1,128})\/keys\/([A-Za-z0-9._-]{1,128}):(wrap|unwrap|destroyKey)$/;
const SPACE_VERB = /^\/v0\/cryptospaces\/([A-Za-z0-9._-]{1,128}):(createKey|checkCryptoSpacePermissions)$/;

/**
 * Google EKM API v0 routes:
 *   POST /v0/keys/{keyId}:wrap | :unwrap | :destroyKey
 *   POST /v0/cryptospaces/{cryptoSpaceId}/keys/{keyId}:wrap | :unwrap | :destroyKey  (coordinated keys)
 *   POST /v0/cryptospaces/{cryptoSpaceId}:createKey | :checkCryptoSpacePermissions
 *   GET  /v0/info
 * Returns undefined for paths outside /v0/.
 */
export function matchGoogleEkm(method: string, path: string, deps: GoogleEkmDeps): Route | undefined {
  if (!path.startsWith('/v0/')) return undefined;
  const base = {
    protocol: 'google-ekm' as const,
    fail: (error: unknown, ctx: { fields: Record<string, unknown> }) =>
      googleEkmFailure(error, deps.log, ctx.fields),
    injectedStatus: injectedGoogleStatus,
  };
  const notAllowed = (allowed: string): Route => ({
    ...base,
    operation: 'methodNotAllowed',
    run: async () => ({
      ...rpcReply('UNIMPLEMENTED', `use ${allowed} for this URL`, 'METHOD_NOT_ALLOWED', 405),
      headers: { allow: allowed },
    }),
  });
  if (path === '/v0/info') {
    if (method !== 'GET') return notAllowed('GET');
    return { ...base, operation: 'getInfo', run: (ctx) => getInfo(ctx, deps) };
  }
  const keyVerb = KEY_VERB.exec(path);
  if (keyVerb) {
    const [, keyId, verb] = keyVerb as unknown as [string, string, 'wrap' | 'unwrap' | 'destroyKey'];
    if (method !== 'POST') return { ...notAllowed('POST'), keyId };
    const handler = verb === 'wrap' ? wrap : verb === 'unwrap' ? unwrap : destroyKey;
    return { ...base, operation: verb, keyId, run: (ctx) => handler(ctx, deps, keyId) };
  }
  const spaceKeyVerb = SPACE_KEY_VERB.exec(path);
  if (spaceKeyVerb) {
    const [, spaceId, keyId, verb] = spaceKeyVerb as unknown as [
      string,
      string,
      string,
      'wrap' | 'unwrap' | 'destroyKey',
    ];
    if (method !== 'POST') return { ...notAllowed('POST'), keyId };
    const handler = verb === 'wrap' ? wrap : verb === 'unwrap' ? unwrap : destroyKey;
    return { ...base, operation: verb, keyId, run: (ctx) => handler(ctx, deps, keyId, spaceId) };
  }
  const spaceVerb = SPACE_VERB.exec(path);
  if (spaceVerb) {
    const [, spaceId, verb] = spaceVerb as unknown as [
      string,
      string,
      'createKey' | 'checkCryptoSpacePermissions',
    ];
    if (method !== 'POST') return notAllowed('POST');
    const handler = verb === 'createKey' ? createKey : checkCryptoSpacePermissions;
    return { ...base, operation: verb, run: (ctx) => handler(ctx, deps, spaceId) };
  }
  return {
    ...base,
    operation: 'unknown',
    run: async () =>
      rpcReply(
        'NOT_FOUND',
        'no such Google EKM method; key URIs look like {origin}/v0/keys/{keyId}',
        'UNKNOWN_PATH',
      ),
  };
}
