import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { HttpRequest, QueryParameterBag } from '@smithy/types';

export const XKS_SERVICE = 'kms-xks-proxy';
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface ParsedAuthorization {
  accessKeyId: string;
  scopeDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

/** What a SigV4 check needs from an HTTP request. Header names lower-case, as node delivers them. */
export interface SignedHttpRequest {
  method: string;
  path: string;
  query: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Why verification failed; safe to return (it names no secret). */
export class SigV4Error extends Error {
  override name = 'SigV4Error';
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request\s*,\s*SignedHeaders=([a-z0-9;._-]+)\s*,\s*Signature=([0-9a-f]{64})\s*$/;

export function parseAuthorization(header: string | undefined): ParsedAuthorization | undefined {
  const match = AUTHORIZATION.exec(header ?? '');
  if (!match) return undefined;
  const [, accessKeyId, scopeDate, region, service, signedHeaders, signature] = match as unknown as string[];
  return {
    accessKeyId: accessKeyId!,
    scopeDate: scopeDate!,
    region: region!,
    service: service!,
    signedHeaders: signedHeaders!.split(';'),
    signature: signature!,
  };
}

/** 20150830T123600Z → Date, or undefined. */
export function parseAmzDate(value: string | undefined): Date | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  const date = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * Recomputes the request's SigV4 signature with @smithy/signature-v4 from exactly the headers listed
 * in SignedHeaders, the body's SHA-256, the path and the query, at the X-Amz-Date of the request.
 */
export async function computeSignature(
  request: SignedHttpRequest,
  auth: ParsedAuthorization,
  secretAccessKey: string,
  signingDate: Date,
): Promise<string> {
  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = request.headers[name];
    if (value === undefined) throw new SigV4Error(`signed header ${name} is missing from the request`);
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const query: QueryParameterBag = {};
  for (const [name, value] of new URLSearchParams(request.query)) {
    const existing = query[name];
    query[name] =
      existing === undefined
        ? value
        : Array.isArray(existing)
          ? [...existing, value]
          : [existing as string, value];
  }
  const httpRequest: HttpRequest = {
    method: request.method,
    protocol: 'https:',
    hostname: headers.host ?? 'localhost',
    path: request.path,
    query,
    headers,
    body: request.body,
  };
  const signer = new SignatureV4({
    service: auth.service,
    region: auth.region,
    credentials: { accessKeyId: auth.accessKeyId, secretAccessKey },
    sha256: Sha256,
    applyChecksum: false,
    uriEscapePath: true,
  });
  const signed = await signer.sign(httpRequest, {
    signingDate,
    signableHeaders: new Set(auth.signedHeaders),
  });
  const header = String(signed.headers.authorization ?? '');
  const signature = /Signature=([0-9a-f]{64})/.exec(header)?.[1];
  if (!signature) throw new SigV4Error('could not compute the signature');
  return signature;
}

/**
 * Verifies a request signed for `service`: well-formed Authorization, known access key, scope date =
 * X-Amz-Date's date, scope region = the proxy's region (when given), clock skew within 5 minutes, host and x-amz-date signed, any signed
 * x-amz-content-sha256 equal to the body's hash, and the signature itself (compared in constant time).
 * Returns the access key id.
 */
export async function verifySigV4(
  request: SignedHttpRequest,
  secretFor: (accessKeyId: string) => string | undefined,
  options: { service: string; region?: string; now: Date; maxSkewMs?: number },
): Promise<ParsedAuthorization> {
  const auth = parseAuthorization(singleHeader(request.headers.authorization));
  if (!auth) throw new SigV4Error('the Authorization header is not an AWS4-HMAC-SHA256 signature');
  if (auth.service !== options.service)
    throw new SigV4Error(`the credential scope service must be ${options.service}`);
  if (options.region !== undefined && auth.region !== options.region)
    throw new SigV4Error(
      `the credential scope region must be ${options.region}, the region this proxy serves`,
    );
  for (const required of ['host', 'x-amz-date']) {
    if (!auth.signedHeaders.includes(required)) throw new SigV4Error(`the ${required} header must be signed`);
  }
  const signingDate = parseAmzDate(singleHeader(request.headers['x-amz-date']));
  if (!signingDate) throw new SigV4Error('X-Amz-Date is missing or malformed');
  if (Math.abs(options.now.getTime() - signingDate.getTime()) > (options.maxSkewMs ?? MAX_CLOCK_SKEW_MS)) {
    throw new SigV4Error('the request time differs from the server time by more than 5 minutes');
  }
  if (singleHeader(request.headers['x-amz-date'])!.slice(0, 8) !== auth.scopeDate) {
    throw new SigV4Error('the credential scope date does not match X-Amz-Date');
  }
  const declaredHash = singleHeader(request.headers['x-amz-content-sha256']);
  if (declaredHash !== undefined && auth.signedHeaders.includes('x-amz-content-sha256')) {
    const actual = createHash('sha256').update(request.body).digest('hex');
    if (declaredHash !== actual) throw new SigV4Error('x-amz-content-sha256 does not match the body');
  }
  const secret = secretFor(auth.accessKeyId);
  if (secret === undefined) throw new SigV4Error('the access key id is not known for this URI path prefix');
  const expected = await computeSignature(request, auth, secret, signingDate);
  if (!timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(auth.signature, 'hex'))) {
    throw new SigV4Error('the request signature does not match');
  }
  return auth;
}

function singleHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
