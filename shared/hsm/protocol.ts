/**
 * The messages between the HSM client (shared/hsm/hsm.ts, on the request thread) and its token threads
 * (shared/hsm/worker.ts). Each token thread owns one PKCS#11 session; every call is one request and one reply.
 */

/** What a token thread needs to open its session. The PIN travels in memory only. */
export interface TokenThreadConfig {
  modulePath: string;
  tokenLabel?: string;
  slotId?: number;
  pin: string;
}

/** The kind of key a version's token object(s) are, chosen by the version's algorithm (operations/hsm-keys.ts). */
export type TokenKeyKind =
  | { type: 'aes' }
  /** A generic secret for HMAC, `bytes` long. */
  | { type: 'hmac'; bytes: number }
  | { type: 'ec'; curve: EcCurve }
  | { type: 'ed25519' }
  | { type: 'rsa'; bits: number };

export type EcCurve = 'P-256' | 'P-384' | 'secp256k1';

/** DER OBJECT IDENTIFIERs of the named curves, as CKA_EC_PARAMS holds them. */
export const CURVE_OIDS: Record<EcCurve, string> = {
  'P-256': '06082a8648ce3d030107',
  'P-384': '06052b81040022',
  secp256k1: '06052b8104000a',
};

/** id-Ed25519 (RFC 8410), the CKA_EC_PARAMS of an Ed25519 key (PKCS#11 3.0 CKK_EC_EDWARDS). */
export const ED25519_OID = '06032b6570';

/**
 * A signing mechanism run in the token:
 *   hmac-*     CKM_SHA*_HMAC with a generic secret key (sign and verify)
 *   ecdsa      CKM_ECDSA over a digest; the token answers r ‖ s
 *   eddsa      CKM_EDDSA (pure Ed25519) over the message
 *   rsa-pkcs   CKM_RSA_PKCS (PKCS#1 v1.5 type-1 padding) over the given bytes (a DigestInfo, or raw data)
 *   rsa-pss-*  CKM_RSA_PKCS_PSS over a digest of that hash, MGF1 with the same hash, salt = digest length
 */
export type TokenMechanism =
  | 'hmac-sha1'
  | 'hmac-sha224'
  | 'hmac-sha256'
  | 'hmac-sha384'
  | 'hmac-sha512'
  | 'ecdsa'
  | 'eddsa'
  | 'rsa-pkcs'
  | 'rsa-pss-sha256'
  | 'rsa-pss-sha512';

/**
 * The public half of a key pair as the token holds it: CKA_EC_PARAMS and CKA_EC_POINT (also of an Ed25519 key), or
 * the modulus and exponent.
 */
export type TokenPublicKey =
  | { type: 'ec' | 'ed25519'; params: Uint8Array; point: Uint8Array }
  | { type: 'rsa'; modulus: Uint8Array; exponent: Uint8Array };

export type TokenRequest =
  | { id: number; op: 'generate'; ckaId: Uint8Array; label: string; kind: TokenKeyKind }
  /** Puts imported secret key material into the token (C_CreateObject); only 'aes' and 'hmac' kinds. */
  | {
      id: number;
      op: 'import';
      ckaId: Uint8Array;
      label: string;
      kind: TokenKeyKind & { type: 'aes' | 'hmac' };
      value: Uint8Array;
    }
  | {
      id: number;
      op: 'encrypt' | 'decrypt';
      ckaId: Uint8Array;
      iv: Uint8Array;
      aad: Uint8Array;
      data: Uint8Array;
    }
  | { id: number; op: 'sign'; ckaId: Uint8Array; mechanism: TokenMechanism; data: Uint8Array }
  | {
      id: number;
      op: 'verify';
      ckaId: Uint8Array;
      mechanism: TokenMechanism;
      data: Uint8Array;
      signature: Uint8Array;
    }
  | { id: number; op: 'publicKey'; ckaId: Uint8Array }
  | { id: number; op: 'random'; length: number }
  | { id: number; op: 'destroy'; ckaId: Uint8Array };

/**
 * Why a call failed, as far as the token thread can tell:
 *   load       the PKCS#11 library could not be loaded or initialised
 *   token      no token with the configured label or slot is present
 *   login      the token refused the user PIN
 *   object     no key with the given CKA_ID is in the token
 *   tag        GCM authentication failed (a tampered or foreign ciphertext)
 *   mechanism  the token does not offer the mechanism (or key size) the call needs
 *   device     the token, its session or the connection to it failed (also after one re-established session)
 *   other      anything else (a bug)
 */
export type TokenFault = 'load' | 'token' | 'login' | 'object' | 'tag' | 'mechanism' | 'device' | 'other';

export type TokenReply =
  | {
      id: number;
      ok: true;
      data?: Uint8Array;
      count?: number;
      /** verify: whether the signature matched. */
      valid?: boolean;
      publicKey?: TokenPublicKey;
    }
  | { id: number; ok: false; fault: TokenFault; code?: string; message: string };
