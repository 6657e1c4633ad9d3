/** CRC32C (Castagnoli) as Cloud KMS uses it: decimal strings of an unsigned 32-bit value on the wire. */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

export function crc32c(data: Uint8Array): number {
  return (
    nativeCrc32c(
      Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    ) >>> 0
  );
}

export function crc32cString(data: Uint8Array): string {
  return String(crc32c(data));
}
