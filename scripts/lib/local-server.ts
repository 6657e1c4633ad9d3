/**
 * One base URL for the four functions, as the HTTPS front does in the cloud: routes by path
 * (`…:encrypt` → encrypt, `…:decrypt` → decrypt, `/health…` → healthCheck, the rest → keyAdmin) to each
 * function's own functions-framework pipeline, all in this process.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import type { Gateway } from '../../shared/api/app.js';
import { envelope, httpStatus } from '../../shared/api/envelope.js';
import type { FunctionName } from '../../shared/api/routes.js';
import { RpcError } from '../../shared/errors.js';
import '../../functions/index.js';
import { setGateway } from '../../functions/platform.js';

export function functionForPath(path: string): FunctionName {
  const p = path.split('?')[0] ?? '';
  if (p === '/health' || p.startsWith('/health/') || p.startsWith('/.well-known/')) return 'healthCheck';
  if (/:encrypt\/?$/.test(p)) return 'encrypt';
  if (/:decrypt\/?$/.test(p)) return 'decrypt';
  return 'keyAdmin';
}

export interface LocalServer {
  url: string;
  port: number;
  server: Server;
  stop(): Promise<void>;
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

export async function startLocalServer(options: {
  gateway?: Gateway;
  port?: number;
  host?: string;
  maxRequestBytes?: number;
}): Promise<LocalServer> {
  if (options.gateway) setGateway(options.gateway);
  const listeners = {} as Record<FunctionName, Listener>;
  for (const name of ['keyAdmin', 'encrypt', 'decrypt', 'healthCheck'] as const) {
    listeners[name] = getTestServer(name).listeners('request')[0] as Listener;
  }
  const maxBytes = options.maxRequestBytes ?? 1024 * 1024;
  const server = createServer((req, res) => {
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > maxBytes) {
      const e = RpcError.invalidArgument(
        `The request body is ${length} bytes; the limit is ${maxBytes} bytes.`,
      );
      res.writeHead(httpStatus(e.code), {
        'content-type': 'application/json; charset=utf-8',
        connection: 'close',
      });
      res.end(JSON.stringify(envelope(e)));
      req.resume();
      return;
    }
    listeners[functionForPath(req.url ?? '/')](req, res);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
