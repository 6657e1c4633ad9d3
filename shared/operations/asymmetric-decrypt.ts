/** cryptoKeyVersions.asymmetricDecrypt: RSAES-OAEP with the version's hash for OAEP and MGF1, and no label. */
import { constants, privateDecrypt } from 'node:crypto';
import type { Deps, RequestContext } from '../context.js';
import { privateKeyOf } from '../crypto/algorithms.js';
import { crc32cString } from '../crypto/crc32c.js';
import { RpcError } from '../errors.js';
import { allowOnly, type JsonObject } from '../resources/fields.js';
import { checkedBytes, useVersion } from './use-version.js';

export interface AsymmetricDecryptResponse {
  plaintext: string;
  plaintextCrc32c: string;
  verifiedCiphertextCrc32c: boolean;
  protectionLevel: string;
}

export async function asymmetricDecrypt(
  deps: Deps,
  ctx: RequestContext,
  name: string,
  body: JsonObject,
): Promise<AsymmetricDecryptResponse> {
  allowOnly(body, ['name', 'ciphertext', 'ciphertextCrc32c']);
  const { bytes: ciphertext, verified } = checkedBytes(body, 'ciphertext', 'ciphertextCrc32c', [
    'ciphertext_crc32c',
    'ciphertext',
  ]);
  if (!ciphertext || ciphertext.length === 0) {
    throw RpcError.invalidArgument('ciphertext is required (base64).', 'ciphertext');
  }
  const { spec, version, material } = await useVersion(
    deps,
    ctx,
    name,
    ['ASYMMETRIC_DECRYPT'],
    'asymmetricDecrypt',
  );
  if (spec.kind !== 'rsa-oaep') throw RpcError.failedPrecondition(`${version.algorithm} does not decrypt.`);
  const hint = `The ciphertext must be RSAES-OAEP under this version's public key, with ${spec.hash.toUpperCase()} for OAEP and MGF1 and an empty label, ${spec.bits / 8} bytes long.`;
  if (ciphertext.length !== spec.bits / 8) {
    throw RpcError.invalidArgument(
      `Decryption failed: the ciphertext is ${ciphertext.length} bytes. ${hint}`,
      'ciphertext',
    );
  }
  let plaintext: Buffer;
  try {
    plaintext = privateDecrypt(
      { key: privateKeyOf(material), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: spec.hash },
      ciphertext,
    );
  } catch {
    throw RpcError.invalidArgument(`Decryption failed. ${hint}`, 'ciphertext');
  }
  return {
    plaintext: plaintext.toString('base64'),
    plaintextCrc32c: crc32cString(plaintext),
    verifiedCiphertextCrc32c: verified,
    protectionLevel: version.protectionLevel,
  };
}
