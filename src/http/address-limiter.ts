import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';

interface Window {
  count: number;
  resetAt: number;
}

export interface LimitDecision {
  allowed: boolean;
  /** Whole seconds until this address may call again (0 when allowed). */
  retryAfterSeconds: number;
}

/**
 * A fixed-window call counter per client address, in memory, for unauthenticated endpoints: at most `limit` calls
 * per `windowMs`. State is bounded: at most `maxAddresses` windows are kept (least recently seen dropped first), and
 * a blocked address only increments its existing counter, so it adds nothing. Per instance: behind a load balancer
 * each instance counts its own calls.
 */
export class AddressRateLimiter {
  private readonly windows: LRUCache<string, Window>;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly maxAddresses = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.windows = new LRUCache<string, Window>({ max: maxAddresses });
  }

  /** Counts one call from `address` and says whether it may proceed. */
  hit(address: string): LimitDecision {
    const now = this.now();
    const window = this.windows.get(address);
    if (!window || window.resetAt <= now) {
      this.windows.set(address, { count: 1, resetAt: now + this.windowMs });
      return { allowed: true, retryAfterSeconds: 0 };
    }
    if (window.count >= this.limit) {
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((window.resetAt - now) / 1000)) };
    }
    window.count += 1;
    return { allowed: true, retryAfterSeconds: 0 };
  }

  /** Addresses currently remembered (for tests and metrics). */
  get size(): number {
    return this.windows.size;
  }
}

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
