import type { Db } from '../db/index.js';

/**
 * last_used_at bookkeeping off the hot path: token exchanges record in memory; `flush` writes at most one
 * update per token per `minIntervalMs` (one statement for the whole batch), and never blocks a response.
 */
export class UsageRecorder {
  private pending = new Map<string, Date>();
  private written = new Map<string, number>();

  constructor(private readonly minIntervalMs = 60_000) {}

  /** Records a use at `at` (deps.clock() of the caller). */
  record(tokenId: string, at: Date): void {
    const last = this.written.get(tokenId);
    if (last !== undefined && at.getTime() - last < this.minIntervalMs) return;
    this.pending.set(tokenId, at);
  }

  get size(): number {
    return this.pending.size;
  }

  async flush(db: Db): Promise<number> {
    if (this.pending.size === 0) return 0;
    const batch = [...this.pending];
    this.pending = new Map();
    const ids = batch.map(([id]) => id);
    const times = batch.map(([, at]) => at.toISOString());
    try {
      await db.raw(
        `update tokens t set last_used_at = u.at
           from (select unnest(?::uuid[]) as id, unnest(?::timestamptz[]) as at) u
          where t.id = u.id and (t.last_used_at is null or t.last_used_at < u.at)`,
        [ids, times],
      );
    } catch (err) {
      for (const [id, at] of batch) if (!this.pending.has(id)) this.pending.set(id, at); // retried next flush
      throw err;
    }
    for (const [id, at] of batch) this.written.set(id, at.getTime());
    if (this.written.size > 100_000) this.written.clear();
    return batch.length;
  }
}
