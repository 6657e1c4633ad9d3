/**
 * OpenEKM's own identity towards external key managers: a JWT signed with the gateway's signing key
 * (iss = the gateway issuer, sub = email = the gateway identity, aud = the EKM origin, 5-minute lifetime), reused
 * until one minute before it expires. The public half is published as a JWKS (GET /.well-known/openekm/jwks.json)
 * that partners configure as a trusted issuer.
 */
import { importJWK, type JWK, SignJWT } from 'jose';

const LIFETIME_SECONDS = 300;
const RENEW_BEFORE_SECONDS = 60;

export interface GatewayIdentityConfig {
  email: string;
  issuer: string;
  /** Private signing keys as JWKs (ES256 or RS256); the first signs, all are published. */
  keys: JWK[];
}

export class GatewayIdentity {
  private readonly tokens = new Map<string, { token: string; renewAt: number }>();
  private signingKey: ReturnType<typeof importJWK> | undefined;

  constructor(
    readonly config: GatewayIdentityConfig,
    private readonly now: () => number = Date.now,
  ) {
    if (config.keys.length === 0) throw new Error('GatewayIdentity needs a signing key');
  }

  get principal(): string {
    return this.config.email;
  }

  /** The public keys, for partners to trust. */
  jwks(): { keys: JWK[] } {
    return {
      keys: this.config.keys.map((k) => {
        const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k;
        return { ...pub, use: 'sig' };
      }),
    };
  }

  /** A token for the EKM at `audience` (its origin), from cache while it has more than a minute left. */
  async tokenFor(audience: string): Promise<string> {
    const hit = this.tokens.get(audience);
    const nowMs = this.now();
    if (hit && hit.renewAt > nowMs) return hit.token;
    const jwk = this.config.keys[0]!;
    const alg = jwk.alg ?? (jwk.kty === 'EC' ? 'ES256' : 'RS256');
    this.signingKey ??= importJWK(jwk, alg);
    const iat = Math.floor(nowMs / 1000);
    const token = await new SignJWT({ email: this.config.email, email_verified: true })
      .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
      .setIssuer(this.config.issuer)
      .setSubject(this.config.email)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + LIFETIME_SECONDS)
      .sign(await this.signingKey);
    if (this.tokens.size > 1000) this.tokens.clear();
    this.tokens.set(audience, { token, renewAt: nowMs + (LIFETIME_SECONDS - RENEW_BEFORE_SECONDS) * 1000 });
    return token;
  }
}
