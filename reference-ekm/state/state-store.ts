import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type EkmState, emptyState } from './types.js';

const LOCK_WAIT_MS = 5_000;
const STALE_LOCK_MS = 30_000;

/**
 * The state file in the data directory, shared by the server and the admin CLI (two processes).
 * Reads are cached and revalidated with one stat per call (inode, size, mtime): a rename by another
 * process always changes the inode, so a change is seen on the very next read.
 * Writes are read-modify-write under an exclusive lock file, then an atomic rename.
 */
export class StateStore {
  readonly path: string;
  private readonly lockPath: string;
  private cached: { stamp: string; state: EkmState } | undefined;

  constructor(readonly dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.path = join(dataDir, 'state.json');
    this.lockPath = join(dataDir, 'state.lock');
  }

  /** The current state. Treat it as read-only: change state only through update(). */
  read(): EkmState {
    let stamp: string;
    try {
      const st = statSync(this.path, { bigint: true });
      stamp = `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw error;
    }
    if (this.cached?.stamp === stamp) return this.cached.state;
    const state = parseState(readFileSync(this.path, 'utf8'), this.path);
    this.cached = { stamp, state };
    return state;
  }

  /** Applies `change` to a fresh copy of the state under the lock and writes the result atomically. */
  async update<T>(change: (state: EkmState) => T | Promise<T>): Promise<T> {
    await this.lock();
    try {
      this.cached = undefined;
      const state = structuredClone(this.read());
      const result = await change(state);
      const tmp = `${this.path}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      renameSync(tmp, this.path);
      this.cached = undefined;
      return result;
    } finally {
      this.unlock();
    }
  }

  private async lock(): Promise<void> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(this.lockPath, 'wx', 0o600));
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        try {
          if (Date.now() - statSync(this.lockPath).mtimeMs > STALE_LOCK_MS) unlinkSync(this.lockPath);
        } catch {
          // the holder released it meanwhile
        }
        if (Date.now() > deadline) {
          throw new Error(`state lock ${this.lockPath} is held by another process; try again`);
        }
        await sleep(5);
      }
    }
  }

  private unlock(): void {
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }
}

function parseState(text: string, path: string): EkmState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON; restore it from a backup`);
  }
  const state = value as Partial<EkmState>;
  if (state.formatVersion !== 1) throw new Error(`${path} has an unknown format version`);
  return {
    ...emptyState(),
    ...state,
  } as EkmState;
}
