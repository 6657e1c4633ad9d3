/**
 * All four functions behind one port, dispatching by path as the cloud's URL map does: the production entry for
 * a container (Cloud Run, Kubernetes: `node dist/functions/server.js`, PORT and HOST from the environment,
 * configuration as for the functions) and the server of the local stack. SIGTERM stops it gracefully.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { getGateway } from './instance.js';
import { listener } from './listener.js';
import { answerClientError } from './request.js';

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  stop(): Promise<void>;
}

export async function startServer(options: { port?: number; host?: string } = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer(listener());
  // Requests Node's parser refuses get the google.rpc envelope too, not a bare 400.
  server.on('clientError', answerClientError);
  // Longer than the idle timeout of Google's and AWS's load balancers, so they close idle connections first.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  getGateway(); // configuration errors stop the process here, with the CRITICAL line, rather than per request
  const running = await startServer({
    port: Number(process.env.PORT ?? 8080),
    host: process.env.HOST ?? '0.0.0.0',
  });
  process.stdout.write(
    `${JSON.stringify({ severity: 'INFO', message: `OpenEKM listening on ${running.url}` })}\n`,
  );
  const stop = () => {
    void running
      .stop()
      .then(() => getGateway().close())
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
