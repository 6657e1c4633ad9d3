/**
 * `npm start`: the whole OpenEKM stack on this machine — the Firestore emulator (unless FIRESTORE_EMULATOR_HOST
 * points at one), the reference EKM, and the four functions behind one base URL (PORT, default 8080). Ctrl-C or
 * SIGTERM stops everything it started.
 *
 * Everything lives in the state directory (OPENEKM_STATE_DIR, default .openekm/) and survives a restart: the
 * Firestore data (saved every few seconds and at exit), the reference EKM's keys, the local token issuer, the root
 * key, and the logs. `npm start -- --fresh` deletes it first.
 *
 * On a terminal, the console shows one short line per request; the JSON request log and the audit entries go to
 * files in the state directory (logs/). Elsewhere — or with OPENEKM_LOG_FORMAT=json — JSON goes to stdout as in
 * the cloud.
 */
import { existsSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';
import type { Logger } from '../shared/log.js';
import { EmulatorMissingError, startPersistentFirestoreEmulator } from './lib/firestore-emulator.js';
import { stateDir } from './lib/local-state.js';

const USAGE = `usage: npm start [-- --fresh]

  --fresh   delete the state directory first (Firestore data, reference EKM keys, token issuer, root key, logs)

Environment: PORT (8080), OPENEKM_EKM_HTTP_PORT (8190), OPENEKM_EKM_HTTPS_PORT (8191), OPENEKM_HOST (127.0.0.1),
OPENEKM_STATE_DIR (.openekm), OPENEKM_LOG_FORMAT (human on a terminal, else json), FIRESTORE_EMULATOR_HOST.`;

/** Firestore data is saved this often, so an unclean stop loses at most this much. */
const SAVE_EVERY_SECONDS = 5;
/** A log file larger than this at start is moved aside (to <name>.1) so the logs do not grow without bound. */
const LOG_ROTATE_BYTES = 20 * 1024 * 1024;

class StartError extends Error {}

const stops: Array<() => Promise<void>> = [];
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (stopping) {
    process.stderr.write('Stopping now, without saving.\n');
    process.exit(code || 130);
  }
  stopping = true;
  for (const stop of stops.reverse()) {
    await stop().catch((err: Error) => process.stderr.write(`While stopping: ${err.message}\n`));
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
process.on('uncaughtException', (err) => {
  if (stopping) {
    // Work still in flight when its clients closed (a probe run, a lease): the orderly stop goes on and saves.
    process.stderr.write(`While stopping: ${err.message}\n`);
    return;
  }
  process.stderr.write(`OpenEKM stopped on an unexpected error: ${err.stack ?? err.message}\n`);
  void shutdown(1);
});

function portFrom(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) {
    throw new StartError(`${name}=${raw} is not a TCP port: give a number from 1 to 65535.`);
  }
  return Number(raw);
}

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Whether an OpenEKM gateway answers on this base URL. */
async function isOpenEkm(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    const body = await res.text();
    return /ekm|firestore|"status"/i.test(body);
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface PortUse {
  port: number;
  host: string;
  variable: string;
  what: string;
}

/** Every port checked before anything starts; one message naming each port in use and the variables to change. */
async function checkPorts(ports: PortUse[], state: string): Promise<void> {
  const pidFile = join(state, 'stack.pid');
  const otherPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
  const busy: PortUse[] = [];
  for (const p of ports) if (!(await isFree(p.port, p.host))) busy.push(p);
  const running = otherPid > 0 && otherPid !== process.pid && pidAlive(otherPid);
  if (!busy.length && !running) return;
  const gateway = ports[0]!;
  const gatewayUrl = `http://${gateway.host.includes(':') ? `[${gateway.host}]` : gateway.host}:${gateway.port}`;
  const lines: string[] = [];
  if (running) {
    lines.push(
      `OpenEKM seems to be running already (process ${otherPid}, state directory ${state}).`,
      'Stop it with Ctrl-C in its terminal (or kill that process), or run a second one with its own state',
      'directory and ports.',
    );
  } else if (busy.includes(gateway) && (await isOpenEkm(gatewayUrl))) {
    lines.push(
      `OpenEKM seems to be running already: ${gatewayUrl}/health answers. Stop it first (Ctrl-C in its terminal).`,
    );
  } else {
    lines.push(
      'Cannot start: a port OpenEKM needs is in use. OpenEKM may be running already (stop it with Ctrl-C in its',
      'terminal), or another program uses the port.',
    );
  }
  if (busy.length) {
    lines.push('', 'Ports in use:');
    for (const p of busy) lines.push(`  ${p.host}:${p.port}  ${p.what} (${p.variable})`);
  }
  lines.push(
    '',
    'Choose other ports (and a separate state directory for a second stack), e.g.:',
    `  PORT=${gateway.port + 100} OPENEKM_EKM_HTTP_PORT=${ports[1]!.port + 100} OPENEKM_EKM_HTTPS_PORT=${ports[2]!.port + 100} OPENEKM_STATE_DIR=.openekm-2 npm start`,
  );
  throw new StartError(lines.join('\n'));
}

function rotate(path: string): void {
  try {
    if (statSync(path).size > LOG_ROTATE_BYTES) renameSync(path, `${path}.1`);
  } catch {
    // no file yet
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const unknown = args.filter((a) => a !== '--fresh');
  if (unknown.length) throw new StartError(`Unknown argument ${unknown.join(' ')}.\n${USAGE}`);

  const port = portFrom('PORT', 8080);
  const host = process.env.OPENEKM_HOST ?? '127.0.0.1';
  const ekmHttpPort = portFrom('OPENEKM_EKM_HTTP_PORT', 8190);
  const ekmHttpsPort = portFrom('OPENEKM_EKM_HTTPS_PORT', 8191);
  let state = stateDir();
  await checkPorts(
    [
      { port, host, variable: 'PORT', what: 'the gateway (the four functions)' },
      {
        port: ekmHttpPort,
        host: '127.0.0.1',
        variable: 'OPENEKM_EKM_HTTP_PORT',
        what: 'the reference EKM, HTTP',
      },
      {
        port: ekmHttpsPort,
        host: '127.0.0.1',
        variable: 'OPENEKM_EKM_HTTPS_PORT',
        what: 'the reference EKM, HTTPS',
      },
    ],
    state,
  );
  if (args.includes('--fresh')) {
    rmSync(state, { recursive: true, force: true });
    state = stateDir();
    process.stdout.write(`Fresh start: deleted the previous state in ${state}.\n`);
  }
  // The heavy modules (the gateway, the Firestore client) load only after the checks, so a clash is told at once.
  const [
    { Gateway },
    { loadConfig },
    { createLogger },
    { startLocalEkm },
    { startLocalServer },
    { ensureLocalHsm, localGatewayEnv },
  ] = await Promise.all([
    import('../shared/api/gateway.js'),
    import('../shared/config.js'),
    import('../shared/log.js'),
    import('./lib/local-ekm.js'),
    import('./lib/local-server.js'),
    import('./lib/local-state.js'),
  ]);
  const pidFile = join(state, 'stack.pid');
  writeFileSync(pidFile, `${process.pid}\n`);
  stops.push(async () => {
    if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(process.pid))
      unlinkSync(pidFile);
  });

  // On a terminal: short lines on the console, JSON in files. OPENEKM_LOG_FORMAT=json keeps JSON on stdout.
  const human = process.stdout.isTTY === true && !process.env.OPENEKM_LOG_FORMAT;
  const logDir = join(state, 'logs');
  if (human) {
    process.env.OPENEKM_LOG_FORMAT = 'human';
    process.env.OPENEKM_LOG_FILE ??= join(logDir, 'gateway.jsonl');
  }
  const ekmLogFile = join(logDir, 'ekm.jsonl');
  for (const f of [process.env.OPENEKM_LOG_FILE, human ? ekmLogFile : undefined]) if (f) rotate(f);
  const ekmLog = human ? createLogger('info', { file: ekmLogFile }) : undefined;
  if (ekmLog) stops.push(async () => ekmLog.close?.());

  const project = process.env.OPENEKM_FIRESTORE_PROJECT ?? 'demo-openekm';
  let firestoreHost = process.env.FIRESTORE_EMULATOR_HOST;
  let firestoreNote = `${firestoreHost} (yours: its data is not saved by npm start)`;
  if (!firestoreHost) {
    const dataDir = join(state, 'firestore');
    let saveError = '';
    const emulator = await startPersistentFirestoreEmulator({
      dir: dataDir,
      project,
      saveEverySeconds: SAVE_EVERY_SECONDS,
      onSaveError: (err) => {
        if (err.message === saveError) return;
        saveError = err.message;
        process.stderr.write(`Could not save the Firestore data: ${err.message}\n`);
      },
    });
    stops.push(emulator.stop);
    firestoreHost = emulator.host;
    firestoreNote = `${firestoreHost}, data in ${relative(process.cwd(), dataDir) || dataDir} (${
      emulator.restored ? 'restored' : 'new'
    }; saved every ${SAVE_EVERY_SECONDS} s and at exit)`;
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
    httpPort: ekmHttpPort,
    httpsPort: ekmHttpsPort,
    ...(ekmLog ? { log: (line: string) => ekmLog.entry(JSON.parse(line)) } : {}),
  });
  stops.push(() => local.ekm.stop());
  Object.assign(process.env, await localGatewayEnv(firestoreHost), local.env, {
    OPENEKM_LOG_LEVEL: process.env.OPENEKM_LOG_LEVEL ?? 'info',
    // The local stack listens on loopback: its status page opens in a browser without a token.
    OPENEKM_STATUS_PUBLIC: process.env.OPENEKM_STATUS_PUBLIC ?? 'true',
  });
  const config = loadConfig();
  const logger: Logger = createLogger(config.logLevel, {
    format: config.logFormat,
    ...(config.logFile ? { file: config.logFile } : {}),
  });
  const gateway = new Gateway({ config, logger });
  stops.push(async () => {
    await gateway.close();
    logger.close?.();
  });
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
  const rel = (p: string) => relative(process.cwd(), p) || p;
  process.stdout.write(
    [
      `OpenEKM ready at ${server.url}`,
      `  API:        ${server.url}/v1/projects/{project}/locations/{location}/keyRings`,
      `  health:     ${server.url}/health`,
      `  EKM status: ${server.url}/health/status (probed every ${gateway.deps.config.probeIntervalSeconds} s; JSON at /health/ekm)`,
      `  Firestore:  ${firestoreNote}`,
      `  HSM:        ${hsm ? `SoftHSM2 token "${hsm.OPENEKM_HSM_TOKEN_LABEL}" (${rel(hsm.SOFTHSM2_CONF ?? '')})` : 'off (SoftHSM2 is not installed)'}`,
      `  EKM:        ${local.ekm.httpsUrl} (HTTPS, CA ${rel(local.ekm.caCertPath)}) and ${local.ekm.httpUrl}`,
      `              Google EKM key URIs: ${local.keyUri('KEY_ID')}`,
      `              XKS key URIs:        ${local.keyUri('KEY_ID', 'xks')}`,
      '              keys: npm run --silent ekm -- keys create KEY_ID --if-missing',
      '  token:      npm run --silent token',
      `  state:      ${rel(state)} (kept across restarts; npm start -- --fresh starts empty)`,
      ...(human
        ? [
            `  logs:       ${rel(config.logFile ?? join(logDir, 'gateway.jsonl'))} (requests, audit entries; JSON), ${rel(ekmLogFile)}`,
            '              below: one line per request (OPENEKM_LOG_FORMAT=json prints the JSON here instead)',
          ]
        : []),
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}

try {
  await main();
} catch (err) {
  const message =
    err instanceof EmulatorMissingError || err instanceof StartError
      ? err.message
      : `OpenEKM failed to start: ${(err as Error).message}`;
  process.stderr.write(`${message}\n`);
  await shutdown(1);
}
