import { createHash } from 'node:crypto';

/** The ciphertextMetadata this proxy returns: names the AAD construction below (version 1). */
export const CIPHERTEXT_METADATA = Buffer.from('oekm-aad-v1');

/**
 * The AES-GCM AAD the spec prescribes: u16be(len(aad)) ‖ aad ‖ u8(len(ciphertextMetadata)) ‖
 * ciphertextMetadata, absent fields having length 0 — a changed ciphertextMetadata fails decryption.
 */
export function gcmAad(aad: Buffer, ciphertextMetadata: Buffer): Buffer {
  const aadLength = Buffer.alloc(2);
  aadLength.writeUInt16BE(aad.length, 0);
  return Buffer.concat([aadLength, aad, Buffer.from([ciphertextMetadata.length]), ciphertextMetadata]);
}

/** CDIV = base64(SHA-256(aad ‖ ciphertextMetadata ‖ iv ‖ ciphertext ‖ tag)), no lengths. */
export function ciphertextDataIntegrityValue(parts: {
  aad: Buffer;
  ciphertextMetadata: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}): string {
  return createHash('sha256')
    .update(parts.aad)
    .update(parts.ciphertextMetadata)
    .update(parts.iv)
    .update(parts.ciphertext)
    .update(parts.tag)
    .digest('base64');
}
