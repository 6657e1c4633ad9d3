/**
 * The local stack's server: the four functions behind one base URL (functions/server.ts), served by the given
 * Gateway (a test clock, a test configuration).
 */

import { setGateway } from '../../functions/instance.js';
import { type RunningServer, startServer } from '../../functions/server.js';
import type { Gateway } from '../../shared/api/gateway.js';

export type LocalServer = RunningServer;

export async function startLocalServer(options: {
  gateway?: Gateway;
  port?: number;
  host?: string;
}): Promise<LocalServer> {
  if (options.gateway) setGateway(options.gateway);
  return startServer({ port: options.port, host: options.host });
}
