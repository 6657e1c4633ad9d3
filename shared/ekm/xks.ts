/**
 * The AWS KMS XKS proxy API v1 (JSON over HTTPS, SigV4): `{prefix}{keyId}/encrypt` / `decrypt` / `metadata` and
 * the proxy's health call. Field names follow the specification verbatim. Request bodies and answer checks are
 * plain functions (unit-tested with recorded answers); the class adds the signature and the transport.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { SignatureV4 } from '@smithy/signature-v4';
import type { EkmEndpoint, ResolvedKey } from './endpoints.js';
import { type EkmDomain, EkmFailure } from './errors.js';
import { b64, type EkmCallContext, type EkmProtocol, failureOf, XKS_IDENTITY_REFUSALS } from './protocols.js';
import type { EkmHttpResponse, EkmTransport } from './transport.js';

/** XKS error names → domains (https://github.com/aws/aws-kms-xksproxy-api-spec, "Error codes"). */
const XKS_ERRORS: Record<string, EkmDomain> = {
  ValidationException: 'UNEXPECTED_ERROR',
  InvalidStateException: 'EXTERNAL_PERMISSION_DENIED',
  InvalidCiphertextException: 'DECRYPTION_FAILED',
  InvalidKeyUsageException: 'EXTERNAL_PERMISSION_DENIED',
  AuthenticationFailedException: 'EXTERNAL_PERMISSION_DENIED',
  AccessDeniedException: 'EXTERNAL_PERMISSION_DENIED',
  KeyNotFoundException: 'EXTERNAL_NOT_FOUND',
  InvalidUriPathException: 'EXTERNAL_NOT_FOUND',
  ThrottlingException: 'EXTERNAL_RESOURCE_EXHAUSTED',
  UnsupportedOperationException: 'EXTERNAL_NOT_IMPLEMENTED',
  DependencyTimeoutException: 'TIMEOUT',
  InternalException: 'EXTERNAL_SERVER_ERROR',
};

/**
 * The key-protection block for XKS: the proxy returns ciphertext, IV, tag and optional ciphertextMetadata
 * separately, so we frame them: 0x01 ‖ u8 ivLen ‖ iv ‖ tag (16) ‖ u8 metaLen ‖ metadata ‖ ciphertext.
 */
export function encodeXksBlock(iv: Buffer, tag: Buffer, meta: Buffer, ciphertext: Buffer): Buffer {
  return Buffer.concat([Buffer.from([1, iv.length]), iv, tag, Buffer.from([meta.length]), meta, ciphertext]);
}

export function decodeXksBlock(block: Buffer): { iv: Buffer; tag: Buffer; meta: Buffer; ciphertext: Buffer } {
  const fail = () => new EkmFailure('DECRYPTION_FAILED', 'the key-protection block is malformed');
  if (block.length < 2 || block[0] !== 1) throw fail();
  const ivLen = block[1]!;
  if (ivLen !== 12 && ivLen !== 16) throw fail();
  const iv = block.subarray(2, 2 + ivLen);
  const tag = block.subarray(2 + ivLen, 18 + ivLen);
  const metaAt = 18 + ivLen;
  if (block.length < metaAt + 1) throw fail();
  const metaLen = block[metaAt]!;
  if (metaLen > 20 || block.length < metaAt + 1 + metaLen + 1) throw fail();
  const meta = block.subarray(metaAt + 1, metaAt + 1 + metaLen);
  const o = metaAt + 1 + metaLen;
  return { iv, tag, meta, ciphertext: block.subarray(o) };
}

/** requestMetadata of encrypt and decrypt. */
function requestMetadata(ctx: EkmCallContext, kmsOperation: string) {
  return {
    awsPrincipalArn: ctx.principal,
    kmsOperation,
    kmsRequestId: ctx.requestId,
    kmsKeyArn: ctx.versionName,
  };
}

/** The EkmFailure of a failed XKS answer: by its errorName, else by HTTP status. */
function xksFailure(res: EkmHttpResponse, op: 'wrap' | 'unwrap' | 'check'): EkmFailure {
  const name = (res.body as { errorName?: unknown } | undefined)?.errorName;
  const known = typeof name === 'string' ? XKS_ERRORS[name] : undefined;
  const identityRefused = typeof name === 'string' && XKS_IDENTITY_REFUSALS.has(name);
  return failureOf(res, op, known, identityRefused);
}

/** The encrypt request body (asks for the ciphertext data integrity value). */
export function encryptRequest(plaintext: Buffer, ctx: EkmCallContext): string {
  return JSON.stringify({
    requestMetadata: requestMetadata(ctx, 'Encrypt'),
    plaintext: plaintext.toString('base64'),
    encryptionAlgorithm: 'AES_GCM',
    additionalAuthenticatedData: ctx.aad.toString('base64'),
    ciphertextDataIntegrityValueAlgorithm: 'SHA_256',
  });
}

/**
 * The key-protection block of an encrypt answer, after checking every field's size and the ciphertext data
 * integrity value; throws EkmFailure for a refusal or an unusable answer.
 */
export function encryptAnswer(res: EkmHttpResponse, plaintextLength: number, aad: Buffer): Buffer {
  if (res.status !== 200) throw xksFailure(res, 'wrap');
  const r = (res.body ?? {}) as Record<string, unknown>;
  const ciphertext = b64(r.ciphertext, 'ciphertext');
  const iv = b64(r.initializationVector, 'initializationVector');
  const tag = b64(r.authenticationTag, 'authenticationTag');
  const meta =
    r.ciphertextMetadata === undefined ? Buffer.alloc(0) : b64(r.ciphertextMetadata, 'ciphertextMetadata');
  const cdiv = b64(r.ciphertextDataIntegrityValue, 'ciphertextDataIntegrityValue');
  if (
    ciphertext.length !== plaintextLength ||
    (iv.length !== 12 && iv.length !== 16) ||
    tag.length !== 16 ||
    meta.length > 20
  ) {
    throw new EkmFailure('UNEXPECTED_RESPONSE', 'the XKS encrypt answer has fields of the wrong size');
  }
  // CDIV = SHA-256(aad ‖ ciphertextMetadata ‖ iv ‖ ciphertext ‖ tag): proves the proxy's answer arrived intact.
  const expected = createHash('sha256')
    .update(aad)
    .update(meta)
    .update(iv)
    .update(ciphertext)
    .update(tag)
    .digest();
  if (cdiv.length !== expected.length || !timingSafeEqual(cdiv, expected)) {
    throw new EkmFailure('UNEXPECTED_RESPONSE', 'the XKS ciphertextDataIntegrityValue does not match');
  }
  return encodeXksBlock(iv, tag, meta, ciphertext);
}

/** The decrypt request body for a key-protection block (EkmFailure DECRYPTION_FAILED when it is malformed). */
export function decryptRequest(block: Buffer, ctx: EkmCallContext): string {
  const { iv, tag, meta, ciphertext } = decodeXksBlock(block);
  const body: Record<string, unknown> = {
    requestMetadata: requestMetadata(ctx, 'Decrypt'),
    ciphertext: ciphertext.toString('base64'),
    initializationVector: iv.toString('base64'),
    authenticationTag: tag.toString('base64'),
    encryptionAlgorithm: 'AES_GCM',
    additionalAuthenticatedData: ctx.aad.toString('base64'),
  };
  if (meta.length > 0) body.ciphertextMetadata = meta.toString('base64');
  return JSON.stringify(body);
}

/** The plaintext of a decrypt answer; throws EkmFailure for a refusal or an unusable answer. */
export function decryptAnswer(res: EkmHttpResponse): Buffer {
  if (res.status !== 200) throw xksFailure(res, 'unwrap');
  return b64((res.body as { plaintext?: unknown } | undefined)?.plaintext, 'plaintext');
}

/** Checks a metadata answer: an ENABLED AES_256 key usable for ENCRYPT and DECRYPT. */
export function metadataAnswer(res: EkmHttpResponse): void {
  if (res.status !== 200) throw xksFailure(res, 'check');
  const m = (res.body ?? {}) as { keySpec?: unknown; keyUsage?: unknown; keyStatus?: unknown };
  if (m.keySpec !== 'AES_256' || !Array.isArray(m.keyUsage)) {
    throw new EkmFailure('UNEXPECTED_RESPONSE', 'the XKS metadata answer is not an AES_256 key description');
  }
  if (!m.keyUsage.includes('ENCRYPT') || !m.keyUsage.includes('DECRYPT')) {
    throw new EkmFailure('EXTERNAL_PERMISSION_DENIED', 'the XKS key does not allow both ENCRYPT and DECRYPT');
  }
  if (m.keyStatus !== 'ENABLED')
    throw new EkmFailure('EXTERNAL_PERMISSION_DENIED', `the XKS key is ${String(m.keyStatus)}`);
}

/**
 * The SigV4 signer's modules, loaded on the first XKS call rather than at start (cold start). Its SHA-256 /
 * HMAC-SHA-256 is smithy's node:crypto hash (the pure-JS one costs more CPU).
 */
let sigv4:
  | Promise<{ SignatureV4: typeof SignatureV4; Sha256: new (secret?: unknown) => unknown }>
  | undefined;
function loadSigV4() {
  sigv4 ??= Promise.all([import('@smithy/signature-v4'), import('@smithy/core/serde')]).then(
    ([s, serde]) => ({
      SignatureV4: s.SignatureV4,
      Sha256: serde.Hash.bind(null, 'sha256') as unknown as new (secret?: unknown) => unknown,
    }),
  );
  return sigv4;
}

export class XksProtocol implements EkmProtocol {
  private readonly signers = new Map<string, SignatureV4>();

  constructor(private readonly transport: EkmTransport) {}

  private async signer(endpoint: EkmEndpoint): Promise<SignatureV4> {
    let s = this.signers.get(endpoint.prefix);
    if (!s) {
      if (endpoint.auth.type !== 'sigv4')
        throw new EkmFailure('UNEXPECTED_ERROR', 'XKS endpoint without SigV4 credentials');
      const { SignatureV4, Sha256 } = await loadSigV4();
      s = new SignatureV4({
        service: 'kms-xks-proxy',
        region: endpoint.region,
        credentials: {
          accessKeyId: endpoint.auth.accessKeyId,
          secretAccessKey: endpoint.auth.secretAccessKey,
        },
        sha256: Sha256 as never,
      });
      this.signers.set(endpoint.prefix, s);
    }
    return s;
  }

  private async post(
    key: ResolvedKey,
    op: 'encrypt' | 'decrypt' | 'metadata' | 'health',
    payload: string,
    signal: AbortSignal,
  ): Promise<EkmHttpResponse> {
    const url = new URL(`${key.keyUri}/${op}`);
    const signed = await (await this.signer(key.endpoint)).sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      headers: { host: url.host, 'content-type': 'application/json' },
      body: payload,
    });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k !== 'host') headers[k] = String(v);
    return this.transport.send(key.endpoint, url.href, { method: 'POST', headers, body: payload }, signal);
  }

  async wrap(key: ResolvedKey, plaintext: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    const res = await this.post(key, 'encrypt', encryptRequest(plaintext, ctx), signal);
    return encryptAnswer(res, plaintext.length, ctx.aad);
  }

  async unwrap(key: ResolvedKey, blob: Buffer, ctx: EkmCallContext, signal: AbortSignal): Promise<Buffer> {
    const body = decryptRequest(blob, ctx);
    return decryptAnswer(await this.post(key, 'decrypt', body, signal));
  }

  /** The XKS health call (`POST {uriPrefix}/kms/xks/v1/health`). */
  async health(endpoint: EkmEndpoint, requestId: string, signal: AbortSignal): Promise<void> {
    const key: ResolvedKey = { endpoint, keyUri: endpoint.prefix.replace(/\/keys\/$/, ''), keyPath: '' };
    const res = await this.post(
      key,
      'health',
      JSON.stringify({ requestMetadata: { kmsOperation: 'KmsHealthCheck', kmsRequestId: requestId } }),
      signal,
    );
    if (res.status !== 200) throw xksFailure(res, 'check');
  }

  /** XKS metadata: the key must be an ENABLED AES_256 key usable for ENCRYPT and DECRYPT. */
  async checkKey(key: ResolvedKey, ctx: EkmCallContext, signal: AbortSignal): Promise<void> {
    const body = JSON.stringify({
      requestMetadata: {
        awsPrincipalArn: ctx.principal,
        kmsOperation: 'CreateKey',
        kmsRequestId: ctx.requestId,
      },
    });
    metadataAnswer(await this.post(key, 'metadata', body, signal));
  }
}
