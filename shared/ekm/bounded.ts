/**
 * Bounds on what an external key manager may send back. Every partner answer OpenEKM uses is at most a few
 * kilobytes (OpenEKM wraps 32-byte data keys, so a wrapped blob, an unwrapped key, a key description or a
 * google.rpc status is small); anything larger than 64 KiB is refused while it is read, before it is buffered
 * whole, so a broken or hostile EKM cannot exhaust the gateway's memory.
 */
import { EkmFailure } from './errors.js';

/** The largest EKM answer body read, in bytes. */
const MAX_EKM_RESPONSE_BYTES = 64 * 1024;

/**
 * The body as text, read chunk by chunk; more than `limit` bytes (declared in Content-Length or received) stops
 * the read and fails with UNEXPECTED_RESPONSE.
 */
export async function readBoundedText(
  body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => unknown },
  contentLength: string | string[] | undefined,
  limit = MAX_EKM_RESPONSE_BYTES,
): Promise<string> {
  const tooLarge = () =>
    new EkmFailure('UNEXPECTED_RESPONSE', `the EKM answer is larger than ${limit} bytes`);
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  if (Number.isFinite(declared) && declared > limit) {
    body.destroy?.();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > limit) {
      body.destroy?.();
      throw tooLarge();
    }
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
