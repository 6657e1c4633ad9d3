/**
 * Which hosts OpenEKM may call as an external key manager (OPENEKM_EKM_ALLOWED_HOSTS, docs/configuration.md):
 * the operator's allow-list for EKM connection hosts and the declared EKM endpoints behind EXTERNAL key URIs. It
 * keeps a project owner from pointing the gateway — which signs each call with a token — at the network it runs
 * in (server-side request forgery): loopback, link-local, private and other special-purpose addresses and the
 * cloud metadata hosts are refused unless the operator lists them.
 *
 * Entries: `public` (any address outside the special-purpose ranges; the default list is ["public"]), a host
 * name (`ekm.example.com`, or `*.example.com` for its subdomains: whatever address it resolves to), an IP address
 * or a CIDR block (`10.0.0.5`, `10.20.0.0/16`, `fd00:1::/64`).
 *
 * A host is checked twice: when it is configured (a connection's hostname, in its canonical form — numeric IPv4
 * forms such as 0x7f000001, 2130706433 or 127.1 are read as the address they are), and when the transport
 * connects: each address DNS answers, and the address actually connected to, must be allowed, so a name that
 * resolves (or re-resolves) to an internal address gains nothing.
 */
import { BlockList, isIP } from 'node:net';
import type { buildConnector } from 'undici';

/** Special-purpose ranges: never "public" (RFC 6890 and friends). */
const SPECIAL_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
const SPECIAL_V6 = [
  '::/127', // unspecified and loopback
  '::ffff:0:0/96', // IPv4-mapped: would reach any IPv4 address
  '64:ff9b::/96', // NAT64
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/23',
  '2001:db8::/32',
  '2002::/16', // 6to4
  'fc00::/7', // unique local (also fd00:ec2::254, the AWS metadata address)
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];
/** Cloud metadata host names, refused by name too (their addresses are link-local anyway). */
const METADATA_NAMES = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'instance-data',
  'instance-data.ec2.internal',
]);

const special = new BlockList();
for (const c of SPECIAL_V4) special.addSubnet(c.split('/')[0]!, Number(c.split('/')[1]), 'ipv4');
for (const c of SPECIAL_V6) special.addSubnet(c.split('/')[0]!, Number(c.split('/')[1]), 'ipv6');

export interface HostPolicy {
  /** The entries as configured, for messages. */
  readonly entries: readonly string[];
  readonly publicAllowed: boolean;
  readonly names: ReadonlySet<string>;
  readonly suffixes: readonly string[];
  readonly addresses: BlockList;
}

export const DEFAULT_ALLOWED_HOSTS = ['public'];

/** Parses the entries; throws Error with the offending entry. */
export function parseHostPolicy(entries: readonly string[]): HostPolicy {
  const names = new Set<string>();
  const suffixes: string[] = [];
  const addresses = new BlockList();
  let publicAllowed = false;
  for (const raw of entries) {
    const e = raw.trim().toLowerCase();
    if (e === 'public') {
      publicAllowed = true;
      continue;
    }
    const slash = e.indexOf('/');
    const ip = slash >= 0 ? e.slice(0, slash) : e;
    const family = isIP(ip);
    if (family) {
      const max = family === 4 ? 32 : 128;
      const prefix = slash >= 0 ? Number(e.slice(slash + 1)) : max;
      if (
        !Number.isInteger(prefix) ||
        prefix < 0 ||
        prefix > max ||
        (slash >= 0 && e.slice(slash + 1) === '')
      ) {
        throw new Error(`"${raw}" is not a CIDR block (e.g. 10.0.0.0/8)`);
      }
      addresses.addSubnet(ip, prefix, family === 4 ? 'ipv4' : 'ipv6');
      continue;
    }
    const wildcard = e.startsWith('*.');
    const name = canonicalHost(wildcard ? e.slice(2) : e);
    if (!name || isIP(name) || name.includes(':') || slash >= 0) {
      throw new Error(
        `"${raw}" is not an allow-list entry: use "public", a host name, "*.domain", an IP address or a CIDR block`,
      );
    }
    if (wildcard) suffixes.push(`.${name}`);
    else names.add(name);
  }
  return { entries: [...entries], publicAllowed, names, suffixes, addresses };
}

/**
 * The canonical form of a host (no port) as the URL parser — and so the transport — reads it: lower case,
 * IPv4 in dotted decimal whatever form it was written in, IPv6 without brackets. Undefined when it is not a host.
 */
export function canonicalHost(host: string): string | undefined {
  try {
    const h = new URL(`https://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}/`)
      .hostname;
    return h.startsWith('[') ? h.slice(1, -1) : h;
  } catch {
    return undefined;
  }
}

/** `host:port` or `host` with the host in canonical form; undefined when it does not parse. */
export function canonicalHostPort(hostPort: string): string | undefined {
  try {
    const url = new URL(`https://${hostPort}/`);
    if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) return undefined;
    return url.host;
  } catch {
    return undefined;
  }
}

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** Whether an IP address is outside every special-purpose range. */
function isPublicAddress(address: string): boolean {
  return isIP(address) !== 0 && !special.check(address, familyOf(address));
}

function nameAllowed(policy: HostPolicy, name: string): boolean {
  return policy.names.has(name) || policy.suffixes.some((s) => name.endsWith(s));
}

/**
 * Why `host` (a name or an address, in any form the URL parser reads) may not be an EKM host, or undefined when it
 * may. Names without an allow-list entry pass when public addresses are allowed: their addresses are checked
 * when the transport connects.
 */
export function hostRefusal(policy: HostPolicy, host: string): string | undefined {
  const h = canonicalHost(host);
  if (!h) return `${host} is not a host name or IP address`;
  if (isIP(h)) {
    if (policy.addresses.check(h, familyOf(h))) return undefined;
    if (policy.publicAllowed && isPublicAddress(h)) return undefined;
    return `${h} is a ${isPublicAddress(h) ? 'public' : 'loopback, link-local, private or special-purpose'} address that OPENEKM_EKM_ALLOWED_HOSTS does not allow`;
  }
  if (nameAllowed(policy, h)) return undefined;
  if (METADATA_NAMES.has(h) || h === 'localhost' || h.endsWith('.localhost')) {
    return `${h} is a metadata or loopback host name that OPENEKM_EKM_ALLOWED_HOSTS does not list`;
  }
  if (policy.publicAllowed) return undefined;
  return `${h} is not listed in OPENEKM_EKM_ALLOWED_HOSTS`;
}

/** Whether the transport may connect to `address` for `hostname` (a name the operator listed allows any). */
function addressAllowed(policy: HostPolicy, hostname: string, address: string): boolean {
  const h = canonicalHost(hostname);
  if (h && !isIP(h) && nameAllowed(policy, h)) return true;
  if (isIP(address) === 0) return false;
  if (policy.addresses.check(address, familyOf(address))) return true;
  return policy.publicAllowed && isPublicAddress(address);
}

/** The error the transport fails a connection with (classified EXTERNAL_KEY_HOST_NOT_WHITELISTED). */
function hostDenied(hostname: string, address?: string): Error {
  return Object.assign(
    new Error(
      `the EKM host ${hostname}${address && address !== hostname ? ` (${address})` : ''} is not allowed by OPENEKM_EKM_ALLOWED_HOSTS`,
    ),
    { code: 'ERR_OPENEKM_HOST_DENIED' },
  );
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: unknown, family?: number) => void;
type Lookup = (hostname: string, options: object, callback: LookupCallback) => void;

/**
 * A DNS lookup (for the transport's sockets) that answers only the addresses `policy` allows for the host name,
 * and fails with ERR_OPENEKM_HOST_DENIED when none is left.
 */
export function guardedLookup(policy: HostPolicy, inner: Lookup): Lookup {
  return (hostname, options, callback) => {
    inner(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      if (Array.isArray(address)) {
        const kept = (address as Array<{ address: string; family: number }>).filter((a) =>
          addressAllowed(policy, hostname, a.address),
        );
        if (kept.length === 0) return callback(hostDenied(hostname, address[0]?.address), undefined);
        return callback(null, kept);
      }
      if (typeof address === 'string' && !addressAllowed(policy, hostname, address)) {
        return callback(hostDenied(hostname, address), undefined);
      }
      return callback(null, address, family);
    });
  };
}

export function guardedConnector(
  policy: HostPolicy,
  base: buildConnector.connector,
): buildConnector.connector {
  return (options, callback) => {
    const host = canonicalHost(options.hostname) ?? options.hostname;
    if (isIP(host) && !addressAllowed(policy, host, host)) {
      callback(hostDenied(host), null);
      return;
    }
    base(options, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      const remote = socket.remoteAddress;
      if (!remote || !addressAllowed(policy, host, remote)) {
        socket.destroy();
        return callback(hostDenied(host, remote), null);
      }
      return callback(null, socket);
    });
  };
}
