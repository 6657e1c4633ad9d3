// The Firebase Functions emulator loads this codebase (firebase.json: functions[].source). It serves the four
// functions exactly as built for Cloud Functions: plain functions-framework handlers from `npm run build`, named
// in functions.yaml. firebase-functions and firebase-admin are declared in package.json only because the emulator
// refuses a codebase without them; they resolve from ../node_modules (npm ci --prefix firebase).
export { decrypt, encrypt, healthCheck, keyAdmin } from '../../dist/functions/index.js';
