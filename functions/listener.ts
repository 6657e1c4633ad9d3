/**
 * The functions as a plain node:http request listener — no framework in between: AWS Lambda (through
 * serverless-http), the one-port server (functions/server.ts, the container image) and the local stack use it.
 * Given a function name it serves that function's routes (others answer NOT_FOUND naming the right function);
 * without one it dispatches by path as the cloud's URL map does.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { functionForPath } from '../shared/api/match.js';
import type { FunctionName } from '../shared/api/routes.js';
import { RpcError } from '../shared/errors.js';
import { gatewayOrUnavailable } from './instance.js';
import { cancelOnClose, readBody, send, sendError, splitTarget, toApiRequest } from './request.js';

export type Listener = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(fn: FunctionName | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const gateway = gatewayOrUnavailable(req, res);
  if (!gateway) return;
  const read = await readBody(req, gateway.deps.config.maxRequestBytes);
  if (read.error) {
    sendError(res, read.error, read.close);
    return;
  }
  const target = req.url ?? '/';
  const name = fn ?? functionForPath(splitTarget(target).path) ?? 'keyAdmin';
  const cancel = cancelOnClose(res);
  const out = await gateway.handle(name, {
    ...toApiRequest(req, target, read.body, req.socket?.remoteAddress),
    signal: cancel.signal,
  });
  cancel.done();
  send(res, out);
}

export function listener(fn?: FunctionName): Listener {
  return (req, res) => {
    serve(fn, req, res).catch((err: unknown) => sendError(res, RpcError.internal(err)));
  };
}
