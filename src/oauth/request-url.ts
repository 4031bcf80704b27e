// Which URLs of a request name this server (RFC 7523 §3 `aud`, RFC 9449 §4.3 `htu`), and the RFC 3986 §6.2.2
// normal form a DPoP proof's `htu` is compared in.
import type ipaddr from 'ipaddr.js';
import { parseAddress } from '../address.js';

/** What requestUrlIsOurs reads of a Koa context: the URL as Koa builds it, and the socket the request came on. */
export interface RequestUrlContext {
  href: string;
  req: { socket: { localAddress?: string | undefined } };
}

/** An address (a URL's host, IPv6 in brackets, or a socket's) with an IPv4-mapped IPv6 one as its IPv4 address. */
function parseIp(host: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const ip = parseAddress(host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);
  return ip?.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress() ? (ip as ipaddr.IPv6).toIPv4Address() : ip;
}

/**
 * Whether the request's own URL (scheme and `Host`, or `X-Forwarded-Host` behind TRUST_PROXY, as Koa's `ctx.href`
 * builds it) names this server, so that a client assertion's `aud` or a DPoP proof's `htu` may name it besides the
 * URLs discovery advertises (ISSUER + path). The host is the client's to write: a name that could be another
 * server's would let an assertion or proof addressed there be replayed here (RFC 7523 §3: "MUST reject any JWT that
 * does not contain its own identity as the intended audience"). Ours: ISSUER's host name, a loopback name
 * (`localhost`, 127.0.0.0/8, `::1`: never another server's public identity), or the IP address the connection
 * reached (a client calling an instance directly). Any port. docs/sender-constrained.md.
 */
export function requestUrlIsOurs(ctx: RequestUrlContext, issuer: string): boolean {
  const seen = URL.parse(ctx.href);
  if (!seen) return false;
  const host = seen.hostname; // lower-case; an IPv6 address in brackets
  if (host === new URL(issuer).hostname) return true;
  if (host === 'localhost' || host.endsWith('.localhost')) return true; // RFC 6761 §6.3: always loopback
  const ip = parseIp(host);
  if (!ip) return false;
  if (ip.range() === 'loopback') return true;
  const reached = parseIp(ctx.req.socket.localAddress ?? '');
  return reached !== undefined && reached.kind() === ip.kind() && reached.toNormalizedString() === ip.toNormalizedString();
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * A URL in the form RFC 9449 §4.3 compares a DPoP proof's `htu` in: without query and fragment, after RFC 3986
 * §6.2.2 syntax-based normalisation (case of scheme and host, percent-encoded unreserved characters decoded and the
 * other escapes in upper case, dot segments removed) and §6.2.3 scheme-based (default port dropped), which WHATWG
 * URL parsing does but for the percent-encoding. Undefined for what is no URL.
 */
export function normalHtu(value: string): string | undefined {
  const url = URL.parse(value);
  if (!url) return undefined;
  url.search = url.hash = '';
  const path = url.pathname.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : escape.toUpperCase();
  });
  url.pathname = path; // parsed again: dot segments that decoding made (%2E%2E) go too
  return url.href;
}
