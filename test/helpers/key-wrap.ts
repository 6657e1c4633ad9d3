/** Key material wrapped for a Cloud KMS import job by the OpenSSL command line, as a user would do it. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(args: string[]): Buffer {
  return execFileSync('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * `material` wrapped for an import job with the OpenSSL command line (temporary files in `dir`): for the *_AES_256 methods
 * RSA-OAEP(job key, fresh AES-256 key) ‖ AES-KWP(that key, material); otherwise RSA-OAEP-SHA256(job key, material).
 */
export function opensslWrap(dir: string, jobPem: string, method: string, material: Buffer): Buffer {
  const tag = randomBytes(4).toString('hex');
  const pub = join(dir, `${tag}-job.pem`);
  const target = join(dir, `${tag}-target`);
  writeFileSync(pub, jobPem);
  writeFileSync(target, material);
  const hash = method.includes('_SHA1_') ? 'sha1' : 'sha256';
  const oaep = (file: string) =>
    openssl([
      'pkeyutl',
      '-encrypt',
      '-pubin',
      '-inkey',
      pub,
      '-in',
      file,
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      `rsa_oaep_md:${hash}`,
      '-pkeyopt',
      `rsa_mgf1_md:${hash}`,
    ]);
  if (!method.endsWith('_AES_256')) return oaep(target);
  const aes = randomBytes(32);
  const aesFile = join(dir, `${tag}-aes`);
  writeFileSync(aesFile, aes);
  const kwp = openssl([
    'enc',
    '-id-aes256-wrap-pad',
    '-K',
    aes.toString('hex'),
    '-iv',
    'A65959A6',
    '-in',
    target,
  ]);
  return Buffer.concat([oaep(aesFile), kwp]);
}
