// Client addresses as rate limits and throttles count them (SPEC Part 2: per address, an IPv6 /64 as one).
import ipaddr from 'ipaddr.js';

/**
 * The bucket a client address is counted in: an IPv4 address as itself, an IPv6 address by its /64 network (one
 * host, or one household, usually has a whole /64: counted per address it could make up 2^64 of them), each in its
 * canonical spelling (`2001:DB8:0::1` is `2001:db8::1`). A port some load balancers append (`198.51.100.7:5123`,
 * `[2001:db8::1]:443`) and an IPv6 zone (`%eth0`) are dropped, and an IPv4-mapped IPv6 address is its IPv4 address.
 * Anything that is not an address is its own bucket, as given.
 */
export function addressBucket(address: string): string {
  let text = address.trim();
  const withPort = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(text);
  if (withPort) text = withPort[1]!;
  text = text.replace(/%[^%]*$/, '');
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text).toString();
  if (!ipaddr.IPv6.isValid(text)) return address;
  const ip = ipaddr.IPv6.parse(text);
  if (ip.isIPv4MappedAddress()) return ip.toIPv4Address().toString();
  const network = new ipaddr.IPv6([...ip.parts.slice(0, 4), 0, 0, 0, 0]);
  return `${network.toString()}/64`;
}
