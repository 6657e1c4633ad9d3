/**
 * A token thread: one PKCS#11 session on the configured token, driven synchronously off the request thread.
 * PKCS#11 calls block (a network HSM answers over the network), so they never run on the thread that serves
 * requests; the client (hsm.ts) bounds every call by the request deadline and replaces a thread that hangs.
 *
 * The session is opened and logged in on first use, and re-established once when the token drops it (a closed
 * session, a logged-out user, a token that was reset or reconnected); a key handle is looked up by CKA_ID and
 * cached for the session's life.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';
import type { TokenFault, TokenReply, TokenRequest, TokenThreadConfig } from './protocol.js';

const config = workerData as TokenThreadConfig;
const TAG_BYTES = 16;

class Fault extends Error {
  constructor(
    readonly fault: TokenFault,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

function codeOf(err: unknown): string | undefined {
  return err instanceof Error ? /CKR_[A-Z0-9_]+/.exec(err.message)?.[0] : undefined;
}

/** Codes after which the session (or the whole token connection) is re-established once. */
const RECONNECT = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
]);
const KEY_GONE = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);
/** What tokens answer for a GCM tag that does not verify (SoftHSM: CKR_GENERAL_ERROR). */
const BAD_TAG = new Set([
  'CKR_GENERAL_ERROR',
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_DATA_INVALID',
  'CKR_DATA_LEN_RANGE',
  'CKR_AEAD_DECRYPT_FAILED',
]);
const BAD_PIN = new Set([
  'CKR_PIN_INCORRECT',
  'CKR_PIN_INVALID',
  'CKR_PIN_LEN_RANGE',
  'CKR_PIN_EXPIRED',
  'CKR_PIN_LOCKED',
]);

let lib: pkcs11js.PKCS11 | undefined;
let initialized = false;
let session: Buffer | undefined;
const keys = new Map<string, Buffer>();

function library(): pkcs11js.PKCS11 {
  if (!lib) {
    const l = new pkcs11js.PKCS11();
    try {
      l.load(config.modulePath);
    } catch (err) {
      throw new Fault('load', codeOf(err), `cannot load ${config.modulePath}: ${(err as Error).message}`);
    }
    lib = l;
  }
  if (!initialized) {
    try {
      // OS locking: the token is used from several threads at once.
      lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      // One initialisation per process: another token thread (or the process itself) did it first.
      if (codeOf(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new Fault('load', codeOf(err), `C_Initialize failed: ${(err as Error).message}`);
      }
    }
    initialized = true;
  }
  return lib;
}

function slotNumber(slot: Buffer): number {
  return slot.length >= 8 ? Number(slot.readBigUInt64LE(0)) : slot.readUInt32LE(0);
}

function findSlot(l: pkcs11js.PKCS11): Buffer {
  for (const slot of l.C_GetSlotList(true)) {
    if (config.slotId !== undefined) {
      if (slotNumber(slot) === config.slotId) return slot;
    } else if (l.C_GetTokenInfo(slot).label.replace(/[\s\0]+$/, '') === config.tokenLabel) {
      return slot;
    }
  }
  const which = config.slotId !== undefined ? `in slot ${config.slotId}` : `labelled "${config.tokenLabel}"`;
  throw new Fault('token', 'CKR_TOKEN_NOT_PRESENT', `no token ${which} is present`);
}

function openSession(): Buffer {
  const l = library();
  const slot = findSlot(l);
  const s = l.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    l.C_Login(s, pkcs11js.CKU_USER, config.pin);
  } catch (err) {
    const code = codeOf(err);
    // Login state belongs to the application: another session of this process may be logged in already.
    if (code !== 'CKR_USER_ALREADY_LOGGED_IN') {
      try {
        l.C_CloseSession(s);
      } catch {
        // the login error is the one to report
      }
      throw new Fault(
        code && BAD_PIN.has(code) ? 'login' : 'device',
        code,
        `login failed: ${(err as Error).message}`,
      );
    }
  }
  session = s;
  keys.clear();
  return s;
}

function dropSession(code: string | undefined): void {
  if (session && lib && code !== 'CKR_CRYPTOKI_NOT_INITIALIZED') {
    try {
      lib.C_CloseSession(session);
    } catch {
      // already gone
    }
  }
  if (code === 'CKR_CRYPTOKI_NOT_INITIALIZED') initialized = false;
  session = undefined;
  keys.clear();
}

/** Runs `fn` on the session; once, after the token dropped the session, on a re-established one. */
function withSession<T>(fn: (l: pkcs11js.PKCS11, s: Buffer) => T): T {
  const s = session ?? openSession();
  try {
    return fn(library(), s);
  } catch (err) {
    const code = codeOf(err);
    if (err instanceof Fault || !code || !RECONNECT.has(code)) throw err;
    dropSession(code);
    return fn(library(), openSession());
  }
}

function findKeys(l: pkcs11js.PKCS11, s: Buffer, ckaId: Buffer, max: number): Buffer[] {
  l.C_FindObjectsInit(s, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_ID, value: ckaId },
  ]);
  try {
    return l.C_FindObjects(s, max);
  } finally {
    l.C_FindObjectsFinal(s);
  }
}

/** Runs `fn` with the key's handle; a handle the token no longer knows is looked up again once. */
function withKey<T>(ckaId: Buffer, fn: (l: pkcs11js.PKCS11, s: Buffer, key: Buffer) => T): T {
  return withSession((l, s) => {
    const id = ckaId.toString('hex');
    for (let attempt = 0; ; attempt++) {
      let key = keys.get(id);
      if (!key) {
        key = findKeys(l, s, ckaId, 1)[0];
        if (!key) throw new Fault('object', undefined, `no secret key with CKA_ID ${id} in the token`);
        keys.set(id, key);
      }
      try {
        return fn(l, s, key);
      } catch (err) {
        const code = codeOf(err);
        if (attempt > 0 || !code || !KEY_GONE.has(code)) throw err;
        keys.delete(id);
      }
    }
  });
}

function gcm(iv: Buffer, aad: Buffer): pkcs11js.Mechanism {
  const parameter: pkcs11js.GcmParams = {
    type: pkcs11js.CK_PARAMS_GCM,
    iv,
    ivBits: iv.length * 8,
    aad,
    tagBits: TAG_BYTES * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function run(req: TokenRequest): TokenReply {
  switch (req.op) {
    case 'generate': {
      withSession((l, s) =>
        l.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_ENCRYPT, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: true },
          { type: pkcs11js.CKA_WRAP, value: false },
          { type: pkcs11js.CKA_UNWRAP, value: false },
          { type: pkcs11js.CKA_SIGN, value: false },
          { type: pkcs11js.CKA_VERIFY, value: false },
          { type: pkcs11js.CKA_DERIVE, value: false },
          { type: pkcs11js.CKA_ID, value: buf(req.ckaId) },
          { type: pkcs11js.CKA_LABEL, value: req.label },
        ]),
      );
      return { id: req.id, ok: true };
    }
    case 'encrypt': {
      const data = buf(req.data);
      const out = withKey(buf(req.ckaId), (l, s, key) => {
        l.C_EncryptInit(s, gcm(buf(req.iv), buf(req.aad)), key);
        return l.C_Encrypt(s, data, Buffer.alloc(data.length + TAG_BYTES));
      });
      return { id: req.id, ok: true, data: out };
    }
    case 'decrypt': {
      const data = buf(req.data);
      const out = withKey(buf(req.ckaId), (l, s, key) => {
        l.C_DecryptInit(s, gcm(buf(req.iv), buf(req.aad)), key);
        try {
          return l.C_Decrypt(s, data, Buffer.alloc(data.length));
        } catch (err) {
          const code = codeOf(err);
          if (code && BAD_TAG.has(code)) throw new Fault('tag', code, 'the GCM tag did not verify');
          throw err;
        }
      });
      return { id: req.id, ok: true, data: out };
    }
    case 'destroy': {
      const ckaId = buf(req.ckaId);
      const count = withSession((l, s) => {
        const found = findKeys(l, s, ckaId, 16);
        for (const h of found) l.C_DestroyObject(s, h);
        return found.length;
      });
      keys.delete(ckaId.toString('hex'));
      return { id: req.id, ok: true, count };
    }
  }
}

function failure(id: number, err: unknown): TokenReply {
  if (err instanceof Fault) return { id, ok: false, fault: err.fault, code: err.code, message: err.message };
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code && (RECONNECT.has(code) || /^CKR_(DEVICE|TOKEN|SESSION)_|^CKR_FUNCTION_FAILED$/.test(code))) {
    return { id, ok: false, fault: 'device', code, message };
  }
  if (code && BAD_PIN.has(code)) return { id, ok: false, fault: 'login', code, message };
  return { id, ok: false, fault: 'other', code, message };
}

parentPort?.on('message', (req: TokenRequest) => {
  let reply: TokenReply;
  try {
    reply = run(req);
  } catch (err) {
    reply = failure(req.id, err);
  }
  parentPort?.postMessage(reply);
});
// The thread is up: from now on, calls are timed (thread start-up is not the token's time).
parentPort?.postMessage({ ready: true });
