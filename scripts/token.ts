/**
 * Prints a Bearer token from the local stack's issuer: `npm run --silent token [-- <principal>] [--ttl <s>]`.
 * The default principal is the local owner (user:owner@openekm.local).
 */
import { LOCAL_OWNER, mintLocalToken } from './lib/local-state.js';

const args = process.argv.slice(2);
let principal = LOCAL_OWNER;
let ttlSeconds = 3600;
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--ttl') ttlSeconds = Number(args[++i]);
  else principal = a;
}
if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 86_400) {
  process.stderr.write('--ttl must be a number of seconds from 1 to 86400\n');
  process.exit(2);
}
try {
  process.stdout.write(`${await mintLocalToken({ principal, ttlSeconds })}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
