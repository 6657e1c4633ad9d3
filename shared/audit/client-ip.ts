/**
 * The caller's address as the audit log records it (requestMetadata.callerIp). Forwarding headers are written by
 * whoever sends the request, so they are believed only as far as the operator says proxies of the deployment
 * append to them (OPENEKM_TRUSTED_PROXY_HOPS): with N trusted hops, the caller is the N-th X-Forwarded-For entry
 * from the right — the address the outermost trusted proxy saw. With none (the default, and the local stack) the
 * address the connection came from is the caller, and X-Forwarded-For, Forwarded and X-Real-IP are ignored.
 */
import { isIP } from 'node:net';

type Headers = Record<string, string | string[] | undefined>;

function forwardedFor(headers: Headers): string[] {
  const raw = headers['x-forwarded-for'];
  const values = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  return values
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** `::ffff:10.0.0.1` → `10.0.0.1`; anything that is not an IP address → undefined. */
function address(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const ip = raw.startsWith('::ffff:') && isIP(raw.slice(7)) === 4 ? raw.slice(7) : raw;
  return isIP(ip) ? ip : undefined;
}

/**
 * The caller's IP address: the connection's peer, or with `trustedHops` > 0 the address the outermost trusted
 * proxy appended. When the header has fewer entries than trusted hops the request did not come through them, and
 * the connection's peer is recorded.
 */
export function clientIp(
  remoteAddress: string | undefined,
  headers: Headers,
  trustedHops: number,
): string | undefined {
  const peer = address(remoteAddress) ?? remoteAddress;
  if (trustedHops <= 0) return peer;
  const hops = forwardedFor(headers);
  if (hops.length < trustedHops) return peer;
  return address(hops[hops.length - trustedHops]) ?? peer;
}
