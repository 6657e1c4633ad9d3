/**
 * The reference EKM as part of the local stack: on its own ports, trusting the local gateway's signing key, with
 * an XKS credential for the gateway, and declared to the gateway as four EKM endpoints (Google EKM v0 and XKS v1,
 * each over HTTPS with the locally generated CA and over plain HTTP on loopback).
 *
 * By default it runs as a child process (reference-ekm/serve.ts), as a partner's EKM would: the gateway and the
 * EKM each get their own event loop, and the child stops when this process ends, however it ends (it watches its
 * IPC channel). `process: 'in-process'` starts it inside this process instead (tests that only drive its admin
 * API). Either way `ekm.admin` edits the EKM's state directory, which the EKM reads on each request.
 *
 * Keys it creates (`npm run ekm -- keys create`) are granted to the EKM identity of one project — `demo`, the
 * README's — as a partner grants a key to one project's identity.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ReferenceEkm, startReferenceEkm } from '@openekm/reference-ekm';
import { EkmAdmin } from '@openekm/reference-ekm/admin/admin';
import { openKeyStore } from '@openekm/reference-ekm/keystore/open';
import { StateStore } from '@openekm/reference-ekm/state/state-store';
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
  /** The EKM's process id: this process's own when it runs in-process. */
  pid: number;
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
    /** Receives the EKM's request log, one JSON line each (default: this process's stdout). */
    log?: (line: string) => void;
    mode?: 'local' | 'test';
    /** 'child' (default): its own process; 'in-process': inside this one. */
    process?: 'child' | 'in-process';
    /** The project whose EKM identity new keys and crypto spaces are granted to (default demo). */
    project?: string;
  } = {},
): Promise<LocalEkm> {
  const dir = options.dir ?? stateDir();
  const { publicJwksPath } = await ensureGatewaySigningKey(dir);
  const settings = {
    dataDir: join(dir, 'ekm'),
    httpPort: options.httpPort ?? 8190,
    httpsPort: options.httpsPort ?? 8191,
    trustedIssuers: [{ issuer: LOCAL_GATEWAY_ISSUER, jwksFile: publicJwksPath }],
    mode: options.mode ?? 'local',
    defaultPrincipal: localEkmIdentity(options.project ?? LOCAL_EKM_PROJECT),
  };
  const { ekm, pid } =
    options.process === 'in-process'
      ? { ekm: await startReferenceEkm({ ...settings, log: options.log }), pid: process.pid }
      : await spawnReferenceEkm(settings, options.log);
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
    pid,
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

/** How to run reference-ekm/serve.ts: the package's TypeScript source, through tsx (it is never compiled). */
function serveCommand(): string[] {
  return ['--import', 'tsx', fileURLToPath(import.meta.resolve('@openekm/reference-ekm/serve'))];
}

const READY_TIMEOUT_MS = 60_000;

const children = new Set<ChildProcess>();

function killChildren(): void {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}

/** Starts reference-ekm/serve.ts as a child process and waits for its `ready` message. */
async function spawnReferenceEkm(
  settings: {
    dataDir: string;
    httpPort: number;
    httpsPort: number;
    trustedIssuers: Array<{ issuer: string; jwksFile: string }>;
    mode: 'local' | 'test';
    defaultPrincipal: string;
  },
  log: ((line: string) => void) | undefined,
): Promise<{ ekm: ReferenceEkm; pid: number }> {
  const command = serveCommand();
  const child: ChildProcess = spawn(process.execPath, command, {
    cwd: dirname(command[2]!),
    env: {
      ...process.env,
      OPENEKM_EKM_DATA_DIR: settings.dataDir,
      OPENEKM_EKM_HTTP_PORT: String(settings.httpPort),
      OPENEKM_EKM_HTTPS_PORT: String(settings.httpsPort),
      OPENEKM_EKM_TRUSTED_ISSUERS: JSON.stringify(settings.trustedIssuers),
      OPENEKM_EKM_MODE: settings.mode,
      OPENEKM_EKM_BACKEND: 'software',
      OPENEKM_EKM_DEFAULT_PRINCIPAL: settings.defaultPrincipal,
    },
    stdio: ['ignore', log ? 'pipe' : 'inherit', 'pipe', 'ipc'],
  });
  const stderr: string[] = [];
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr.push(chunk);
    if (stderr.length > 50) stderr.shift();
  });
  if (log) {
    let rest = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line) log(line);
    });
  }
  const ready = await new Promise<{ httpUrl: string; httpsUrl: string; caCertPath: string }>(
    (resolveReady, reject) => {
      const timer = setTimeout(() => fail(new Error('did not start in time')), READY_TIMEOUT_MS);
      const fail = (err: Error) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(
          new Error(`the reference EKM failed to start: ${err.message}\n${stderr.join('').slice(-2000)}`),
        );
      };
      child.once('error', fail);
      child.once('exit', (code, signal) => fail(new Error(`it exited (${signal ?? code})`)));
      child.on('message', (m: { type?: string; httpUrl: string; httpsUrl: string; caCertPath: string }) => {
        if (m?.type !== 'ready') return;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        resolveReady(m);
      });
    },
  );
  // The parent's view of the EKM's state: the same state directory the child reads on each request.
  const store = openKeyStore({ backend: 'software', dataDir: settings.dataDir, mode: settings.mode });
  const admin = new EkmAdmin({
    state: new StateStore(settings.dataDir),
    store,
    defaultPrincipal: settings.defaultPrincipal,
    mode: settings.mode,
  });
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
  let stopped: Promise<void> | undefined;
  const ekm: ReferenceEkm = {
    httpUrl: ready.httpUrl,
    httpsUrl: ready.httpsUrl,
    caCertPath: ready.caCertPath,
    googleEkmBaseUrl: `${ready.httpsUrl}/v0`,
    googleEkmHttpBaseUrl: `${ready.httpUrl}/v0`,
    xksBaseUrl: (prefix) => `${ready.httpUrl}/${prefix}/kms/xks/v1`,
    xksHttpsBaseUrl: (prefix) => `${ready.httpsUrl}/${prefix}/kms/xks/v1`,
    admin,
    backend: 'software',
    stop() {
      stopped ??= (async () => {
        child.kill('SIGTERM');
        const grace = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(grace);
        await store.close();
      })();
      return stopped;
    },
  };
  // Whatever ends this process, the child's IPC channel closes and it stops itself; on a normal exit, also
  // signal it at once. The child does not keep this process alive.
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (children.size === 1) process.once('exit', killChildren);
  child.unref();
  child.channel?.unref();
  return { ekm, pid: child.pid! };
}
