/**
 * Entry point of the deployable functions. Importing it registers keyAdmin, encrypt, decrypt and healthCheck
 * (HTTP) and healthProbe (CloudEvent) with the functions framework (`npx functions-framework --target=encrypt`),
 * and exports the AWS Lambda handlers (functions/lambda.ts).
 */
export { decrypt } from './decrypt.js';
export { encrypt } from './encrypt.js';
export { healthCheck } from './health-check.js';
export { healthProbe } from './health-probe.js';
export { keyAdmin } from './key-admin.js';
export {
  decryptLambda,
  encryptLambda,
  healthCheckLambda,
  healthProbeLambda,
  keyAdminLambda,
  routerLambda,
} from './lambda.js';
