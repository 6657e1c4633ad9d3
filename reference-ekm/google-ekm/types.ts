import { z } from 'zod';

/**
 * Messages of the Google EKM API v0 (proto package google.cloud.ekms.v0) in proto3 JSON, field names
 * verbatim. Bytes are base64 strings (either alphabet, checked by the handlers); enums arrive as names
 * or numbers; unknown fields are ignored, as proto3 JSON parsers in lenient mode do.
 */

const reason = z.union([z.string(), z.number()]);

export const AccessReasonContext = z.looseObject({ reason: reason.optional() });

export const RequestContext = z.looseObject({
  fullResourceName: z.string().optional(),
  relativeResourceName: z.string().optional(),
  accessReasonContext: AccessReasonContext.optional(),
  isKeyHealthCheck: z.boolean().optional(),
});
export type RequestContext = z.infer<typeof RequestContext>;

export const WrapRequest = z.looseObject({
  keyPath: z.string().optional(),
  plaintext: z.string(),
  additionalContext: RequestContext.optional(),
  additionalAuthenticatedData: z.string().optional(),
  keyUriPrefix: z.string().optional(),
});
export type WrapRequest = z.infer<typeof WrapRequest>;
export interface WrapResponse {
  wrappedBlob: string;
}

export const UnwrapRequest = z.looseObject({
  keyPath: z.string().optional(),
  wrappedBlob: z.string(),
  additionalContext: RequestContext.optional(),
  additionalAuthenticatedData: z.string().optional(),
  keyUriPrefix: z.string().optional(),
});
export type UnwrapRequest = z.infer<typeof UnwrapRequest>;
/** allowedCacheDuration is never set: the KMS must not cache external key results. */
export interface UnwrapResponse {
  plaintext: string;
}

/** Control plane for coordinated keys (CLOUD_KMS key management mode). These shapes are OpenEKM's design. */
export const CreateKeyRequest = z.looseObject({
  /** Optional id for the new key ([A-Za-z0-9._-]{1,128}); the EKM picks one when absent. */
  keyId: z.string().optional(),
  /** Usages in the XKS vocabulary; default ["ENCRYPT","DECRYPT"]. */
  keyUsage: z.array(z.string()).optional(),
  /** relativeResourceName = the CryptoKeyVersion the key is for; it makes createKey idempotent. */
  additionalContext: RequestContext.optional(),
});
export type CreateKeyRequest = z.infer<typeof CreateKeyRequest>;
export interface CreateKeyResponse {
  keyPath: string;
  keyUri: string;
  createTime: string;
}

export const DestroyKeyRequest = z.looseObject({ additionalContext: RequestContext.optional() });
export interface DestroyKeyResponse {
  keyPath: string;
  destroyTime: string;
}

export const CheckCryptoSpacePermissionsRequest = z.looseObject({
  additionalContext: RequestContext.optional(),
});
export interface CheckCryptoSpacePermissionsResponse {
  cryptoSpacePath: string;
  principal: string;
  permissions: string[];
}

export interface GetInfoResponse {
  vendor: string;
  product: string;
  productVersion: string;
  apiVersions: string[];
  keyStore: string;
  serverTime: string;
}
