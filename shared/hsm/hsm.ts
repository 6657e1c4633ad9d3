/**
 * HSM keys in a PKCS#11 token (docs/hsm.md). Each version's key is generated in the token — an AES-256 secret
 * key, an HMAC generic secret, or an EC or RSA key pair; private parts sensitive and never extractable — or, for an
 * imported secret key, created there from its value (importKey); it is found by a random CKA_ID. Encryption, MACs and signatures run inside the token, as does random byte generation.
 *
 * PKCS#11 calls block, so they run on token threads (worker.ts), one session each: a pool of
 * `config.sessions` threads, started on first use, each call going to the least busy one. Every call is bounded
 * by the caller's signal (the request deadline) and by `config.timeoutMs`; a thread that does not answer within
 * `timeoutMs` is abandoned and replaced, so a hung HSM costs requests their deadline, never the event loop.
 * Token failures become google.rpc errors that say what happened and who must act.
 */
import { createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { HsmConfig } from '../config.js';
import { RpcError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  CURVE_OIDS,
  type EcCurve,
  ED25519_OID,
  type TokenKeyKind,
  type TokenMechanism,
  type TokenPublicKey,
  type TokenReply,
  type TokenRequest,
  type TokenThreadConfig,
} from './protocol.js';

/** What a version stores about its HSM key: the token object's CKA_ID (hex) and label; never material. */
export interface HsmKeyRef {
  ckaId: string;
  label: string;
}

export interface HsmCallOptions {
  /** The resource the call is for (a version name), named in error messages. */
  subject: string;
  /** Aborts the wait (the request deadline, or the client went away). */
  signal?: AbortSignal;
}

/** RSA key pair generation takes seconds in a busy token: it gets at least this long, whatever the call timeout. */
const KEY_PAIR_TIMEOUT_MS = 60_000;

type Op = TokenRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve: (reply: TokenReply) => void;
  reject: (err: RpcError) => void;
}

class TokenThread {
  readonly pending = new Map<number, Pending>();
  dead = false;
  /** Settles when the thread has started (its module loaded), before any PKCS#11 call. */
  readonly ready: Promise<void>;
  started!: () => void;
  failed!: (err: RpcError) => void;
  constructor(readonly worker: Worker) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.started = resolve;
      this.failed = reject;
    });
    this.ready.catch(() => undefined);
  }
}

/** Waits for `p` unless the signal aborts first. */
function unlessAborted<T>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: () => RpcError,
): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/**
 * The token thread's module. Built code runs worker.js; run from TypeScript sources (tests, tsx), the thread
 * first registers tsx's loader, which worker threads do not inherit.
 */
function tokenThread(workerData: TokenThreadConfig): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./worker.js', import.meta.url), { workerData });
  const source = new URL('./worker.ts', import.meta.url).href;
  const loader = import.meta.resolve('tsx/esm/api');
  return new Worker(
    `import(${JSON.stringify(loader)}).then((m) => { m.register(); return import(${JSON.stringify(source)}); });`,
    { eval: true, workerData },
  );
}

export class Hsm {
  private readonly threads: (TokenThread | undefined)[];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly config: HsmConfig,
    private readonly log: Logger,
  ) {
    this.threads = new Array(config.sessions).fill(undefined);
  }

  /** The token as messages name it. */
  get token(): string {
    return this.config.tokenLabel !== undefined
      ? `token "${this.config.tokenLabel}"`
      : `the token in slot ${this.config.slotId}`;
  }

  /** Generates a new key (or key pair) of `kind` in the token; the caller stores the reference. */
  async generateKey(kind: TokenKeyKind, options: HsmCallOptions): Promise<HsmKeyRef> {
    const timeoutMs =
      kind.type === 'rsa' ? Math.max(KEY_PAIR_TIMEOUT_MS, this.config.timeoutMs) : this.config.timeoutMs;
    return this.newObject('generation', (ckaId, label) =>
      this.call({ op: 'generate', ckaId, label, kind }, options, undefined, timeoutMs),
    );
  }

  /**
   * Puts imported secret material into the token as a new key object (C_CreateObject) — an AES key for
   * encryption, or a generic secret for HMAC — sealed like a generated key (sensitive, never extractable). The
   * caller stores the reference. `value` is zeroed when the call returns, whatever its outcome.
   */
  async importKey(
    kind: TokenKeyKind & { type: 'aes' | 'hmac' },
    value: Buffer,
    options: HsmCallOptions,
  ): Promise<HsmKeyRef> {
    // A copy in a buffer of its own: a message carries the whole buffer a view lies in, never more than the key.
    const own = new Uint8Array(value);
    try {
      return await this.newObject('import', (ckaId, label) =>
        this.call({ op: 'import', ckaId, label, kind, value: own }, options),
      );
    } finally {
      own.fill(0);
      value.fill(0);
    }
  }

  /**
   * A new token object under a fresh CKA_ID and label, made by `make`. A token that answers late may still make
   * the object after OpenEKM gave up: the warning names it for the operator.
   */
  private async newObject(
    what: 'generation' | 'import',
    make: (ckaId: Buffer, label: string) => Promise<unknown>,
  ): Promise<HsmKeyRef> {
    const id = randomBytes(16);
    const label = `openekm:${id.toString('hex')}`;
    try {
      await make(id, label);
    } catch (err) {
      if (err instanceof RpcError && (err.code === 'UNAVAILABLE' || err.code === 'DEADLINE_EXCEEDED')) {
        this.log.warn(`HSM key ${what} did not complete; if the token made the key anyway, it is unused`, {
          token: this.token,
          label,
        });
      }
      throw err;
    }
    return { ckaId: id.toString('hex'), label };
  }

  /** AES-256-GCM inside the token: returns ciphertext ‖ 16-byte tag. */
  async encrypt(
    key: HsmKeyRef,
    iv: Buffer,
    aad: Buffer,
    plaintext: Buffer,
    options: HsmCallOptions,
  ): Promise<Buffer> {
    const reply = await this.call(
      { op: 'encrypt', ckaId: Buffer.from(key.ckaId, 'hex'), iv, aad, data: plaintext },
      options,
      key,
    );
    return bytes(reply);
  }

  /** Reverses encrypt; undefined when the tag does not verify (tampered, foreign, or other AAD). */
  async decrypt(
    key: HsmKeyRef,
    iv: Buffer,
    aad: Buffer,
    ciphertextAndTag: Buffer,
    options: HsmCallOptions,
  ): Promise<Buffer | undefined> {
    try {
      const reply = await this.call(
        { op: 'decrypt', ckaId: Buffer.from(key.ckaId, 'hex'), iv, aad, data: ciphertextAndTag },
        options,
        key,
      );
      return bytes(reply);
    } catch (err) {
      if (err instanceof TagMismatch) return undefined;
      throw err;
    }
  }

  /** Signs (or MACs) `data` with the key's private or secret object: the signature as the token returns it. */
  async sign(
    key: HsmKeyRef,
    mechanism: TokenMechanism,
    data: Buffer,
    options: HsmCallOptions,
  ): Promise<Buffer> {
    const reply = await this.call(
      { op: 'sign', ckaId: Buffer.from(key.ckaId, 'hex'), mechanism, data },
      options,
      key,
    );
    return bytes(reply);
  }

  /** Whether `signature` is the key's MAC of `data` (a mismatch is false, not an error). */
  async verify(
    key: HsmKeyRef,
    mechanism: TokenMechanism,
    data: Buffer,
    signature: Buffer,
    options: HsmCallOptions,
  ): Promise<boolean> {
    const reply = await this.call(
      { op: 'verify', ckaId: Buffer.from(key.ckaId, 'hex'), mechanism, data, signature },
      options,
      key,
    );
    return reply.valid === true;
  }

  /** The public key of the key pair, built from the token's public object. */
  async publicKey(key: HsmKeyRef, options: HsmCallOptions): Promise<KeyObject> {
    const reply = await this.call({ op: 'publicKey', ckaId: Buffer.from(key.ckaId, 'hex') }, options, key);
    if (!reply.publicKey) throw RpcError.internal(new Error('the token thread returned no public key'));
    return publicKeyObject(reply.publicKey);
  }

  /** `length` bytes from the token's random number generator (C_GenerateRandom). */
  async random(length: number, options: HsmCallOptions): Promise<Buffer> {
    const out = bytes(await this.call({ op: 'random', length }, options));
    if (out.length !== length) {
      throw RpcError.internal(new Error(`the token returned ${out.length} random bytes, not ${length}`));
    }
    return out;
  }

  /** Destroys the key's token object(s); a key that is already gone is not an error. Returns how many went. */
  async destroyKey(key: HsmKeyRef, options: HsmCallOptions): Promise<number> {
    const reply = await this.call({ op: 'destroy', ckaId: Buffer.from(key.ckaId, 'hex') }, options, key);
    return reply.ok ? (reply.count ?? 0) : 0;
  }

  /** Ends the token threads (their sessions close with them). */
  async close(): Promise<void> {
    this.closed = true;
    const all = this.threads.filter((t): t is TokenThread => t !== undefined);
    this.threads.fill(undefined);
    await Promise.all(
      all.map((t) => this.retire(t, RpcError.unavailable('The HSM client is shutting down.'))),
    );
  }

  private async call(
    op: Op,
    options: HsmCallOptions,
    key?: HsmKeyRef,
    timeoutMs = this.config.timeoutMs,
  ): Promise<TokenReply & { ok: true }> {
    if (this.closed) throw RpcError.unavailable('The HSM client is shut down.');
    options.signal?.throwIfAborted();
    const thread = this.pick();
    const deadlinePassed = () =>
      RpcError.deadlineExceeded(
        `The request deadline passed while waiting for the HSM (${this.token}) on ${options.subject}.`,
      );
    // Starting a thread is not the token's time; the timeout below covers the PKCS#11 work only.
    await unlessAborted(thread.ready, options.signal, deadlinePassed);
    const id = this.nextId++;
    const reply = await new Promise<TokenReply>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        thread.pending.delete(id);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          RpcError.unavailable(
            `The HSM (${this.token}) did not answer within ${timeoutMs} ms. Retry later; an operator must check that the HSM is reachable (docs/hsm.md).`,
          ),
        );
        // A thread stuck in a PKCS#11 call is abandoned; the next call starts a fresh one.
        this.log.warn('HSM call timed out; replacing its token thread', { op: op.op, token: this.token });
        void this.retire(thread, RpcError.unavailable(`The HSM (${this.token}) stopped answering.`));
      }, timeoutMs);
      const onAbort = () => {
        done();
        reject(deadlinePassed());
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      thread.pending.set(id, {
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      thread.worker.postMessage({ ...op, id } as TokenRequest);
    });
    if (reply.ok) return reply;
    throw this.failure(reply, options.subject, key);
  }

  /** The least busy token thread, started if its slot is empty. */
  private pick(): TokenThread {
    let best = -1;
    for (let i = 0; i < this.threads.length; i++) {
      const t = this.threads[i];
      if (!t) {
        best = i;
        break;
      }
      if (best < 0 || t.pending.size < (this.threads[best] as TokenThread).pending.size) best = i;
    }
    const existing = this.threads[best];
    if (existing) return existing;
    const thread = this.start();
    this.threads[best] = thread;
    return thread;
  }

  private start(): TokenThread {
    const data: TokenThreadConfig = {
      modulePath: this.config.modulePath,
      pin: this.config.pin,
      ...(this.config.tokenLabel !== undefined
        ? { tokenLabel: this.config.tokenLabel }
        : { slotId: this.config.slotId as number }),
    };
    const worker = tokenThread(data);
    // The pool never keeps a process alive on its own; pending calls hold their own timers.
    worker.unref();
    const thread = new TokenThread(worker);
    worker.on('message', (reply: TokenReply | { ready: true }) => {
      if ('ready' in reply) thread.started();
      else thread.pending.get(reply.id)?.resolve(reply);
    });
    worker.on('error', (err) => {
      this.log.error('HSM token thread failed', { token: this.token, cause: err.message });
      void this.retire(thread, RpcError.unavailable(`The HSM client for ${this.token} failed.`, err));
    });
    worker.on('exit', () => {
      void this.retire(thread, RpcError.unavailable(`The HSM client for ${this.token} stopped.`));
    });
    return thread;
  }

  private async retire(thread: TokenThread, reason: RpcError): Promise<void> {
    const i = this.threads.indexOf(thread);
    if (i >= 0) this.threads[i] = undefined;
    thread.failed(reason);
    for (const p of [...thread.pending.values()]) p.reject(reason);
    if (thread.dead) return;
    thread.dead = true;
    // terminate() settles only when the thread returns from native code; never wait on a hung HSM for it.
    const terminated = thread.worker.terminate().catch(() => undefined);
    await Promise.race([terminated, new Promise((r) => setTimeout(r, 1000).unref())]);
  }

  private failure(reply: TokenReply & { ok: false }, subject: string, key?: HsmKeyRef): Error {
    const code = reply.code ? ` (${reply.code})` : '';
    switch (reply.fault) {
      case 'tag':
        return new TagMismatch();
      case 'load':
        return RpcError.failedPrecondition(
          `The HSM's PKCS#11 library could not be loaded or initialised${code}. An operator must install the HSM vendor's PKCS#11 library and its configuration, and point OPENEKM_HSM_MODULE at it (docs/hsm.md).`,
        );
      case 'token':
        return RpcError.unavailable(
          `The HSM ${this.token} is not available${code}. Retry later; an operator must check that the HSM is reachable and the token present, or fix OPENEKM_HSM_TOKEN_LABEL / OPENEKM_HSM_SLOT (docs/hsm.md).`,
        );
      case 'login':
        return RpcError.failedPrecondition(
          `The HSM ${this.token} refused OpenEKM's login${code}. An operator must set the token's user PIN in OPENEKM_HSM_PIN_FILE (or OPENEKM_HSM_PIN), or unlock the PIN (docs/hsm.md).`,
          [{ type: 'HSM_LOGIN', subject: this.token, description: `The token refused the user PIN${code}.` }],
        );
      case 'object':
        return RpcError.failedPrecondition(
          `The HSM key of ${subject} (CKA_ID ${key?.ckaId ?? '?'}) is missing from ${this.token}: it was deleted outside OpenEKM, or OpenEKM is configured with another token than the one the key was made in.`,
          [
            {
              type: 'HSM_KEY_MISSING',
              subject,
              description: `No key object with CKA_ID ${key?.ckaId ?? '?'} in ${this.token}.`,
            },
          ],
        );
      case 'mechanism':
        return RpcError.failedPrecondition(
          `The HSM ${this.token} does not offer what ${subject} needs${code}: ${reply.message}. An operator must use a token that supports the mechanisms listed in docs/hsm.md, or create the key with another algorithm.`,
          [{ type: 'HSM_MECHANISM', subject: this.token, description: `Unsupported by the token${code}.` }],
        );
      case 'device':
        return RpcError.unavailable(
          `The HSM ${this.token} failed${code}, also after re-establishing the session. Retry later; an operator must check the HSM (docs/hsm.md).`,
        );
      default:
        return RpcError.internal(new Error(`PKCS#11 call failed: ${reply.message}`));
    }
  }
}

class TagMismatch extends Error {}

const COORDINATE_BYTES: Record<EcCurve, number> = { 'P-256': 32, 'P-384': 48, secp256k1: 32 };

/**
 * A node:crypto public key from the token's attributes, through a JWK. CKA_EC_POINT is the uncompressed point
 * (04 ‖ X ‖ Y), or an Ed25519 key's 32 bytes, which tokens return DER-wrapped in an OCTET STRING or bare.
 */
function publicKeyObject(pub: TokenPublicKey): KeyObject {
  const b64url = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64url');
  if (pub.type === 'rsa') {
    const unsigned = (u: Uint8Array) => {
      let i = 0;
      while (i < u.length - 1 && u[i] === 0) i++;
      return u.subarray(i);
    };
    return createPublicKey({
      key: { kty: 'RSA', n: b64url(unsigned(pub.modulus)), e: b64url(unsigned(pub.exponent)) },
      format: 'jwk',
    });
  }
  if (pub.type === 'ed25519') {
    // The 32-byte public key, DER-wrapped in an OCTET STRING or bare.
    const params = Buffer.from(pub.params).toString('hex');
    if (params !== ED25519_OID && !Buffer.from(pub.params).toString('latin1').includes('edwards25519')) {
      throw RpcError.internal(new Error(`the token's EdDSA key has parameters ${params}, not Ed25519`));
    }
    return createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pub.point.subarray(-32)) },
      format: 'jwk',
    });
  }
  const params = Buffer.from(pub.params).toString('hex');
  const curve = (Object.keys(CURVE_OIDS) as EcCurve[]).find((c) => CURVE_OIDS[c] === params);
  if (!curve) throw RpcError.internal(new Error(`the token's EC key has unknown parameters ${params}`));
  const n = COORDINATE_BYTES[curve];
  const point = pub.point.subarray(pub.point.length - (1 + 2 * n));
  if (point.length !== 1 + 2 * n || point[0] !== 0x04) {
    throw RpcError.internal(new Error('the token returned an EC point that is not uncompressed'));
  }
  return createPublicKey({
    key: { kty: 'EC', crv: curve, x: b64url(point.subarray(1, 1 + n)), y: b64url(point.subarray(1 + n)) },
    format: 'jwk',
  });
}

function bytes(reply: TokenReply & { ok: true }): Buffer {
  const d = reply.data;
  if (!d) throw RpcError.internal(new Error('the token thread returned no data'));
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}
