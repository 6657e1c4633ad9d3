/**
 * OpenEKM's own identity towards external key managers: a JWT signed with the gateway's signing key
 * (iss = the gateway issuer, sub = email = the gateway identity or a project's EKM identity, aud = the EKM origin, 5-minute lifetime), reused
 * per audience until one minute before it expires (a bounded cache: signing is most of the CPU of an EKM call's
 * authentication). The public half is published as a JWKS (GET /.well-known/openekm/jwks.json) that partners
 * configure as a trusted issuer.
 */
import { decodeJwt, importJWK, type JWK, SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';

const LIFETIME_SECONDS = 300;
const RENEW_BEFORE_SECONDS = 60;
/** Audiences (EKM origins) whose tokens are kept; a deployment declares a handful. */
const TOKEN_CACHE_ENTRIES = 1000;

/** Tokens per audience, each until its renewal time; a token being made is shared by concurrent callers. */
class TokenCache {
  private readonly cache: LRUCache<string, { token: Promise<string>; renewAt: number }>;

  constructor(
    private readonly now: () => number,
    max: number,
  ) {
    this.cache = new LRUCache({ max });
  }

  get size(): number {
    return this.cache.size;
  }

  async get(audience: string, make: () => Promise<{ token: string; renewAt: number }>): Promise<string> {
    const hit = this.cache.get(audience);
    if (hit && hit.renewAt > this.now()) return hit.token;
    const entry: { token: Promise<string>; renewAt: number } = {
      token: Promise.resolve(''),
      renewAt: Number.POSITIVE_INFINITY,
    };
    entry.token = make().then((made) => {
      entry.renewAt = made.renewAt;
      return made.token;
    });
    this.cache.set(audience, entry);
    // A failure is not kept: the next call tries again.
    entry.token.catch(() => {
      if (this.cache.get(audience) === entry) this.cache.delete(audience);
    });
    return entry.token;
  }
}

export interface GatewayIdentityConfig {
  email: string;
  issuer: string;
  /** Domain of the per-project EKM identities (OPENEKM_EKM_IDENTITY_DOMAIN); default: the domain of `email`. */
  identityDomain?: string;
  /** Private signing keys as JWKs (ES256 or RS256); the first signs, all are published. */
  keys: JWK[];
}

export class GatewayIdentity {
  private readonly tokens: TokenCache;
  private signingKey: ReturnType<typeof importJWK> | undefined;

  constructor(
    readonly config: GatewayIdentityConfig,
    private readonly now: () => number = Date.now,
    maxAudiences = TOKEN_CACHE_ENTRIES,
  ) {
    if (config.keys.length === 0) throw new Error('GatewayIdentity needs a signing key');
    this.tokens = new TokenCache(now, maxAudiences);
  }

  /** Audiences with a cached token (bounded by the cache size). */
  get cachedAudiences(): number {
    return this.tokens.size;
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
  tokenFor(audience: string, subject: string = this.config.email): Promise<string> {
    return this.tokens.get(`${subject}\n${audience}`, () => this.sign(audience, subject));
  }

  private async sign(audience: string, subject: string): Promise<{ token: string; renewAt: number }> {
    const nowMs = this.now();
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
    return { token, renewAt: nowMs + (LIFETIME_SECONDS - RENEW_BEFORE_SECONDS) * 1000 };
  }
}

/**
 * Google-signed ID tokens from the metadata server, for deployments on Google Cloud whose EKM trusts Google's
 * issuer (as Cloud EKM partners do). The host comes from GCE_METADATA_HOST when set (the convention of Google's
 * client libraries), else metadata.google.internal. Tokens are reused until one minute before they expire.
 */
export class MetadataIdTokenSource {
  private readonly tokens: TokenCache;

  constructor(
    private readonly host: string = process.env.GCE_METADATA_HOST ?? 'metadata.google.internal',
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = new TokenCache(now, TOKEN_CACHE_ENTRIES);
  }

  tokenFor(audience: string, signal: AbortSignal): Promise<string> {
    return this.tokens.get(audience, () => this.fetchToken(audience, signal));
  }

  private async fetchToken(
    audience: string,
    signal: AbortSignal,
  ): Promise<{ token: string; renewAt: number }> {
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
      const payload = decodeJwt(token);
      if (typeof payload.exp === 'number') exp = payload.exp;
    } catch {
      // keep the conservative default lifetime
    }
    return { token, renewAt: exp * 1000 - RENEW_BEFORE_SECONDS * 1000 };
  }
}
