/**
 * EKM connection fixtures: a second reference EKM replica sharing the first one's keys (same data directory),
 * the replicas' pinned leaf certificate, and a TCP relay in front of a replica that can be told to pass, hang
 * or reset connections — network faults on one replica that a stopped process cannot show (a hang).
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { type ReferenceEkm, startReferenceEkm } from '@openekm/reference-ekm';
import { ensureGatewaySigningKey, LOCAL_GATEWAY_ISSUER } from '../../scripts/lib/local-state.js';
import type { TestStack } from './stack.js';

/** The DER (base64) of the reference EKM's TLS server certificate: what a connection pins. */
export function serverCertDer(stack: TestStack): string {
  const pem = readFileSync(join(stack.stateDir, 'ekm', 'tls', 'server.pem'), 'utf8');
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1] ?? '';
  return body.replace(/\s+/g, '');
}

/** host:port of an https URL. */
export const hostOf = (url: string) => new URL(url).host;

/** Another reference EKM over the stack's EKM data directory: the same keys, grants and certificate. */
export async function startReplica(stack: TestStack, extraAudiences: string[] = []): Promise<ReferenceEkm> {
  const { publicJwksPath } = await ensureGatewaySigningKey(stack.stateDir);
  return startReferenceEkm({
    dataDir: join(stack.stateDir, 'ekm'),
    httpPort: 0,
    httpsPort: 0,
    trustedIssuers: [{ issuer: LOCAL_GATEWAY_ISSUER, jwksFile: publicJwksPath }],
    mode: 'test',
    extraAudiences,
    log: () => undefined,
  });
}

export type RelayMode = 'pass' | 'hang' | 'reset';

/** A TCP relay on 127.0.0.1: `pass` forwards, `hang` accepts and never answers, `reset` drops connections. */
export class FaultRelay {
  mode: RelayMode = 'pass';
  target = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FaultRelay> {
    let relay: FaultRelay | undefined;
    const server = createServer((client) => relay?.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    relay = new FaultRelay(server, typeof address === 'object' && address ? address.port : 0);
    return relay;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * Switches mode; existing connections are cut (reset) or frozen (hang) too. Back to `pass`, connections frozen
   * by a hang are dropped (as when a hung network path recovers) so new ones are made.
   */
  set(mode: RelayMode): void {
    if (mode === 'pass' && this.mode === 'hang') for (const s of this.sockets) s.destroy();
    this.mode = mode;
    if (mode !== 'pass') {
      for (const s of this.sockets) {
        if (mode === 'reset') s.resetAndDestroy();
        else {
          s.unpipe();
          s.pause();
        }
      }
    }
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => undefined);
    if (this.mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    if (this.mode === 'hang') {
      client.pause();
      return;
    }
    const upstream = connect(this.target, '127.0.0.1', () => {
      if (this.mode !== 'pass') return;
      client.pipe(upstream);
      upstream.pipe(client);
    });
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
