import { z } from 'zod';

/** AWS XKS proxy API v1 messages, field names verbatim from the specification. */

const nonEmpty = z.string().min(1);

/** GetHealthStatus carries only kmsRequestId and kmsOperation. */
export const HealthRequestMetadata = z.looseObject({
  kmsRequestId: nonEmpty,
  kmsOperation: nonEmpty,
});

export const RequestMetadata = z.looseObject({
  awsPrincipalArn: nonEmpty,
  kmsOperation: nonEmpty,
  kmsRequestId: nonEmpty,
  kmsKeyArn: z.string().optional(),
  awsSourceVpc: z.string().optional(),
  awsSourceVpce: z.string().optional(),
  kmsViaService: z.string().optional(),
});
export type RequestMetadata = z.infer<typeof RequestMetadata>;

/** Encrypt and decrypt also require kmsKeyArn. */
export const CryptoRequestMetadata = RequestMetadata.extend({ kmsKeyArn: nonEmpty });

export const GetHealthStatusRequest = z.looseObject({ requestMetadata: HealthRequestMetadata });
export interface GetHealthStatusResponse {
  xksProxyFleetSize: number;
  xksProxyVendor: string;
  xksProxyModel: string;
  ekmVendor: string;
  ekmFleetDetails: Array<{ id: string; model: string; healthStatus: 'ACTIVE' | 'DEGRADED' | 'UNAVAILABLE' }>;
}

export const GetKeyMetadataRequest = z.looseObject({ requestMetadata: RequestMetadata });
export interface GetKeyMetadataResponse {
  keySpec: 'AES_256';
  keyUsage: string[];
  keyStatus: 'ENABLED' | 'DISABLED';
}

export const EncryptRequest = z.looseObject({
  requestMetadata: CryptoRequestMetadata,
  plaintext: z.string(),
  encryptionAlgorithm: z.literal('AES_GCM'),
  additionalAuthenticatedData: z.string().optional(),
  ciphertextDataIntegrityValueAlgorithm: z.literal('SHA_256').optional(),
});
export interface EncryptResponse {
  ciphertext: string;
  ciphertextMetadata?: string;
  initializationVector: string;
  authenticationTag: string;
  ciphertextDataIntegrityValue?: string;
}

export const DecryptRequest = z.looseObject({
  requestMetadata: CryptoRequestMetadata,
  ciphertext: z.string(),
  ciphertextMetadata: z.string().optional(),
  encryptionAlgorithm: z.literal('AES_GCM'),
  additionalAuthenticatedData: z.string().optional(),
  initializationVector: z.string(),
  authenticationTag: z.string(),
});
export interface DecryptResponse {
  plaintext: string;
}
