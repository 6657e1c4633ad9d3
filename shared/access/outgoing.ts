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
  /** Domain of the per-project EKM identities (OPENEKM_EKM_IDENTITY_DOMAIN); default: the domain of `email`. */
  identityDomain?: string;
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

  /**
   * A token for the EKM at `audience` (its origin) whose sub and email are `subject` (a project's EKM identity,
   * shared/ekm/identity.ts; by default the gateway identity), from cache while it has more than a minute left.
   */
  async tokenFor(audience: string, subject: string = this.config.email): Promise<string> {
    const cacheKey = `${subject}\n${audience}`;
    const hit = this.tokens.get(cacheKey);
    const nowMs = this.now();
    if (hit && hit.renewAt > nowMs) return hit.token;
    const jwk = this.config.keys[0]!;
    const alg = jwk.alg ?? (jwk.kty === 'EC' ? 'ES256' : 'RS256');
    this.signingKey ??= importJWK(jwk, alg);
    const iat = Math.floor(nowMs / 1000);
    const token = await new SignJWT({ email: subject, email_verified: true })
      .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
      .setIssuer(this.config.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + LIFETIME_SECONDS)
      .sign(await this.signingKey);
    if (this.tokens.size > 1000) this.tokens.clear();
    this.tokens.set(cacheKey, { token, renewAt: nowMs + (LIFETIME_SECONDS - RENEW_BEFORE_SECONDS) * 1000 });
    return token;
  }
}

/**
 * Google-signed ID tokens from the metadata server, for deployments on Google Cloud whose EKM trusts Google's
 * issuer (as Cloud EKM partners do). The host comes from GCE_METADATA_HOST when set (the convention of Google's
 * client libraries), else metadata.google.internal. Tokens are reused until one minute before they expire.
 */
export class MetadataIdTokenSource {
  private readonly tokens = new Map<string, { token: string; renewAt: number }>();

  constructor(
    private readonly host: string = process.env.GCE_METADATA_HOST ?? 'metadata.google.internal',
    private readonly now: () => number = Date.now,
  ) {}

  async tokenFor(audience: string, signal: AbortSignal): Promise<string> {
    const hit = this.tokens.get(audience);
    if (hit && hit.renewAt > this.now()) return hit.token;
    const url = `http://${this.host}/computeMetadata/v1/instance/service-accounts/default/identity?audience=${encodeURIComponent(audience)}&format=full`;
    const res = await fetch(url, {
      headers: { 'Metadata-Flavor': 'Google' },
      signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]),
    });
    const token = (await res.text()).trim();
    if (!res.ok || token.split('.').length !== 3) {
      throw new Error(`the metadata server gave no ID token (HTTP ${res.status})`);
    }
    let exp = this.now() / 1000 + 300;
    try {
      const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as {
        exp?: number;
      };
      if (typeof payload.exp === 'number') exp = payload.exp;
    } catch {
      // keep the conservative default lifetime
    }
    if (this.tokens.size > 1000) this.tokens.clear();
    this.tokens.set(audience, { token, renewAt: exp * 1000 - 60_000 });
    return token;
  }
}
