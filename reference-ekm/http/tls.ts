import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';

export interface TlsMaterial {
  caCertPath: string;
  cert: string;
  key: string;
}

const DAY_MS = 86_400_000;

/**
 * A local certificate authority and a server certificate signed by it, kept in `dir` (keys mode 0600).
 * Generated on first start; the server certificate is re-issued when its host names change or it is
 * within 30 days of expiry. Clients trust the EKM by trusting ca.pem only.
 */
export function ensureLocalTls(dir: string, hostnames: string[]): TlsMaterial {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caCertPath = join(dir, 'ca.pem');
  const caKeyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'server.pem');
  const keyPath = join(dir, 'server.key');
  const namesPath = join(dir, 'server-names.json');
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...hostnames])];

  if (!existsSync(caCertPath) || !existsSync(caKeyPath)) {
    const { cert, key } = issue({ commonName: 'OpenEKM reference EKM local CA', ca: true, years: 10 });
    writeFileSync(caKeyPath, key, { mode: 0o600 });
    writeFileSync(caCertPath, cert);
  }
  const caPem = readFileSync(caCertPath, 'utf8');
  const fresh =
    existsSync(certPath) &&
    existsSync(keyPath) &&
    existsSync(namesPath) &&
    readFileSync(namesPath, 'utf8') === JSON.stringify(names) &&
    new Date(new X509Certificate(readFileSync(certPath)).validTo).getTime() - Date.now() > 30 * DAY_MS &&
    new X509Certificate(readFileSync(certPath)).checkIssued(new X509Certificate(caPem));
  if (!fresh) {
    const { cert, key } = issue({
      commonName: 'OpenEKM reference EKM',
      ca: false,
      years: 1,
      names,
      issuer: { cert: caPem, key: readFileSync(caKeyPath, 'utf8') },
    });
    writeFileSync(keyPath, key, { mode: 0o600 });
    writeFileSync(certPath, cert);
    writeFileSync(namesPath, JSON.stringify(names));
  }
  return { caCertPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

function issue(options: {
  commonName: string;
  ca: boolean;
  years: number;
  names?: string[];
  issuer?: { cert: string; key: string };
}): { cert: string; key: string } {
  // RSA key generation in node:crypto (fast, native); node-forge builds and signs the X.509 certificate.
  const pair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey);
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - DAY_MS);
  cert.validity.notAfter = new Date(Date.now() + options.years * 365 * DAY_MS);
  const subject = [
    { name: 'commonName', value: options.commonName },
    { name: 'organizationName', value: 'OpenEKM' },
  ];
  cert.setSubject(subject);
  const issuerCert = options.issuer ? forge.pki.certificateFromPem(options.issuer.cert) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: options.ca, critical: true },
    options.ca
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!options.ca) {
    extensions.push({ name: 'extKeyUsage', serverAuth: true });
    extensions.push({
      name: 'subjectAltName',
      altNames: (options.names ?? []).map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    });
  }
  cert.setExtensions(extensions);
  const signingKey = forge.pki.privateKeyFromPem(options.issuer?.key ?? pair.privateKey);
  cert.sign(signingKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: pair.privateKey };
}
