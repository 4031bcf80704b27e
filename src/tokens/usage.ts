import type { Db } from '../db/index.js';

/**
 * last_used_at bookkeeping off the hot path: token exchanges record in memory; `flush` writes at most one
 * update per token and secret per `minIntervalMs` (one statement for the whole batch), and never blocks a response.
 * The token's `last_used_at` is the latest use of any of its secrets; each live secret keeps its own
 * (`secret_last_used_at`, `prev_secret_last_used_at`, matched by the hash that authenticated: SPEC "Secret rotation
 * with overlap").
 */
export class UsageRecorder {
  private pending = new Map<string, { id: string; hash: string | null; at: Date }>();
  private written = new Map<string, number>();

  constructor(private readonly minIntervalMs = 60_000) {}

  /** Records a use at `at` (deps.clock() of the caller) of the secret whose hash is `secretHash` (when known). */
  record(tokenId: string, at: Date, secretHash?: string): void {
    const key = secretHash ? `${tokenId} ${secretHash}` : tokenId;
    const last = this.written.get(key);
    if (last !== undefined && at.getTime() - last < this.minIntervalMs) return;
    this.pending.set(key, { id: tokenId, hash: secretHash ?? null, at });
  }

  get size(): number {
    return this.pending.size;
  }

  async flush(db: Db): Promise<number> {
    if (this.pending.size === 0) return 0;
    const batch = [...this.pending];
    this.pending = new Map();
    const ids = batch.map(([, u]) => u.id);
    const hashes = batch.map(([, u]) => u.hash ?? ''); // '' matches no hash
    const times = batch.map(([, u]) => u.at.toISOString());
    try {
      await db.raw(
        `with u as (select unnest(?::uuid[]) as id, unnest(?::text[]) as hash, unnest(?::timestamptz[]) as at)
         update tokens t set
            last_used_at = greatest(t.last_used_at, (select max(u.at) from u where u.id = t.id)),
            secret_last_used_at = greatest(t.secret_last_used_at, (select max(u.at) from u where u.id = t.id and u.hash = t.secret_hash)),
            prev_secret_last_used_at = greatest(t.prev_secret_last_used_at, (select max(u.at) from u where u.id = t.id and u.hash = t.prev_secret_hash))
          where t.id in (select u.id from u)`,
        [ids, hashes, times],
      );
    } catch (err) {
      for (const [key, u] of batch) if (!this.pending.has(key)) this.pending.set(key, u); // retried next flush
      throw err;
    }
    for (const [key, u] of batch) this.written.set(key, u.at.getTime());
    if (this.written.size > 100_000) this.written.clear();
    return batch.length;
  }
}
