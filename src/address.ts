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
  const parsed = parseAddress(text);
  if (!parsed) return address;
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const ip = parsed as ipaddr.IPv6;
  if (ip.isIPv4MappedAddress()) return ip.toIPv4Address().toString();
  const network = new ipaddr.IPv6([...ip.parts.slice(0, 4), 0, 0, 0, 0]);
  return `${network.toString()}/64`;
}

/**
 * An IPv4 address in dotted four-part decimal (`192.0.2.1`; not `10.1`, `0x0a.0.0.1` or `010.1.2.3`) or an IPv6
 * address (RFC 4291 §2.2, also with a dotted IPv4 tail), parsed by ipaddr.js; undefined for anything else, a zone
 * (`%eth0`) included. A dotted tail keeps the groups written before it: `::192.0.2.1` is the IPv4-compatible
 * `::c000:201` (RFC 4291 §2.5.5.1, `::/96`), only `::ffff:192.0.2.1` is IPv4-mapped (§2.5.5.2). ipaddr.js itself
 * parses every `::a.b.c.d` as `::ffff:a.b.c.d`, so the tail is turned into two hexadecimal groups first.
 */
export function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (!text.includes(':')) return ipaddr.IPv4.isValidFourPartDecimal(text) ? ipaddr.IPv4.parse(text) : undefined;
  if (text.includes('%')) return undefined;
  let v6 = text;
  if (text.includes('.')) {
    const colon = text.lastIndexOf(':');
    const tail = text.slice(colon + 1);
    if (!ipaddr.IPv4.isValidFourPartDecimal(tail)) return undefined;
    const [a, b, c, d] = ipaddr.IPv4.parse(tail).octets as [number, number, number, number];
    v6 = `${text.slice(0, colon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  return ipaddr.IPv6.isValid(v6) ? ipaddr.IPv6.parse(v6) : undefined;
}
