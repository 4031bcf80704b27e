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
