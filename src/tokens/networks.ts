import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';
import { parseAddress } from '../address.js';

/** SPEC "Network and rate limits per token": at most this many entries in `allowed_ips`. */
export const MAX_ALLOWED_IPS = 20;

/**
 * One `allowed_ips` entry, parsed with ipaddr.js and written one canonical way, or undefined when it is not an
 * IPv4/IPv6 address or CIDR range:
 * - IPv4 only in dotted four-part decimal (`10.1.2.3`, not `10.1` or `0x0a.1.2.3`); IPv6 in RFC 5952 form
 *   (`2001:db8::1`), without a zone (`%eth0`);
 * - a range as its network address and prefix (`10.1.2.3/8` → `10.0.0.0/8`); a full-length prefix (`/32`,
 *   `/128`) as the plain address;
 * - an IPv4-mapped IPv6 address or range (`::ffff:10.0.0.1`, RFC 4291 §2.5.5.2) as IPv4, the form a dual-stack
 *   socket reports after it is unmapped; any other IPv6 address written with a dotted tail stays IPv6
 *   (`::10.0.0.1`, IPv4-compatible, §2.5.5.1, is `::a00:1`: parseAddress).
 */
export function normaliseNetwork(entry: string): string | undefined {
  const text = entry.trim();
  if (text.length === 0 || text.length > 64 || text.includes('%')) return undefined;
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  // A prefix length in plain decimal: no sign, no leading zero (`/08`), as the address's own parts.
  if (prefixText !== undefined && !/^(0|[1-9]\d{0,2})$/.test(prefixText)) return undefined;

  let address = parseAddress(addressText);
  if (!address) return undefined;

  const bits = address.kind() === 'ipv4' ? 32 : 128;
  let prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return undefined;
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    address = (address as ipaddr.IPv6).toIPv4Address();
    prefix -= 96;
  }
  const full = address.kind() === 'ipv4' ? 32 : 128;
  const show = (a: ipaddr.IPv4 | ipaddr.IPv6) => (a.kind() === 'ipv4' ? a.toString() : (a as ipaddr.IPv6).toRFC5952String());
  if (prefix === full) return show(address);
  const network =
    address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${prefix}`);
  return `${show(network)}/${prefix}`;
}

/** Decisions remembered by isAddressAllowed (address and allowlist → allowed), at most this many (a few MB). */
const MAX_REMEMBERED = 4096;
const decisions = new LRUCache<string, boolean>({ max: MAX_REMEMBERED });

/**
 * True when `address` (as the client connected from) is inside one of the normalised `networks`; empty = any.
 * Pure, and remembered: parsing with ipaddr.js costs tens of µs per request on the token endpoint's hot path, while a
 * deployment sees few distinct (address, allowlist) pairs. At most MAX_REMEMBERED are kept, the least recently
 * used forgotten first.
 */
export function isAddressAllowed(address: string, networks: readonly string[]): boolean {
  if (networks.length === 0) return true;
  let key = address;
  for (const n of networks) key += ` ${n.length}:${n}`; // length-prefixed: no two lists share a key
  const known = decisions.get(key);
  if (known !== undefined) return known;
  const allowed = decide(address, networks);
  decisions.set(key, allowed);
  return allowed;
}

function decide(address: string, networks: readonly string[]): boolean {
  let parsed = parseAddress(address);
  if (!parsed) return false;
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address(); // ::ffff:a.b.c.d only
  return networks.some((n) => {
    let net: ipaddr.IPv4 | ipaddr.IPv6;
    let bits: number;
    try {
      [net, bits] = n.includes('/') ? ipaddr.parseCIDR(n) : [ipaddr.parse(n), parsed.kind() === 'ipv4' ? 32 : 128];
    } catch {
      return false; // not a network (stored entries are normalised; this is only a guard)
    }
    return net.kind() === parsed.kind() && parsed.match(net, bits);
  });
}
