import { GCM_IV_BYTES, GCM_TAG_BYTES, type GcmSealed } from '../keystore/key-store.js';

/**
 * The wrappedBlob this EKM returns: version byte 0x01 ‖ IV (12) ‖ tag (16) ‖ ciphertext.
 * AES-256-GCM's AAD binds the key id and the request's additionalAuthenticatedData with their lengths,
 * so a blob unwraps only under the key and the AAD it was wrapped with.
 */
const VERSION = 0x01;
const HEADER = 1 + GCM_IV_BYTES + GCM_TAG_BYTES;

export function wrapAad(keyId: string, aad: Buffer): Buffer {
  const id = Buffer.from(keyId);
  const lengths = Buffer.alloc(6);
  lengths.writeUInt16BE(id.length, 0);
  lengths.writeUInt32BE(aad.length, 2);
  return Buffer.concat([Buffer.from('openekm google-ekm wrap v1\0'), lengths, id, aad]);
}

export function encodeWrappedBlob(sealed: GcmSealed): Buffer {
  return Buffer.concat([Buffer.from([VERSION]), sealed.iv, sealed.tag, sealed.ciphertext]);
}

export function decodeWrappedBlob(blob: Buffer): GcmSealed | undefined {
  if (blob.length < HEADER || blob[0] !== VERSION) return undefined;
  return {
    iv: blob.subarray(1, 1 + GCM_IV_BYTES),
    tag: blob.subarray(1 + GCM_IV_BYTES, HEADER),
    ciphertext: blob.subarray(HEADER),
  };
}
