import type { z } from 'zod';
import { decodeStdBase64 } from '../b64.js';
import type { KeyService } from '../core/key-service.js';
import type { RateLimiter } from '../core/rate-limit.js';
import type { RequestContext } from '../http/types.js';
import type { Logger } from '../log.js';
import { XksError } from './errors.js';
import type { HealthCache } from './health.js';

export interface XksDeps {
  keys: KeyService;
  limiter: RateLimiter;
  health: HealthCache;
  log: Logger;
  now: () => Date;
  /** The region this proxy serves: the SigV4 credential scope must name it. */
  region: string;
}

/** Sizes this proxy supports; the spec's minimums are 4300 bytes of plaintext and 8192 bytes of AAD. */
export const MAX_PLAINTEXT_BYTES = 64 * 1024;
export const MAX_AAD_BYTES = 65_535;
export const MAX_CIPHERTEXT_METADATA_BYTES = 20;

export function parseXksMessage<T extends z.ZodType>(schema: T, ctx: RequestContext): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(ctx.body.toString('utf8'));
  } catch {
    throw new XksError('ValidationException', 'the request body is not JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'body';
    throw new XksError('ValidationException', `invalid or missing ${where}`);
  }
  const data = parsed.data as {
    requestMetadata?: {
      kmsRequestId?: string;
      kmsOperation?: string;
      awsPrincipalArn?: string;
      kmsKeyArn?: string;
    };
  };
  ctx.fields.kmsRequestId = data.requestMetadata?.kmsRequestId?.slice(0, 128);
  ctx.fields.kmsOperation = data.requestMetadata?.kmsOperation?.slice(0, 64);
  if (data.requestMetadata?.awsPrincipalArn)
    ctx.fields.awsPrincipalArn = data.requestMetadata.awsPrincipalArn.slice(0, 256);
  if (data.requestMetadata?.kmsKeyArn) ctx.fields.kmsKeyArn = data.requestMetadata.kmsKeyArn.slice(0, 300);
  return parsed.data;
}

/** Decodes a standard-base64 field; `limit` over → UnsupportedOperationException (a size this proxy lacks). */
export function base64Field(name: string, value: string | undefined, limit: number): Buffer {
  if (value === undefined) return Buffer.alloc(0);
  const bytes = decodeStdBase64(value);
  if (!bytes) throw new XksError('ValidationException', `${name} is not valid base64`);
  if (bytes.length > limit)
    throw new XksError('UnsupportedOperationException', `${name} is longer than ${limit} bytes`);
  return bytes;
}
