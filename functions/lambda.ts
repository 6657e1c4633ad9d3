/**
 * AWS Lambda handlers (API Gateway HTTP API v2 / REST v1 / ALB events) through serverless-http, over the plain
 * listener (functions/listener.ts) — the same pipeline as everywhere, without the functions framework. One
 * handler per function, `routerLambda` for all four in one Lambda (dispatch by path, as the cloud's URL map does),
 * and the EKM probe for a scheduled (EventBridge) Lambda.
 */
import serverless from 'serverless-http';
import type { FunctionName } from '../shared/api/routes.js';
import { getGateway } from './instance.js';
import { listener } from './listener.js';

function lambdaHandler(name?: FunctionName): serverless.Handler {
  return serverless(listener(name), { binary: false });
}

export const keyAdminLambda = lambdaHandler('keyAdmin');
export const encryptLambda = lambdaHandler('encrypt');
export const decryptLambda = lambdaHandler('decrypt');
export const healthCheckLambda = lambdaHandler('healthCheck');
/** All four functions in one Lambda: the function that owns the path serves it. */
export const routerLambda = lambdaHandler();
/** The EKM probe for a scheduled Lambda (EventBridge rule): answers the probe's outcomes. */
export const healthProbeLambda = async () => getGateway().probe();
