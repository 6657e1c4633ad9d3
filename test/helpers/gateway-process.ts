/**
 * One gateway process for tests that need several: a Gateway configured from this process's environment, behind
 * the local server on an ephemeral loopback port. Prints `OPENEKM_GATEWAY_URL=<url>` on stdout once it listens;
 * everything else it writes (audit entries, metric lines) follows on stdout too. Exits when its stdin closes, so a
 * parent that dies without killing it does not leave it running.
 *
 * Run: node --import tsx test/helpers/gateway-process.ts
 */
import { startLocalServer } from '../../scripts/lib/local-server.js';
import { Gateway } from '../../shared/api/gateway.js';

const gateway = new Gateway();
const server = await startLocalServer({
  gateway,
  port: 0,
});
process.stdout.write(`OPENEKM_GATEWAY_URL=${server.url}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref();
  await server.stop();
  await gateway.close();
  process.exit(0);
};
process.stdin.on('end', () => void stop());
process.stdin.resume();
process.on('SIGTERM', () => void stop());
