/**
 * The reference EKM as part of the local stack: started in-process on its own ports, trusting the local
 * gateway's signing key, with an XKS credential for the gateway, and declared to the gateway as four EKM
 * endpoints (Google EKM v0 and XKS v1, each over HTTPS with the locally generated CA and over plain HTTP on
 * loopback). Keys it creates (`npm run ekm -- keys create`) are granted to the EKM identity of one project —
 * `demo`, the README's — as a partner grants a key to one project's identity.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ReferenceEkm, startReferenceEkm } from '../../reference-ekm/index.js';
import { projectEkmIdentity } from '../../shared/ekm/identity.js';
import {
  ensureGatewaySigningKey,
  LOCAL_GATEWAY_IDENTITY,
  LOCAL_GATEWAY_ISSUER,
  stateDir,
} from './local-state.js';

export const LOCAL_XKS_PREFIX = 'openekm';
/** The project whose EKM identity the local reference EKM grants new keys to (the README's). */
export const LOCAL_EKM_PROJECT = 'demo';

/** The EKM identity the local gateway uses for `project` (service-{project}@openekm.local). */
export function localEkmIdentity(project: string): string {
  return projectEkmIdentity(project, LOCAL_GATEWAY_IDENTITY.slice(LOCAL_GATEWAY_IDENTITY.indexOf('@') + 1));
}

export interface LocalEkm {
  ekm: ReferenceEkm;
  /** Environment for the gateway: OPENEKM_EKM_ENDPOINTS. */
  env: Record<string, string>;
  /** Key URI of `keyId` through each protocol and transport. */
  keyUri(keyId: string, protocol?: 'google' | 'xks', scheme?: 'https' | 'http'): string;
}

export async function startLocalEkm(
  options: {
    dir?: string;
    httpPort?: number;
    httpsPort?: number;
    log?: (line: string) => void;
    mode?: 'local' | 'test';
    /** The project whose EKM identity new keys and crypto spaces are granted to (default demo). */
    project?: string;
  } = {},
): Promise<LocalEkm> {
  const dir = options.dir ?? stateDir();
  const { publicJwksPath } = await ensureGatewaySigningKey(dir);
  const ekm = await startReferenceEkm({
    dataDir: join(dir, 'ekm'),
    httpPort: options.httpPort ?? 8190,
    httpsPort: options.httpsPort ?? 8191,
    trustedIssuers: [{ issuer: LOCAL_GATEWAY_ISSUER, jwksFile: publicJwksPath }],
    mode: options.mode ?? 'local',
    log: options.log,
    defaultPrincipal: localEkmIdentity(options.project ?? LOCAL_EKM_PROJECT),
  });
  // One XKS credential for the local gateway, kept across restarts while the EKM still knows it.
  const idPath = join(dir, 'xks-access-key-id');
  const secretPath = join(dir, 'xks-secret-access-key');
  const known = existsSync(idPath) ? readFileSync(idPath, 'utf8').trim() : '';
  if (!known || !ekm.admin.listXksCredentials().some((c) => c.accessKeyId === known)) {
    const cred = await ekm.admin.createXksCredential(LOCAL_XKS_PREFIX);
    writeFileSync(idPath, cred.accessKeyId, { mode: 0o600 });
    writeFileSync(secretPath, cred.secretAccessKey, { mode: 0o600 });
  }
  const sigv4 = { type: 'sigv4', accessKeyId: { file: idPath }, secretAccessKey: { file: secretPath } };
  const tls = { caFile: ekm.caCertPath };
  const endpoints = [
    { prefix: `${ekm.googleEkmBaseUrl}/keys/`, protocol: 'google-ekm-v0', auth: { type: 'jwt' }, tls },
    { prefix: `${ekm.googleEkmHttpBaseUrl}/keys/`, protocol: 'google-ekm-v0', auth: { type: 'jwt' } },
    { prefix: `${ekm.xksHttpsBaseUrl(LOCAL_XKS_PREFIX)}/keys/`, protocol: 'aws-xks-v1', auth: sigv4, tls },
    { prefix: `${ekm.xksBaseUrl(LOCAL_XKS_PREFIX)}/keys/`, protocol: 'aws-xks-v1', auth: sigv4 },
  ];
  return {
    ekm,
    env: {
      OPENEKM_EKM_ENDPOINTS: JSON.stringify(endpoints),
      // The reference EKM listens on loopback, which the EKM host allow-list refuses unless listed.
      OPENEKM_EKM_ALLOWED_HOSTS: JSON.stringify(['public', new URL(ekm.httpsUrl).hostname, '127.0.0.1']),
    },
    keyUri(keyId, protocol = 'google', scheme = 'https') {
      if (protocol === 'google')
        return `${scheme === 'https' ? ekm.googleEkmBaseUrl : ekm.googleEkmHttpBaseUrl}/keys/${keyId}`;
      return `${scheme === 'https' ? ekm.xksHttpsBaseUrl(LOCAL_XKS_PREFIX) : ekm.xksBaseUrl(LOCAL_XKS_PREFIX)}/keys/${keyId}`;
    },
  };
}
