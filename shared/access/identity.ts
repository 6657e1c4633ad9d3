/**
 * Caller identity: a Bearer JWT verified with jose against the configured trusted issuers (signature, iss, aud,
 * exp/nbf with a small skew). Verified tokens are cached until they expire, bounded in entries.
 *
 * Principal rules (docs/security.md, "Who a caller is"): a caller is named by the token's `email` claim, which
 * must be one address with `email_verified: true`; an address in a `.gserviceaccount.com` domain gives
 * `serviceAccount:<email>`, any other `user:<email>`. A token without a verified email is refused (`sub` alone is
 * an issuer's own identifier, not a principal). Each trusted issuer may assert only the principal forms the
 * operator gives it (`principals` in OPENEKM_TRUSTED_ISSUERS, see shared/config.ts): by default Google's issuer
 * any user and service account, every other issuer users only. A principal that the forms of two trusted issuers
 * both cover is ambiguous and refused, so one issuer can never mint another's users.
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
import { defaultPrincipalForms, principalForm } from './principal-forms.js';

export interface Caller {
  principal: string;
  issuer: string;
}

const CLOCK_SKEW_SECONDS = 30;

/** One address, no spaces or control characters, a dot in the domain. */
const EMAIL = /^[^@\s\p{Cc}]{1,64}@[^@\s\p{Cc}]+\.[^@\s\p{Cc}]+$/u;

/**
 * The principal a verified token's claims name: `serviceAccount:<email>` for an address in a
 * `.gserviceaccount.com` domain, `user:<email>` for any other; refused without a verified email.
 */
function principalFromClaims(claims: Record<string, unknown>): string {
  const email = claims.email;
  if (email === undefined) {
    throw RpcError.unauthenticated(
      'The access token has no email claim. OpenEKM names callers by their verified email; a token with only a subject ("sub") is not accepted.',
    );
  }
  if (typeof email !== 'string' || email.length > 320 || !EMAIL.test(email)) {
    throw RpcError.unauthenticated("The access token's email claim is not a single email address.");
  }
  if (claims.email_verified !== true) {
    throw RpcError.unauthenticated(
      claims.email_verified === undefined
        ? 'The access token does not say its email is verified (no email_verified claim); get a token for a verified email.'
        : 'The access token has an unverified email; get a token for a verified email.',
    );
  }
  return /\.gserviceaccount\.com$/i.test(email) ? `serviceAccount:${email}` : `user:${email}`;
}

export class TokenVerifier {
  private readonly issuers = new Map<
    string,
    { getKey: JWTVerifyGetKey; audiences: string[]; asserts: Array<(principal: string) => boolean> }
  >();
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
      const asserts = (t.principals ?? defaultPrincipalForms(t.issuer)).map(principalForm);
      this.issuers.set(t.issuer, { getKey, audiences: t.audiences, asserts });
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
      const caller: Caller = { principal: this.principalOf(payload, iss as string), issuer: iss as string };
      this.verified.set(cacheKey, { caller, expMs: (payload.exp as number) * 1000 });
      return caller;
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw RpcError.unauthenticated(tokenProblem(err));
    }
  }

  /** The token's principal, when its issuer may assert it and no other trusted issuer may. */
  private principalOf(claims: Record<string, unknown>, iss: string): string {
    const principal = principalFromClaims(claims);
    if (!this.issuers.get(iss)?.asserts.some((t) => t(principal))) {
      throw RpcError.unauthenticated(
        `The access token's issuer is not trusted to assert ${principal.slice(0, principal.indexOf(':'))} principals like this one; the operator lists what each issuer may assert (OPENEKM_TRUSTED_ISSUERS "principals").`,
      );
    }
    for (const [other, i] of this.issuers) {
      if (other !== iss && i.asserts.some((t) => t(principal))) {
        throw RpcError.unauthenticated(
          'The access token is ambiguous: more than one trusted issuer may assert its principal. The operator must give the issuers disjoint "principals" (OPENEKM_TRUSTED_ISSUERS).',
        );
      }
    }
    return principal;
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
