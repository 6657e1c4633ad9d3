/**
 * One Gateway per instance, made on first use from the environment and shared by every function loaded in the
 * process. A configuration error is remembered, logged once as CRITICAL, and reported on every request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Gateway } from '../shared/api/gateway.js';
import { RpcError } from '../shared/errors.js';
import { sendError } from './request.js';

let gateway: Gateway | undefined;
let gatewayError: unknown;

export function getGateway(): Gateway {
  if (gateway) return gateway;
  if (gatewayError) throw gatewayError;
  try {
    gateway = new Gateway();
    return gateway;
  } catch (err) {
    gatewayError = err;
    process.stderr.write(
      `${JSON.stringify({ severity: 'CRITICAL', message: `OpenEKM cannot start: ${(err as Error).message}` })}\n`,
    );
    throw err;
  }
}

/** Lets the local stack and tests supply their own Gateway (e.g. with a test clock). */
export function setGateway(g: Gateway): void {
  gateway = g;
  gatewayError = undefined;
}

/**
 * The instance's Gateway, or undefined after answering UNAVAILABLE (the rest of the request is discarded) when the
 * configuration is broken: the operator has the CRITICAL log line; the caller learns nothing of the configuration.
 */
export function gatewayOrUnavailable(req: IncomingMessage, res: ServerResponse): Gateway | undefined {
  try {
    return getGateway();
  } catch {
    req.resume();
    sendError(
      res,
      new RpcError(
        'UNAVAILABLE',
        'The service is misconfigured and cannot serve requests; its operator has been told in the logs.',
      ),
    );
    return undefined;
  }
}
