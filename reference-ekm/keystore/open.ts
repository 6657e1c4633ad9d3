import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type EkmMode, findSoftHsmModule } from '../config.js';
import type { BackendName } from '../state/types.js';
import type { KeyStore } from './key-store.js';
import { Pkcs11KeyStore } from './pkcs11.js';
import { SoftwareKeyStore } from './software.js';

export interface KeyStoreOptions {
  backend: BackendName;
  dataDir: string;
  mode: EkmMode;
  masterKey?: Buffer;
  pkcs11?: { modulePath?: string; tokenLabel?: string; pin?: string };
}

/**
 * Opens the configured key store. For SoftHSM in local and test modes, everything the token needs is
 * provisioned under `<dataDir>/softhsm/` when absent: a private softhsm2.conf (unless SOFTHSM2_CONF is
 * set), the token directory, the token itself and its PINs (files of mode 0600).
 */
export function openKeyStore(options: KeyStoreOptions): KeyStore {
  if (options.backend === 'software') {
    return new SoftwareKeyStore({ dataDir: options.dataDir, masterKey: options.masterKey });
  }
  const modulePath = options.pkcs11?.modulePath ?? findSoftHsmModule();
  if (!modulePath || !existsSync(modulePath)) {
    throw new ConfigError(
      'the softhsm back end needs SoftHSM2: install it (Debian/Ubuntu: apt-get install -y softhsm2) ' +
        'or point OPENEKM_EKM_PKCS11_MODULE at a PKCS#11 module',
    );
  }
  const provision = options.mode !== 'production';
  const dir = join(options.dataDir, 'softhsm');
  if (provision) mkdirSync(join(dir, 'tokens'), { recursive: true, mode: 0o700 });
  if (!process.env.SOFTHSM2_CONF) {
    if (!provision) throw new ConfigError('set SOFTHSM2_CONF to the SoftHSM2 configuration of the token');
    const conf = join(dir, 'softhsm2.conf');
    if (!existsSync(conf)) {
      writeFileSync(
        conf,
        `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
      );
    }
    process.env.SOFTHSM2_CONF = conf;
  }
  let pin = options.pkcs11?.pin;
  let soPin: string | undefined;
  if (provision) {
    pin ??= secretFile(join(dir, 'pin'));
    soPin = secretFile(join(dir, 'so-pin'));
  }
  if (!pin) throw new ConfigError('set OPENEKM_EKM_PKCS11_PIN to the token user PIN');
  return new Pkcs11KeyStore({
    modulePath,
    tokenLabel: options.pkcs11?.tokenLabel ?? 'openekm',
    pin,
    initTokenSoPin: soPin,
  });
}

function secretFile(path: string): string {
  if (!existsSync(path)) {
    try {
      writeFileSync(path, randomBytes(12).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return readFileSync(path, 'utf8').trim();
}
