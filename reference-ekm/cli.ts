/**
 * Admin CLI of the reference EKM: `npm run --silent ekm -- <command>`. It edits the state in the data
 * directory (OPENEKM_EKM_DATA_DIR); a running EKM sees each change on its next request.
 */
import { pathToFileURL } from 'node:url';
import { AdminError, EkmAdmin, parseUsage } from './admin/admin.js';
import { ConfigError, configFromEnv, type EkmConfig } from './config.js';
import { parseFaultSpec } from './core/faults.js';
import { readServerInfo } from './index.js';
import type { KeyStore } from './keystore/key-store.js';
import { openKeyStore } from './keystore/open.js';
import { StateStore } from './state/state-store.js';
import type { KeyRecord } from './state/types.js';

const USAGE = `usage: npm run --silent ekm -- <command>
  keys create <keyId> [--usage ENCRYPT,DECRYPT,...] [--if-missing]   prints the key's Google EKM URI
  keys list | keys show <keyId>
  keys disable|enable|destroy <keyId>
  access grant|revoke <keyId|cryptospaces/ID> [<principal>]
  justifications set <keyId> <REASON,...|any> [--allow-missing] [--allow-unknown]
  xks credentials create [--prefix <p>]                prints {"endpoint","uriPrefix","region","accessKeyId","secretAccessKey"}
  xks credentials revoke <accessKeyId> | xks credentials list
  cryptospaces create <id> [<principal>] | cryptospaces list
  faults set <keyId|*> <latency=MS|status=CODE|hang|reset|garbage|oversize> [rate=0..1]
  faults clear | faults list`;

class UsageError extends Error {}

/** A key store is opened only for commands that create or destroy key material. */
class Cli {
  private store: KeyStore | undefined;
  private readonly state: StateStore;

  constructor(
    private readonly config: EkmConfig,
    private readonly out: (line: string) => void,
  ) {
    this.state = new StateStore(config.dataDir);
  }

  private admin(withStore: boolean): EkmAdmin {
    if (withStore && !this.store) {
      this.store = openKeyStore({
        backend: this.config.backend,
        dataDir: this.config.dataDir,
        mode: this.config.mode,
        masterKey: this.config.masterKey,
        pkcs11: this.config.pkcs11,
      });
    }
    const placeholder = { backend: this.config.backend } as KeyStore;
    return new EkmAdmin({
      state: this.state,
      store: this.store ?? placeholder,
      // Keys created from the CLI are granted to the running server's default principal unless the environment
      // names another (the local stack's server grants the EKM identity of the README's project).
      defaultPrincipal: this.config.defaultPrincipalSet
        ? this.config.defaultPrincipal
        : (readServerInfo(this.config.dataDir)?.defaultPrincipal ?? this.config.defaultPrincipal),
      mode: readServerInfo(this.config.dataDir)?.mode ?? this.config.mode,
    });
  }

  async close(): Promise<void> {
    await this.store?.close();
  }

  private origins(): { httpUrl: string; httpsUrl: string } {
    const running = readServerInfo(this.config.dataDir);
    if (running) return running;
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return {
      httpUrl: `http://127.0.0.1:${this.config.httpPort}`,
      httpsUrl: `https://${host}:${this.config.httpsPort}`,
    };
  }

  async run(args: string[]): Promise<void> {
    const [group, command, ...rest] = args;
    const { positional, flags } = parseArgs(rest);
    const arg = (i: number, name: string) => {
      const value = positional[i];
      if (value === undefined) throw new UsageError(`missing <${name}>`);
      return value;
    };
    switch (`${group} ${command}`) {
      case 'keys create': {
        const usage = typeof flags.usage === 'string' ? parseUsage(flags.usage) : undefined;
        // --if-missing: an existing key is not an error (its URI is printed), so scripts can run twice.
        if (
          flags['if-missing'] === true &&
          this.admin(false)
            .listKeys()
            .some((k) => k.keyId === positional[0])
        ) {
          this.out(`${this.origins().httpsUrl}/v0/keys/${positional[0]}`);
          return;
        }
        const key = await this.admin(true).createKey(arg(0, 'keyId'), usage);
        this.out(`${this.origins().httpsUrl}/v0/keys/${key.keyId}`);
        return;
      }
      case 'keys list':
        for (const key of this.admin(false).listKeys()) {
          this.out(
            `${key.keyId}\t${key.status}\t${key.usage.join(',') || '-'}\t${key.grants.join(',') || '-'}`,
          );
        }
        return;
      case 'keys show':
        this.out(JSON.stringify(this.describe(this.admin(false).showKey(arg(0, 'keyId'))), null, 2));
        return;
      case 'keys disable':
      case 'keys enable':
        this.out(
          JSON.stringify(
            this.describe(await this.admin(false).setEnabled(arg(0, 'keyId'), command === 'enable')),
          ),
        );
        return;
      case 'keys destroy':
        this.out(JSON.stringify(this.describe(await this.admin(true).destroyKey(arg(0, 'keyId')))));
        return;
      case 'access grant':
      case 'access revoke': {
        const admin = this.admin(false);
        const target = arg(0, 'keyId');
        const principal = positional[1] ?? admin.defaultPrincipal;
        const before = target.startsWith('cryptospaces/')
          ? admin.listCryptoSpaces().find((c) => `cryptospaces/${c.cryptoSpaceId}` === target)?.grants
          : admin.listKeys().find((k) => k.keyId === target)?.grants;
        const grants =
          command === 'grant' ? await admin.grant(target, principal) : await admin.revoke(target, principal);
        // Say exactly what changed, for whom, and who still has access.
        const changed = command === 'grant' ? !before?.includes(principal) : !!before?.includes(principal);
        const verb = command === 'grant' ? 'granted' : 'revoked';
        this.out(JSON.stringify({ target, principal, [verb]: changed, grants }));
        return;
      }
      case 'justifications set': {
        const key = await this.admin(false).setJustifications(arg(0, 'keyId'), arg(1, 'REASON,...|any'), {
          allowMissing: flags['allow-missing'] === true,
          allowUnknown: flags['allow-unknown'] === true,
        });
        this.out(JSON.stringify({ keyId: key.keyId, justifications: key.justifications }));
        return;
      }
      case 'xks credentials': {
        const [sub, ...more] = positional;
        if (sub === 'create') {
          const prefix = typeof flags.prefix === 'string' ? flags.prefix : undefined;
          const credential = await this.admin(false).createXksCredential(prefix);
          this.out(
            JSON.stringify({
              endpoint: this.origins().httpUrl,
              uriPrefix: credential.uriPrefix,
              region: this.config.xksRegion,
              accessKeyId: credential.accessKeyId,
              secretAccessKey: credential.secretAccessKey,
            }),
          );
          return;
        }
        if (sub === 'revoke') {
          if (!more[0]) throw new UsageError('missing <accessKeyId>');
          await this.admin(false).revokeXksCredential(more[0]);
          return;
        }
        if (sub === 'list') {
          for (const c of this.admin(false).listXksCredentials())
            this.out(`${c.accessKeyId}\t${c.uriPrefix}\t${c.createTime}`);
          return;
        }
        throw new UsageError('use: xks credentials create|revoke|list');
      }
      case 'cryptospaces create':
        this.out(JSON.stringify(await this.admin(false).createCryptoSpace(arg(0, 'id'), positional[1])));
        return;
      case 'cryptospaces list':
        for (const s of this.admin(false).listCryptoSpaces())
          this.out(`${s.cryptoSpaceId}\t${s.grants.join(',')}`);
        return;
      case 'faults set': {
        const target = arg(0, 'keyId|*');
        let spec: ReturnType<typeof parseFaultSpec>;
        try {
          spec = parseFaultSpec(arg(1, 'fault'), positional[2]);
        } catch (error) {
          throw new UsageError((error as Error).message);
        }
        const rules = await this.admin(false).setFault({ target, ...spec });
        this.out(JSON.stringify({ faults: rules }));
        return;
      }
      case 'faults clear':
        await this.admin(false).clearFaults();
        return;
      case 'faults list':
        this.out(JSON.stringify({ faults: this.admin(false).listFaults() }));
        return;
      default:
        throw new UsageError(group === undefined ? '' : `unknown command: ${args.join(' ')}`);
    }
  }

  /** A key record as shown to operators: references only, never material. */
  private describe(key: KeyRecord): Record<string, unknown> {
    const { material, ...rest } = key;
    return { ...rest, keyUri: `${this.origins().httpsUrl}/v0/keys/${key.keyId}`, backend: material?.backend };
  }
}

function parseArgs(args: string[]): { positional: string[]; flags: Record<string, string | true> } {
  const positional: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (arg.startsWith('--')) {
      const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
      if (name === 'usage' || name === 'prefix') {
        const value = inline ?? args[i + 1];
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
        if (inline === undefined) i += 1;
        flags[name] = value;
      } else if (name === 'allow-missing' || name === 'allow-unknown' || name === 'if-missing') {
        flags[name] = true;
      } else {
        throw new UsageError(`unknown option --${name}`);
      }
    } else {
      positional.push(arg);
    }
  }
  return { positional, flags };
}

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout(line: string): void;
  stderr(text: string): void;
}

/** `help`, or `--help`/`-h` anywhere on the line, asks for the usage text. */
function wantsHelp(args: string[]): boolean {
  if (args[0] === 'help') return true;
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === '--help' || args[i] === '-h') return true;
    if (args[i] === '--usage' || args[i] === '--prefix') i += 1; // their value, whatever it reads
  }
  return false;
}

/**
 * Runs one CLI command; returns the exit status (0 ok or help asked for, 2 refused or bad usage, 1 unexpected
 * failure).
 */
export async function runCli(args: string[], io: CliIo): Promise<number> {
  if (wantsHelp(args)) {
    io.stdout(USAGE);
    return 0;
  }
  let cli: Cli | undefined;
  try {
    cli = new Cli(configFromEnv(io.env), io.stdout);
    await cli.run(args);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`${error.message ? `${error.message}\n` : ''}${USAGE}\n`);
      return 2;
    }
    if (error instanceof AdminError || error instanceof ConfigError) {
      io.stderr(`ekm: ${error.message}\n`);
      return 2;
    }
    io.stderr(`ekm: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await cli?.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runCli(process.argv.slice(2), {
    env: process.env,
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (text) => process.stderr.write(text),
  }).then((code) => {
    process.exitCode = code;
  });
}
