import { readFileSync, statSync } from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { TrustedIssuer } from '../config.js';
import { DomainError } from '../core/errors.js';

/** Clock skew allowed on exp / nbf / iat, in seconds. */
export const CLOCK_SKEW_SECONDS = 60;
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];

export interface Caller {
  /**
   * The token's verified `email` (email_verified true): grants name emails, as partners grant a service account.
   * `sub` is never matched against grants: it is an opaque id that another issuer may assign to anyone.
   */
  principals: string[];
  /** The verified email, also logged. */
  principal: string;
  issuer: string;
}

/**
 * Verifies `Authorization: Bearer <JWT>` against the configured trusted issuers with jose: signature
 * (asymmetric algorithms only), iss, aud (this EKM's origins), exp and nbf within CLOCK_SKEW_SECONDS.
 */
export class TokenVerifier {
  private readonly keySets = new Map<string, () => JWTVerifyGetKey>();

  constructor(
    issuers: TrustedIssuer[],
    private readonly audiences: () => string[],
  ) {
    for (const issuer of issuers) {
      if (issuer.jwksUrl) {
        const remote = createRemoteJWKSet(new URL(issuer.jwksUrl), {
          timeoutDuration: 2_000,
          cooldownDuration: 10_000,
        });
        this.keySets.set(issuer.issuer, () => remote);
      } else if (issuer.jwksFile) {
        this.keySets.set(issuer.issuer, fileKeySet(issuer.jwksFile));
      }
    }
  }

  async verify(authorization: string | undefined): Promise<Caller> {
    const match = /^Bearer\s+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(authorization ?? '');
    if (!match) throw unauthenticated('the request has no "Authorization: Bearer <token>" header');
    const token = match[1]!;
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch (cause) {
      throw unauthenticated('the bearer token is not a JWT', cause);
    }
    const keySet = issuer === undefined ? undefined : this.keySets.get(issuer);
    if (!issuer || !keySet) throw unauthenticated('the token issuer is not trusted by this EKM');
    try {
      const { payload } = await jwtVerify(token, keySet(), {
        issuer,
        audience: this.audiences(),
        clockTolerance: CLOCK_SKEW_SECONDS,
        algorithms: ALGORITHMS,
        requiredClaims: ['exp'],
      });
      if (typeof payload.email !== 'string' || payload.email === '')
        throw unauthenticated('the token carries no email claim: grants at this EKM name emails');
      if (payload.email_verified !== true)
        throw unauthenticated('the token email is not verified (email_verified must be true)');
      const email = payload.email.toLowerCase();
      return { principals: [email], principal: email, issuer };
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw unauthenticated(describeJoseError(error), error);
    }
  }
}

function describeJoseError(error: unknown): string {
  const code = (error as { code?: string }).code;
  const claim = (error as { claim?: string }).claim;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'aud') return 'the token audience is not this EKM (expected its http or https origin)';
      if (claim === 'nbf' || claim === 'iat') return 'the token is not valid yet';
      return `the token claim ${claim ?? ''} is not valid`;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'the token signature does not verify with the issuer keys';
    case 'ERR_JWKS_TIMEOUT':
      return 'the issuer keys could not be fetched in time';
    default:
      return 'the token could not be verified';
  }
}

function unauthenticated(message: string, cause?: unknown): DomainError {
  return new DomainError('UNAUTHENTICATED', message, cause === undefined ? undefined : { cause });
}

/** A JWKS file, re-read when it changes (so a key rotation needs no restart). */
function fileKeySet(path: string): () => JWTVerifyGetKey {
  let stamp = '';
  let keySet: JWTVerifyGetKey | undefined;
  return () => {
    let current = '';
    try {
      const st = statSync(path);
      current = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      current = 'missing';
    }
    if (!keySet || current !== stamp) {
      stamp = current;
      const jwks: JSONWebKeySet =
        current === 'missing' ? { keys: [] } : JSON.parse(readFileSync(path, 'utf8'));
      keySet = createLocalJWKSet(jwks);
    }
    return keySet;
  };
}
