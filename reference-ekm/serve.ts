/**
 * Runs the reference EKM standalone: `npm run ekm:serve`. Configuration comes from OPENEKM_EKM_*
 * environment variables (see docs/reference-ekm.md). Request logs go to stdout, one JSON line each.
 *
 * Started as a child process with an IPC channel (as the local stack, the bench and the load tests start it, so
 * the EKM has its own event loop like a real partner), it reports its URLs to the parent with a
 * `{type: "ready", ...}` message and stops as soon as that channel closes: the parent ending — even killed —
 * never leaves it running.
 */
import { ConfigError, configFromEnv } from './config.js';
import { startReferenceEkm } from './index.js';

async function main(): Promise<void> {
  const config = configFromEnv();
  const ekm = await startReferenceEkm({
    dataDir: config.dataDir,
    host: config.host,
    httpPort: config.httpPort,
    httpsPort: config.httpsPort,
    backend: config.backend,
    mode: config.mode,
    trustedIssuers: config.trustedIssuers,
    defaultPrincipal: config.defaultPrincipal,
    extraAudiences: config.extraAudiences,
    rateLimit: config.rateLimit,
    masterKey: config.masterKey,
    pkcs11: config.pkcs11,
    tls: config.tls,
    xksRegion: config.xksRegion,
  });
  process.stderr.write(
    [
      `OpenEKM reference EKM (${config.backend} keys, ${config.mode} mode), data in ${config.dataDir}`,
      `  Google EKM v0  ${ekm.googleEkmBaseUrl}/keys/{keyId}   (CA: ${ekm.caCertPath})`,
      `                 ${ekm.googleEkmHttpBaseUrl}/keys/{keyId}`,
      `  AWS XKS v1     ${ekm.xksBaseUrl('{prefix}')}`,
      `  liveness       ${ekm.httpUrl}/healthz`,
      config.trustedIssuers.length === 0
        ? '  note: OPENEKM_EKM_TRUSTED_ISSUERS is empty, so no Google EKM token is accepted'
        : '',
      '',
    ]
      .filter((line, i, all) => line !== '' || i === all.length - 1)
      .join('\n'),
  );
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    ekm.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  if (process.send) {
    process.once('disconnect', shutdown);
    process.send({
      type: 'ready',
      pid: process.pid,
      httpUrl: ekm.httpUrl,
      httpsUrl: ekm.httpsUrl,
      caCertPath: ekm.caCertPath,
      backend: ekm.backend,
    });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `reference EKM: ${error instanceof ConfigError ? error.message : (error as Error).stack}\n`,
  );
  process.exit(error instanceof ConfigError ? 2 : 1);
});
