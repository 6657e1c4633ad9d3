/**
 * The key algorithms of Cloud KMS that OpenEKM implements at protection level SOFTWARE, with what each one needs:
 * its purpose, how its material is generated, and the parameters of its operation. All the cryptography is
 * node:crypto (OpenSSL); two operations Node does not expose are completed with well-kept libraries:
 * signing a caller's pre-computed digest with ECDSA (@noble/curves) and the EMSA-PSS encoding of a pre-computed
 * digest (node-forge), whose RSA private-key operation is still node:crypto's.
 *
 * Material, as sealed under the root key (shared/crypto/material.ts):
 *   - symmetric (AES, HMAC): the raw key bytes;
 *   - asymmetric (RSA, EC, Ed25519): the private key as PKCS#8 DER.
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  type KeyObject,
  sign as nodeSign,
  privateEncrypt,
  randomBytes,
} from 'node:crypto';
import { promisify } from 'node:util';
import { p256, p384 } from '@noble/curves/nist';
import { secp256k1 } from '@noble/curves/secp256k1';
import forge from 'node-forge';
import type { AlgorithmName, CryptoKeyPurposeName } from '../resources/types.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export type Hash = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

export const HASH_BYTES: Record<Hash, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

export type Spec =
  | { purpose: 'ENCRYPT_DECRYPT'; kind: 'symmetric' }
  | { purpose: 'ASYMMETRIC_SIGN'; kind: 'ec'; curve: 'P-256' | 'P-384' | 'secp256k1'; hash: Hash }
  | { purpose: 'ASYMMETRIC_SIGN'; kind: 'ed25519' }
  | { purpose: 'ASYMMETRIC_SIGN'; kind: 'rsa-pss' | 'rsa-pkcs1'; bits: number; hash: Hash }
  | { purpose: 'ASYMMETRIC_SIGN'; kind: 'rsa-raw-pkcs1'; bits: number }
  | { purpose: 'ASYMMETRIC_DECRYPT'; kind: 'rsa-oaep'; bits: number; hash: Hash }
  | { purpose: 'MAC'; kind: 'hmac'; hash: Hash }
  | { purpose: 'RAW_ENCRYPT_DECRYPT'; kind: 'aes'; mode: 'gcm' | 'cbc' | 'ctr'; bytes: 16 | 32 };

const pss = (bits: number, hash: Hash): Spec => ({ purpose: 'ASYMMETRIC_SIGN', kind: 'rsa-pss', bits, hash });
const pkcs1 = (bits: number, hash: Hash): Spec => ({
  purpose: 'ASYMMETRIC_SIGN',
  kind: 'rsa-pkcs1',
  bits,
  hash,
});
const raw = (bits: number): Spec => ({ purpose: 'ASYMMETRIC_SIGN', kind: 'rsa-raw-pkcs1', bits });
const oaep = (bits: number, hash: Hash): Spec => ({
  purpose: 'ASYMMETRIC_DECRYPT',
  kind: 'rsa-oaep',
  bits,
  hash,
});
const hmac = (hash: Hash): Spec => ({ purpose: 'MAC', kind: 'hmac', hash });
const aes = (mode: 'gcm' | 'cbc' | 'ctr', bytes: 16 | 32): Spec => ({
  purpose: 'RAW_ENCRYPT_DECRYPT',
  kind: 'aes',
  mode,
  bytes,
});

/** Every algorithm OpenEKM implements for SOFTWARE keys (GOOGLE_SYMMETRIC_ENCRYPTION is crypto/ciphertext.ts). */
export const SPECS: Partial<Record<AlgorithmName, Spec>> = {
  GOOGLE_SYMMETRIC_ENCRYPTION: { purpose: 'ENCRYPT_DECRYPT', kind: 'symmetric' },
  EC_SIGN_P256_SHA256: { purpose: 'ASYMMETRIC_SIGN', kind: 'ec', curve: 'P-256', hash: 'sha256' },
  EC_SIGN_P384_SHA384: { purpose: 'ASYMMETRIC_SIGN', kind: 'ec', curve: 'P-384', hash: 'sha384' },
  EC_SIGN_SECP256K1_SHA256: { purpose: 'ASYMMETRIC_SIGN', kind: 'ec', curve: 'secp256k1', hash: 'sha256' },
  EC_SIGN_ED25519: { purpose: 'ASYMMETRIC_SIGN', kind: 'ed25519' },
  RSA_SIGN_PSS_2048_SHA256: pss(2048, 'sha256'),
  RSA_SIGN_PSS_3072_SHA256: pss(3072, 'sha256'),
  RSA_SIGN_PSS_4096_SHA256: pss(4096, 'sha256'),
  RSA_SIGN_PSS_4096_SHA512: pss(4096, 'sha512'),
  RSA_SIGN_PKCS1_2048_SHA256: pkcs1(2048, 'sha256'),
  RSA_SIGN_PKCS1_3072_SHA256: pkcs1(3072, 'sha256'),
  RSA_SIGN_PKCS1_4096_SHA256: pkcs1(4096, 'sha256'),
  RSA_SIGN_PKCS1_4096_SHA512: pkcs1(4096, 'sha512'),
  RSA_SIGN_RAW_PKCS1_2048: raw(2048),
  RSA_SIGN_RAW_PKCS1_3072: raw(3072),
  RSA_SIGN_RAW_PKCS1_4096: raw(4096),
  RSA_DECRYPT_OAEP_2048_SHA256: oaep(2048, 'sha256'),
  RSA_DECRYPT_OAEP_3072_SHA256: oaep(3072, 'sha256'),
  RSA_DECRYPT_OAEP_4096_SHA256: oaep(4096, 'sha256'),
  RSA_DECRYPT_OAEP_4096_SHA512: oaep(4096, 'sha512'),
  RSA_DECRYPT_OAEP_2048_SHA1: oaep(2048, 'sha1'),
  RSA_DECRYPT_OAEP_3072_SHA1: oaep(3072, 'sha1'),
  RSA_DECRYPT_OAEP_4096_SHA1: oaep(4096, 'sha1'),
  HMAC_SHA1: hmac('sha1'),
  HMAC_SHA224: hmac('sha224'),
  HMAC_SHA256: hmac('sha256'),
  HMAC_SHA384: hmac('sha384'),
  HMAC_SHA512: hmac('sha512'),
  AES_128_GCM: aes('gcm', 16),
  AES_256_GCM: aes('gcm', 32),
  AES_128_CBC: aes('cbc', 16),
  AES_256_CBC: aes('cbc', 32),
  AES_128_CTR: aes('ctr', 16),
  AES_256_CTR: aes('ctr', 32),
};

/** The purpose each algorithm of Cloud KMS belongs to, including those OpenEKM does not implement. */
export function purposeOf(algorithm: AlgorithmName): CryptoKeyPurposeName | undefined {
  const spec = SPECS[algorithm];
  if (spec) return spec.purpose;
  if (algorithm === 'EXTERNAL_SYMMETRIC_ENCRYPTION') return 'ENCRYPT_DECRYPT';
  if (algorithm.startsWith('PQ_SIGN_')) return 'ASYMMETRIC_SIGN';
  if (algorithm.startsWith('ML_KEM_') || algorithm === 'KEM_XWING') return 'KEY_ENCAPSULATION';
  if (algorithm === 'AES_256_KWP') return 'AES_WRAPPING';
  return undefined;
}

/** New key material for a SOFTWARE version of `algorithm` (see the file comment for its form). */
export async function generateMaterial(algorithm: AlgorithmName): Promise<Buffer> {
  const spec = SPECS[algorithm];
  if (!spec) throw new Error(`no material for ${algorithm}`);
  switch (spec.kind) {
    case 'symmetric':
      return randomBytes(32);
    case 'hmac':
      return randomBytes(HASH_BYTES[spec.hash]);
    case 'aes':
      return randomBytes(spec.bytes);
    case 'ec': {
      const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: spec.curve });
      return privateKey.export({ type: 'pkcs8', format: 'der' });
    }
    case 'ed25519': {
      const { privateKey } = await generateKeyPairAsync('ed25519');
      return privateKey.export({ type: 'pkcs8', format: 'der' });
    }
    default: {
      const { privateKey } = await generateKeyPairAsync('rsa', {
        modulusLength: spec.bits,
        publicExponent: 0x10001,
      });
      return privateKey.export({ type: 'pkcs8', format: 'der' });
    }
  }
}

export function privateKeyOf(material: Buffer): KeyObject {
  return createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
}

/** The public key of asymmetric material as a SubjectPublicKeyInfo, PEM or DER. */
export function publicKeyOf(material: Buffer, format: 'pem' | 'der'): Buffer {
  const pub = createPublicKey(privateKeyOf(material));
  return format === 'pem'
    ? Buffer.from(pub.export({ type: 'spki', format: 'pem' }) as string, 'utf8')
    : (pub.export({ type: 'spki', format: 'der' }) as Buffer);
}

/**
 * DER DigestInfo prefixes (RFC 8017 §9.2, note 1) for PKCS#1 v1.5 signatures over a given digest (also the HSM
 * path's: CKM_RSA_PKCS pads what it is given).
 */
export const DIGEST_INFO: Partial<Record<Hash, string>> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

/** The ECDSA curves by name, for signing a given digest and for re-encoding signatures. */
export const EC_CURVES = { 'P-256': p256, 'P-384': p384, secp256k1 } as const;

/**
 * Signs with an ASYMMETRIC_SIGN spec. `digest` is the caller's pre-computed digest of the spec's hash, or `data`
 * the message (hashed here, or signed as is by Ed25519 and raw PKCS#1). The signature encodings are Cloud KMS's:
 * ECDSA as DER SEQUENCE{r, s}, RSA as a big-endian integer of the modulus length, Ed25519 as 64 bytes.
 */
export function signWith(spec: Spec, material: Buffer, input: { digest?: Buffer; data?: Buffer }): Buffer {
  const key = privateKeyOf(material);
  switch (spec.kind) {
    case 'ed25519':
      return nodeSign(null, input.data!, key);
    case 'rsa-raw-pkcs1':
      // PKCS#1 v1.5 type-1 padding over the caller's bytes, no DigestInfo.
      return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, input.data!);
    case 'ec': {
      if (input.data) return nodeSign(spec.hash, input.data, { key, dsaEncoding: 'der' });
      const d = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
      return Buffer.from(EC_CURVES[spec.curve].sign(input.digest!, d, { prehash: false }).toDERRawBytes());
    }
    case 'rsa-pkcs1': {
      if (input.data) return nodeSign(spec.hash, input.data, key);
      const info = Buffer.concat([Buffer.from(DIGEST_INFO[spec.hash]!, 'hex'), input.digest!]);
      return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, info);
    }
    case 'rsa-pss': {
      const saltLength = HASH_BYTES[spec.hash];
      if (input.data) {
        return nodeSign(spec.hash, input.data, {
          key,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength,
        });
      }
      // EMSA-PSS (RFC 8017 §9.1.1) of the given digest, MGF1 with the same hash, salt = digest length; then the
      // RSA private-key operation (RSASP1) by node:crypto.
      const md = () => forge.md[spec.hash as 'sha256' | 'sha512'].create();
      const encoder = forge.pss.create({
        md: md(),
        mgf: forge.mgf.mgf1.create(md()),
        saltLength,
        prng: { getBytesSync: (n: number) => randomBytes(n).toString('binary') },
      });
      const given = { digest: () => forge.util.createBuffer(input.digest!.toString('binary')) };
      const em = Buffer.from(encoder.encode(given as unknown as forge.md.MessageDigest, spec.bits), 'binary');
      const block = Buffer.concat([Buffer.alloc(spec.bits / 8 - em.length), em]);
      return privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, block);
    }
    default:
      throw new Error(`${spec.kind} does not sign`);
  }
}
