/**
 * One Gateway per instance, made on first use from the environment and shared by every function loaded in the
 * process. A configuration error is remembered, logged once as CRITICAL, and reported on every request.
 */
import { Gateway } from '../shared/api/gateway.js';

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
