/**
 * The local stack's own secrets, kept in a state directory (.openekm/ by default, OPENEKM_STATE_DIR overrides)
 * and made on first use: the root key that seals key material, and the local token issuer's signing key.
 * Nothing here is used in a cloud deployment, where these come from Secret Manager.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

export const LOCAL_ISSUER = 'https://openekm.local/issuer';
export const LOCAL_AUDIENCE = 'openekm';
export const LOCAL_OWNER = 'user:owner@openekm.local';
/** The local gateway's own identity towards EKMs (the reference EKM grants keys to it by default). */
export const LOCAL_GATEWAY_IDENTITY = 'gateway@openekm.local';
export const LOCAL_GATEWAY_ISSUER = 'https://openekm.local/gateway';

export function stateDir(): string {
  const dir = resolve(process.env.OPENEKM_STATE_DIR ?? '.openekm');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}

/** The root-keys file (OPENEKM_ROOT_KEYS_FILE format), made once. */
function ensureRootKeys(dir = stateDir()): string {
  const path = join(dir, 'root-keys');
  if (!existsSync(path)) {
    try {
      writeSecret(path, `local-1:${randomBytes(32).toString('base64')}\n`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return path;
}

interface IssuerFiles {
  privateJwkPath: string;
  jwksPath: string;
}

/** The local issuer's ES256 key pair: the private JWK, and the public JWKS the gateway trusts. */
async function ensureLocalIssuer(dir = stateDir()): Promise<IssuerFiles> {
  const privateJwkPath = join(dir, 'issuer-private.jwk.json');
  const jwksPath = join(dir, 'issuer-jwks.json');
  if (!existsSync(privateJwkPath)) {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = randomBytes(8).toString('hex');
    const priv = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
    const pub = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    try {
      writeSecret(privateJwkPath, JSON.stringify(priv));
      writeFileSync(jwksPath, JSON.stringify({ keys: [pub] }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return { privateJwkPath, jwksPath };
}

/** The gateway's signing key for its outgoing EKM tokens: a private JWKS, and its public half for the EKM. */
export async function ensureGatewaySigningKey(
  dir = stateDir(),
): Promise<{ privateJwksPath: string; publicJwksPath: string }> {
  const privateJwksPath = join(dir, 'gateway-signing-keys.json');
  const publicJwksPath = join(dir, 'gateway-jwks.json');
  if (!existsSync(privateJwksPath)) {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = `gw-${randomBytes(6).toString('hex')}`;
    const priv = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
    const pub = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    try {
      writeSecret(privateJwksPath, JSON.stringify({ keys: [priv] }));
      writeFileSync(publicJwksPath, JSON.stringify({ keys: [pub] }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return { privateJwksPath, publicJwksPath };
}

/** `user:alice@example.com` / `serviceAccount:sa@p.iam.gserviceaccount.com` → the email claim. */
function emailOfPrincipal(principal: string): string {
  const m = /^(user|serviceAccount):([^@\s]+@[^@\s]+)$/.exec(principal);
  if (!m) throw new Error(`"${principal}" is not a principal: use user:<email> or serviceAccount:<email>.`);
  const [, kind, email] = m;
  const isSa = email!.endsWith('gserviceaccount.com');
  if ((kind === 'serviceAccount') !== isSa) {
    throw new Error(
      `"${principal}": a token's principal type follows its email — addresses ending in gserviceaccount.com are service accounts, all others users.`,
    );
  }
  return email!;
}

export async function mintLocalToken(
  options: { principal?: string; ttlSeconds?: number; dir?: string } = {},
): Promise<string> {
  const { privateJwkPath } = await ensureLocalIssuer(options.dir);
  const jwk = JSON.parse(readFileSync(privateJwkPath, 'utf8')) as JWK;
  const key = await importJWK(jwk, 'ES256');
  const email = emailOfPrincipal(options.principal ?? LOCAL_OWNER);
  return new SignJWT({ email, email_verified: true })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid!, typ: 'JWT' })
    .setIssuer(LOCAL_ISSUER)
    .setAudience(LOCAL_AUDIENCE)
    .setSubject(email)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds ?? 3600}s`)
    .sign(key);
}

/** Environment for a gateway process of the local stack. */
export async function localGatewayEnv(
  firestoreHost: string,
  dir = stateDir(),
): Promise<Record<string, string>> {
  const { jwksPath } = await ensureLocalIssuer(dir);
  const { privateJwksPath } = await ensureGatewaySigningKey(dir);
  return {
    OPENEKM_SIGNING_KEYS_FILE: privateJwksPath,
    OPENEKM_GATEWAY_IDENTITY: LOCAL_GATEWAY_IDENTITY,
    OPENEKM_GATEWAY_ISSUER: LOCAL_GATEWAY_ISSUER,
    FIRESTORE_EMULATOR_HOST: firestoreHost,
    METADATA_SERVER_DETECTION: 'none',
    OPENEKM_FIRESTORE_PROJECT: process.env.OPENEKM_FIRESTORE_PROJECT ?? 'demo-openekm',
    OPENEKM_ROOT_KEYS_FILE: ensureRootKeys(dir),
    OPENEKM_TRUSTED_ISSUERS: JSON.stringify([
      // The local issuer mints any user and service account (npm run token): it is the only one trusted.
      {
        issuer: LOCAL_ISSUER,
        audiences: [LOCAL_AUDIENCE],
        jwksFile: jwksPath,
        principals: ['user:*', 'serviceAccount:*'],
      },
    ]),
    OPENEKM_ALLOW_LOOPBACK_HTTP_EKM: 'true',
    // The local owner owns every project; every other principal starts with nothing (docs/iam.md).
    OPENEKM_DEFAULT_OWNERS: JSON.stringify([LOCAL_OWNER]),
    // The local owner may state access reasons, to try Key Access Justifications (docs/security.md).
    OPENEKM_ACCESS_REASON_PRINCIPALS: JSON.stringify([LOCAL_OWNER]),
  };
}

/** Where distributions install SoftHSM2's PKCS#11 module. */
const SOFTHSM_MODULES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

export function findSoftHsm(): string | undefined {
  return SOFTHSM_MODULES.find((p) => existsSync(p));
}

/** The label of the local stack's gateway token (the reference EKM keeps its own token beside it). */
export const LOCAL_HSM_TOKEN = 'openekm-gateway';

function secret(path: string): string {
  if (!existsSync(path)) {
    try {
      writeSecret(path, randomBytes(12).toString('hex'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return readFileSync(path, 'utf8').trim();
}

/**
 * A SoftHSM2 token for the gateway's HSM keys, under <dir>/hsm/ (its own softhsm2.conf, token directory and
 * PINs, made on first use with softhsm2-util), as the OPENEKM_HSM_* environment plus SOFTHSM2_CONF; undefined when
 * SoftHSM2 is not installed. SOFTHSM2_CONF is read once per process, so put it in process.env before anything in
 * the process loads SoftHSM.
 */
export function ensureLocalHsm(dir = stateDir()): Record<string, string> | undefined {
  const modulePath = findSoftHsm();
  if (!modulePath) return undefined;
  const root = join(dir, 'hsm');
  const tokens = join(root, 'tokens');
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  const conf = join(root, 'softhsm2.conf');
  if (!existsSync(conf)) {
    writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  }
  const pinFile = join(root, 'pin');
  const pin = secret(pinFile);
  const soPin = secret(join(root, 'so-pin'));
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  let listing: string;
  try {
    listing = execFileSync('softhsm2-util', ['--show-slots'], { env, encoding: 'utf8' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // the module without its tools
    throw err;
  }
  if (!new RegExp(`Label:\\s+${LOCAL_HSM_TOKEN}\\s*$`, 'm').test(listing)) {
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', LOCAL_HSM_TOKEN, '--so-pin', soPin, '--pin', pin],
      { env, stdio: 'ignore' },
    );
  }
  return {
    SOFTHSM2_CONF: conf,
    OPENEKM_HSM_MODULE: modulePath,
    OPENEKM_HSM_TOKEN_LABEL: LOCAL_HSM_TOKEN,
    OPENEKM_HSM_PIN_FILE: pinFile,
  };
}
