/**
 * Runs the reference EKM standalone: `npm run ekm:serve`. Configuration comes from OPENEKM_EKM_*
 * environment variables (see docs/reference-ekm.md). Request logs go to stdout, one JSON line each.
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
  const shutdown = () => {
    ekm.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `reference EKM: ${error instanceof ConfigError ? error.message : (error as Error).stack}\n`,
  );
  process.exit(error instanceof ConfigError ? 2 : 1);
});
