/**
 * `npm start`: the whole OpenEKM stack on this machine — the Firestore emulator (unless FIRESTORE_EMULATOR_HOST
 * points at one) and the four functions behind one base URL (PORT, default 8080). Ctrl-C or SIGTERM stops
 * everything it started.
 */
import { Gateway } from '../shared/api/gateway.js';
import { EmulatorMissingError, startFirestoreEmulator } from './lib/firestore-emulator.js';
import { startLocalEkm } from './lib/local-ekm.js';
import { startLocalServer } from './lib/local-server.js';
import { ensureLocalHsm, localGatewayEnv, stateDir } from './lib/local-state.js';

const stops: Array<() => Promise<void>> = [];
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  const port = Number(process.env.PORT ?? 8080);
  const host = process.env.OPENEKM_HOST ?? '127.0.0.1';
  let firestoreHost = process.env.FIRESTORE_EMULATOR_HOST;
  if (!firestoreHost) {
    const emulator = await startFirestoreEmulator();
    stops.push(emulator.stop);
    firestoreHost = emulator.host;
  }
  // HSM keys in a SoftHSM2 token in the state directory; SOFTHSM2_CONF is set before anything loads SoftHSM (the
  // reference EKM's softhsm back end then keeps its own token in the same token directory).
  const hsm = ensureLocalHsm();
  if (hsm) Object.assign(process.env, hsm);
  else
    process.stdout.write(
      'SoftHSM2 is not installed: HSM keys are off (apt-get install -y softhsm2 to enable them).\n',
    );
  const local = await startLocalEkm({
    httpPort: Number(process.env.OPENEKM_EKM_HTTP_PORT ?? 8190),
    httpsPort: Number(process.env.OPENEKM_EKM_HTTPS_PORT ?? 8191),
  });
  stops.push(() => local.ekm.stop());
  Object.assign(process.env, await localGatewayEnv(firestoreHost), local.env, {
    OPENEKM_LOG_LEVEL: process.env.OPENEKM_LOG_LEVEL ?? 'info',
    // The local stack listens on loopback: its status page opens in a browser without a token.
    OPENEKM_STATUS_PUBLIC: process.env.OPENEKM_STATUS_PUBLIC ?? 'true',
  });
  const gateway = new Gateway();
  stops.push(() => gateway.close());
  const server = await startLocalServer({
    gateway,
    port,
    host,
  });
  stops.push(server.stop);
  // What Cloud Scheduler does in the cloud: the EKM probe (and the scheduled tasks) every probe interval.
  const probe = () => {
    gateway.probe().catch(() => undefined);
  };
  const probeTimer = setInterval(probe, gateway.deps.config.probeIntervalSeconds * 1000);
  stops.push(async () => clearInterval(probeTimer));
  probe();
  process.stdout.write(
    [
      `OpenEKM ready at ${server.url}`,
      `  API:       ${server.url}/v1/projects/{project}/locations/{location}/keyRings`,
      `  health:    ${server.url}/health`,
      `  EKM status: ${server.url}/health/status (probed every ${gateway.deps.config.probeIntervalSeconds} s; JSON at /health/ekm)`,
      `  Firestore: ${firestoreHost}`,
      `  HSM:       ${hsm ? `SoftHSM2 token "${hsm.OPENEKM_HSM_TOKEN_LABEL}" (${hsm.SOFTHSM2_CONF})` : 'off (SoftHSM2 is not installed)'}`,
      `  EKM:       ${local.ekm.httpsUrl} (HTTPS, CA ${local.ekm.caCertPath}) and ${local.ekm.httpUrl}`,
      `             Google EKM key URIs: ${local.keyUri('KEY_ID')}`,
      `             XKS key URIs:        ${local.keyUri('KEY_ID', 'xks')}`,
      '             keys: npm run --silent ekm -- keys create KEY_ID',
      `  token:     npm run --silent token   (state in ${stateDir()})`,
      '',
    ].join('\n'),
  );
} catch (err) {
  process.stderr.write(
    `${err instanceof EmulatorMissingError ? err.message : `OpenEKM failed to start: ${(err as Error).message}`}\n`,
  );
  await shutdown(1);
}
