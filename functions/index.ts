/**
 * Entry point of the deployable functions. Importing it registers keyAdmin, encrypt, decrypt and healthCheck
 * (HTTP) and healthProbe (CloudEvent) with the functions framework (`npx functions-framework --target=encrypt`),
 * and exports each HTTP function as an AWS Lambda handler (API Gateway v1/v2, ALB) through serverless-http,
 * running the same framework pipeline, plus the probe as a handler for a scheduled (EventBridge) Lambda.
 */
import { getTestServer } from '@google-cloud/functions-framework/testing';
import serverless from 'serverless-http';
import { decrypt } from './decrypt.js';
import { encrypt } from './encrypt.js';
import { healthCheck } from './health-check.js';
import { healthProbe } from './health-probe.js';
import { keyAdmin } from './key-admin.js';
import { getGateway } from './platform.js';

export { decrypt, encrypt, healthCheck, healthProbe, keyAdmin };

/** A Lambda handler running the registered function `name` inside the functions-framework pipeline. */
export function lambdaHandler(name: 'keyAdmin' | 'encrypt' | 'decrypt' | 'healthCheck'): serverless.Handler {
  return serverless(getTestServer(name), { binary: false });
}

export const keyAdminLambda = lambdaHandler('keyAdmin');
export const encryptLambda = lambdaHandler('encrypt');
export const decryptLambda = lambdaHandler('decrypt');
export const healthCheckLambda = lambdaHandler('healthCheck');
/** The EKM probe for a scheduled Lambda (EventBridge rule): answers the probe's outcomes. */
export const healthProbeLambda = async () => getGateway().probe();
