/**
 * A token thread: one PKCS#11 session on the configured token, driven synchronously off the request thread.
 * PKCS#11 calls block (a network HSM answers over the network), so they never run on the thread that serves
 * requests; the client (hsm.ts) bounds every call by the request deadline and replaces a thread that hangs.
 *
 * The session is opened and logged in on first use, and re-established once when the token drops it (a closed
 * session, a logged-out user, a token that was reset or reconnected); a key handle is looked up by object class
 * and CKA_ID and cached for the session's life. A key pair's private and public objects share one CKA_ID.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';
import {
  CURVE_OIDS,
  ED25519_OID,
  type TokenFault,
  type TokenKeyKind,
  type TokenMechanism,
  type TokenPublicKey,
  type TokenReply,
  type TokenRequest,
  type TokenThreadConfig,
} from './protocol.js';

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
/** What tokens answer for a MAC that does not match. */
const BAD_SIGNATURE = new Set(['CKR_SIGNATURE_INVALID', 'CKR_SIGNATURE_LEN_RANGE']);
/** The token lacks a mechanism, curve or key size the call needs. */
const NO_MECHANISM = new Set([
  'CKR_MECHANISM_INVALID',
  'CKR_MECHANISM_PARAM_INVALID',
  'CKR_KEY_SIZE_RANGE',
  'CKR_DOMAIN_PARAMS_INVALID',
  'CKR_CURVE_NOT_SUPPORTED',
  'CKR_TEMPLATE_INCONSISTENT',
  'CKR_KEY_TYPE_INCONSISTENT',
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

/** Objects with the CKA_ID, of one class (or of any: every object of a version's key). */
function findKeys(l: pkcs11js.PKCS11, s: Buffer, ckaId: Buffer, max: number, cls?: number): Buffer[] {
  l.C_FindObjectsInit(s, [
    ...(cls === undefined ? [] : [{ type: pkcs11js.CKA_CLASS, value: cls }]),
    { type: pkcs11js.CKA_ID, value: ckaId },
  ]);
  try {
    return l.C_FindObjects(s, max);
  } finally {
    l.C_FindObjectsFinal(s);
  }
}

const CLASS_NAMES: Record<number, string> = {
  [pkcs11js.CKO_SECRET_KEY]: 'secret key',
  [pkcs11js.CKO_PRIVATE_KEY]: 'private key',
  [pkcs11js.CKO_PUBLIC_KEY]: 'public key',
};

/** Runs `fn` with the handle of the key object of class `cls`; a handle the token no longer knows is looked up again once. */
function withKey<T>(ckaId: Buffer, cls: number, fn: (l: pkcs11js.PKCS11, s: Buffer, key: Buffer) => T): T {
  return withSession((l, s) => {
    const id = ckaId.toString('hex');
    const cacheKey = `${cls}:${id}`;
    for (let attempt = 0; ; attempt++) {
      let key = keys.get(cacheKey);
      if (!key) {
        key = findKeys(l, s, ckaId, 1, cls)[0];
        if (!key) {
          throw new Fault('object', undefined, `no ${CLASS_NAMES[cls]} with CKA_ID ${id} in the token`);
        }
        keys.set(cacheKey, key);
      }
      try {
        return fn(l, s, key);
      } catch (err) {
        const code = codeOf(err);
        if (attempt > 0 || !code || !KEY_GONE.has(code)) throw err;
        keys.delete(cacheKey);
      }
    }
  });
}

/** PKCS#11 3.0 names pkcs11js does not define. */
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;

/** Attributes every private object of OpenEKM has: in the token, behind login, never readable or exportable. */
function sealed(ckaId: Buffer, label: string): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ID, value: ckaId },
    { type: pkcs11js.CKA_LABEL, value: label },
  ];
}

/** Only what the key is for is allowed; everything else is turned off explicitly. */
function uses(allowed: number[], all: number[]): pkcs11js.Template {
  return all.map((type) => ({ type, value: allowed.includes(type) }));
}

/** Every use a secret key object can have; `uses` turns on only the key's own. */
const SECRET_USES = [
  pkcs11js.CKA_ENCRYPT,
  pkcs11js.CKA_DECRYPT,
  pkcs11js.CKA_WRAP,
  pkcs11js.CKA_UNWRAP,
  pkcs11js.CKA_SIGN,
  pkcs11js.CKA_VERIFY,
  pkcs11js.CKA_DERIVE,
];

/**
 * Creates a secret key object from imported material (C_CreateObject): an AES key for encryption only, or a
 * generic secret for HMAC only, with the same sealing attributes as a generated key. The token copies the value;
 * the caller wipes its buffer.
 */
function importSecret(
  l: pkcs11js.PKCS11,
  s: Buffer,
  kind: TokenKeyKind & { type: 'aes' | 'hmac' },
  ckaId: Buffer,
  label: string,
  value: Buffer,
): void {
  const aes = kind.type === 'aes';
  l.C_CreateObject(s, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: aes ? pkcs11js.CKK_AES : pkcs11js.CKK_GENERIC_SECRET },
    { type: pkcs11js.CKA_VALUE, value },
    ...sealed(ckaId, label),
    ...uses(
      aes ? [pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT] : [pkcs11js.CKA_SIGN, pkcs11js.CKA_VERIFY],
      SECRET_USES,
    ),
  ]);
}

function generate(l: pkcs11js.PKCS11, s: Buffer, kind: TokenKeyKind, ckaId: Buffer, label: string): void {
  switch (kind.type) {
    case 'aes':
      l.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        ...sealed(ckaId, label),
        ...uses([pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT], SECRET_USES),
      ]);
      return;
    case 'hmac':
      l.C_GenerateKey(s, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
        { type: pkcs11js.CKA_VALUE_LEN, value: kind.bytes },
        ...sealed(ckaId, label),
        ...uses([pkcs11js.CKA_SIGN, pkcs11js.CKA_VERIFY], SECRET_USES),
      ]);
      return;
    case 'ec':
    case 'ed25519':
    case 'rsa': {
      const publicTemplate: pkcs11js.Template = [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: false },
        { type: pkcs11js.CKA_ID, value: ckaId },
        { type: pkcs11js.CKA_LABEL, value: label },
        ...uses([pkcs11js.CKA_VERIFY], [pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_WRAP, pkcs11js.CKA_VERIFY]),
      ];
      const privateTemplate: pkcs11js.Template = [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        ...sealed(ckaId, label),
        ...uses(
          [pkcs11js.CKA_SIGN],
          [pkcs11js.CKA_DECRYPT, pkcs11js.CKA_UNWRAP, pkcs11js.CKA_SIGN, pkcs11js.CKA_DERIVE],
        ),
      ];
      if (kind.type === 'ec') {
        l.C_GenerateKeyPair(
          s,
          { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
          [
            ...publicTemplate,
            { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
            { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from(CURVE_OIDS[kind.curve], 'hex') },
          ],
          [...privateTemplate, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC }],
        );
      } else if (kind.type === 'ed25519') {
        l.C_GenerateKeyPair(
          s,
          { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
          [
            ...publicTemplate,
            { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
            { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from(ED25519_OID, 'hex') },
          ],
          [...privateTemplate, { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS }],
        );
      } else {
        l.C_GenerateKeyPair(
          s,
          { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
          [
            ...publicTemplate,
            { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
            { type: pkcs11js.CKA_MODULUS_BITS, value: kind.bits },
            { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
          ],
          [...privateTemplate, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA }],
        );
      }
      return;
    }
  }
}

const HMAC: Record<string, number> = {
  'hmac-sha1': pkcs11js.CKM_SHA_1_HMAC,
  'hmac-sha224': pkcs11js.CKM_SHA224_HMAC,
  'hmac-sha256': pkcs11js.CKM_SHA256_HMAC,
  'hmac-sha384': pkcs11js.CKM_SHA384_HMAC,
  'hmac-sha512': pkcs11js.CKM_SHA512_HMAC,
};

function pss(hashAlg: number, mgf: number, saltLen: number): pkcs11js.Mechanism {
  const parameter: pkcs11js.RsaPSS = { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg, mgf, saltLen };
  return { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter };
}

/** The PKCS#11 mechanism and the class of the key object it runs with. */
function mechanismOf(m: TokenMechanism): { mechanism: pkcs11js.Mechanism; cls: number } {
  const hmac = HMAC[m];
  if (hmac !== undefined) return { mechanism: { mechanism: hmac }, cls: pkcs11js.CKO_SECRET_KEY };
  const priv = pkcs11js.CKO_PRIVATE_KEY;
  switch (m) {
    case 'ecdsa':
      return { mechanism: { mechanism: pkcs11js.CKM_ECDSA }, cls: priv };
    case 'eddsa':
      return { mechanism: { mechanism: CKM_EDDSA }, cls: priv };
    case 'rsa-pkcs':
      return { mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS }, cls: priv };
    case 'rsa-pss-sha256':
      return { mechanism: pss(pkcs11js.CKM_SHA256, pkcs11js.CKG_MGF1_SHA256, 32), cls: priv };
    case 'rsa-pss-sha512':
      return { mechanism: pss(pkcs11js.CKM_SHA512, pkcs11js.CKG_MGF1_SHA512, 64), cls: priv };
    default:
      throw new Fault('mechanism', undefined, `unknown mechanism ${m}`);
  }
}

/** The largest signature a mechanism makes (the output buffer): HMAC-SHA512 64 bytes, RSA-16384 2048 bytes. */
const MAX_SIGNATURE = 2048;

function attributesOf(l: pkcs11js.PKCS11, s: Buffer, key: Buffer, types: number[]): Buffer[] {
  return l
    .C_GetAttributeValue(
      s,
      key,
      types.map((type) => ({ type })),
    )
    .map((a) => {
      if (!Buffer.isBuffer(a.value))
        throw new Fault('other', undefined, `the token gave no attribute ${a.type}`);
      return a.value;
    });
}

function publicKeyOf(l: pkcs11js.PKCS11, s: Buffer, key: Buffer): TokenPublicKey {
  const [type] = attributesOf(l, s, key, [pkcs11js.CKA_KEY_TYPE]) as [Buffer];
  const keyType = type.readUInt32LE(0);
  if (keyType === pkcs11js.CKK_EC || keyType === CKK_EC_EDWARDS) {
    const [params, point] = attributesOf(l, s, key, [pkcs11js.CKA_EC_PARAMS, pkcs11js.CKA_EC_POINT]) as [
      Buffer,
      Buffer,
    ];
    return { type: keyType === pkcs11js.CKK_EC ? 'ec' : 'ed25519', params, point };
  }
  if (keyType === pkcs11js.CKK_RSA) {
    const [modulus, exponent] = attributesOf(l, s, key, [
      pkcs11js.CKA_MODULUS,
      pkcs11js.CKA_PUBLIC_EXPONENT,
    ]) as [Buffer, Buffer];
    return { type: 'rsa', modulus, exponent };
  }
  throw new Fault(
    'other',
    undefined,
    `the public key object has key type ${keyType}, neither EC, EdDSA nor RSA`,
  );
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
      withSession((l, s) => generate(l, s, req.kind, buf(req.ckaId), req.label));
      return { id: req.id, ok: true };
    }
    case 'import': {
      // The value arrived as this thread's own copy of the message: wiped here whatever the token answers.
      const value = buf(req.value);
      try {
        withSession((l, s) => importSecret(l, s, req.kind, buf(req.ckaId), req.label, value));
      } finally {
        value.fill(0);
      }
      return { id: req.id, ok: true };
    }
    case 'encrypt': {
      const data = buf(req.data);
      const out = withKey(buf(req.ckaId), pkcs11js.CKO_SECRET_KEY, (l, s, key) => {
        l.C_EncryptInit(s, gcm(buf(req.iv), buf(req.aad)), key);
        return l.C_Encrypt(s, data, Buffer.alloc(data.length + TAG_BYTES));
      });
      return { id: req.id, ok: true, data: out };
    }
    case 'decrypt': {
      const data = buf(req.data);
      const out = withKey(buf(req.ckaId), pkcs11js.CKO_SECRET_KEY, (l, s, key) => {
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
    case 'sign': {
      const { mechanism, cls } = mechanismOf(req.mechanism);
      const data = buf(req.data);
      const out = withKey(buf(req.ckaId), cls, (l, s, key) => {
        l.C_SignInit(s, mechanism, key);
        // Empty data (an HMAC of nothing) is one multi-part operation without parts: tokens refuse C_Sign of
        // zero bytes (a NULL pointer).
        if (data.length === 0) return l.C_SignFinal(s, Buffer.alloc(MAX_SIGNATURE));
        return l.C_Sign(s, data, Buffer.alloc(MAX_SIGNATURE));
      });
      return { id: req.id, ok: true, data: out };
    }
    case 'verify': {
      const { mechanism, cls } = mechanismOf(req.mechanism);
      const valid = withKey(buf(req.ckaId), cls, (l, s, key) => {
        l.C_VerifyInit(s, mechanism, key);
        const data = buf(req.data);
        try {
          if (data.length === 0) return l.C_VerifyFinal(s, buf(req.signature));
          return l.C_Verify(s, data, buf(req.signature));
        } catch (err) {
          const code = codeOf(err);
          if (code && BAD_SIGNATURE.has(code)) return false;
          throw err;
        }
      });
      return { id: req.id, ok: true, valid };
    }
    case 'publicKey': {
      const publicKey = withKey(buf(req.ckaId), pkcs11js.CKO_PUBLIC_KEY, publicKeyOf);
      return { id: req.id, ok: true, publicKey };
    }
    case 'random': {
      const out = withSession((l, s) => l.C_GenerateRandom(s, Buffer.alloc(req.length)));
      return { id: req.id, ok: true, data: out };
    }
    case 'destroy': {
      const ckaId = buf(req.ckaId);
      // Every object of the version's key: a secret key, or a key pair's private and public objects.
      const count = withSession((l, s) => {
        const found = findKeys(l, s, ckaId, 16);
        for (const h of found) l.C_DestroyObject(s, h);
        return found.length;
      });
      for (const cached of [...keys.keys()]) {
        if (cached.endsWith(`:${ckaId.toString('hex')}`)) keys.delete(cached);
      }
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
  if (code && NO_MECHANISM.has(code)) return { id, ok: false, fault: 'mechanism', code, message };
  return { id, ok: false, fault: 'other', code, message };
}

parentPort?.on('message', (req: TokenRequest) => {
  let reply: TokenReply;
  try {
    reply = run(req);
  } catch (err) {
    reply = failure(req.id, err);
    // A call the token refused may leave its operation active in the session (CKR_OPERATION_ACTIVE for every
    // later call): the next call starts on a fresh session.
    if (!(err instanceof Fault)) dropSession(codeOf(err));
  }
  parentPort?.postMessage(reply);
});
// The thread is up: from now on, calls are timed (thread start-up is not the token's time).
parentPort?.postMessage({ ready: true });
