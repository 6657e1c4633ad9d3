/**
 * Caller identity: a Bearer JWT verified with jose against the configured trusted issuers (signature, iss, aud,
 * exp/nbf with a small skew). Verified tokens are cached until they expire, bounded in entries.
 *
 * Principal rules: the `email` claim gives `serviceAccount:<email>` when the address is a service account
 * (ends in "gserviceaccount.com"), else `user:<email>`; a token without `email` gives `user:<sub>`. A token whose
 * `email_verified` is false is refused.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import { LRUCache } from 'lru-cache';
import type { TrustedIssuer } from '../config.js';
import { RpcError } from '../errors.js';

export interface Caller {
  principal: string;
  issuer: string;
}

const CLOCK_SKEW_SECONDS = 30;

function principalFromClaims(claims: { email?: unknown; sub?: unknown }): string {
  if (typeof claims.email === 'string' && claims.email.includes('@')) {
    return claims.email.endsWith('gserviceaccount.com')
      ? `serviceAccount:${claims.email}`
      : `user:${claims.email}`;
  }
  if (typeof claims.sub === 'string' && claims.sub) return `user:${claims.sub}`;
  throw RpcError.unauthenticated('The access token names no principal (no email or sub claim).');
}

export class TokenVerifier {
  private readonly issuers = new Map<string, { getKey: JWTVerifyGetKey; audiences: string[] }>();
  private readonly verified = new LRUCache<string, { caller: Caller; expMs: number }>({ max: 10_000 });

  constructor(
    trusted: TrustedIssuer[],
    private readonly now: () => number = Date.now,
  ) {
    for (const t of trusted) {
      let getKey: JWTVerifyGetKey;
      if (t.jwksUrl) {
        getKey = createRemoteJWKSet(new URL(t.jwksUrl), {
          timeoutDuration: 2000,
          cooldownDuration: 30_000,
          cacheMaxAge: 600_000,
        });
      } else {
        const jwks = t.jwks ?? (JSON.parse(readFileSync(t.jwksFile!, 'utf8')) as JSONWebKeySet);
        getKey = createLocalJWKSet(jwks as JSONWebKeySet);
      }
      this.issuers.set(t.issuer, { getKey, audiences: t.audiences });
    }
  }

  /** Verifies an Authorization header value; throws UNAUTHENTICATED with a message that says what to fix. */
  async verify(authorization: string | undefined): Promise<Caller> {
    if (!authorization) {
      throw RpcError.unauthenticated(
        'Request is missing required authentication credential. Send "Authorization: Bearer <token>" (locally: npm run --silent token).',
      );
    }
    const m = /^Bearer\s+([A-Za-z0-9_\-.=]+)$/i.exec(authorization.trim());
    if (!m) throw RpcError.unauthenticated('The Authorization header must be "Bearer <JWT>".');
    const token = m[1]!;
    const cacheKey = createHash('sha256').update(token).digest('base64url');
    const hit = this.verified.get(cacheKey);
    if (hit && hit.expMs > this.now()) return hit.caller;

    let iss: unknown;
    try {
      // Unverified: only to pick the issuer whose keys verify the token below.
      iss = decodeJwt(token).iss;
    } catch {
      throw RpcError.unauthenticated('The access token is not a JWT.');
    }
    const issuer = typeof iss === 'string' ? this.issuers.get(iss) : undefined;
    if (!issuer)
      throw RpcError.unauthenticated('The access token was issued by an issuer this service does not trust.');
    try {
      const { payload } = await jwtVerify(token, issuer.getKey, {
        issuer: iss as string,
        audience: issuer.audiences,
        clockTolerance: CLOCK_SKEW_SECONDS,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp'],
      });
      if (payload.email_verified === false)
        throw RpcError.unauthenticated('The access token has an unverified email.');
      const caller: Caller = { principal: principalFromClaims(payload), issuer: iss as string };
      this.verified.set(cacheKey, { caller, expMs: (payload.exp as number) * 1000 });
      return caller;
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw RpcError.unauthenticated(tokenProblem(err));
    }
  }
}

function tokenProblem(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'The access token has expired; get a new one.';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'The access token is not meant for this service (wrong audience).';
    if (err.claim === 'nbf') return 'The access token is not valid yet (nbf is in the future).';
    if (err.reason === 'missing') return `The access token has no "${err.claim}" claim; it must have one.`;
    return `The access token has an invalid "${err.claim}" claim.`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return 'The access token signature is invalid.';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'The access token was signed with an unknown key.';
  if (err instanceof joseErrors.JWKSTimeout)
    return 'The token issuer keys could not be fetched in time; retry.';
  return 'The access token is invalid.';
}
