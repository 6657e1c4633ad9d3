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

export type TokenRequest =
  | { id: number; op: 'generate'; ckaId: Uint8Array; label: string }
  | {
      id: number;
      op: 'encrypt' | 'decrypt';
      ckaId: Uint8Array;
      iv: Uint8Array;
      aad: Uint8Array;
      data: Uint8Array;
    }
  | { id: number; op: 'destroy'; ckaId: Uint8Array };

/**
 * Why a call failed, as far as the token thread can tell:
 *   load    the PKCS#11 library could not be loaded or initialised
 *   token   no token with the configured label or slot is present
 *   login   the token refused the user PIN
 *   object  no key with the given CKA_ID is in the token
 *   tag     GCM authentication failed (a tampered or foreign ciphertext)
 *   device  the token, its session or the connection to it failed (also after one re-established session)
 *   other   anything else (a bug, an unsupported mechanism)
 */
export type TokenFault = 'load' | 'token' | 'login' | 'object' | 'tag' | 'device' | 'other';

export type TokenReply =
  | { id: number; ok: true; data?: Uint8Array; count?: number }
  | { id: number; ok: false; fault: TokenFault; code?: string; message: string };
