import type { Knex } from 'knex';

/** One query for many keys: `(knex, keys) → rows`, e.g. `select … where key = any(?)`. */
export type BatchQuery<K, R> = (knex: Knex, keys: K[]) => Promise<R[]>;

interface Waiting<K, R> {
  key: K;
  resolve(row: R | undefined): void;
  reject(err: unknown): void;
}

/**
 * Request coalescing for a hot point lookup: calls of the returned function that arrive in the same turn of the
 * event loop share one query (`query(knex, distinctKeys)`), at most `maxBatch` keys to a query; each call gets
 * the row whose `keyOf(row)` equals its key, or undefined. Every call is still answered by a query issued after
 * it arrived, so a change committed before the call is seen (no caching). Batches are kept per knex instance
 * and run through knex's public API only.
 */
export function batchedLookup<K, R>(
  query: BatchQuery<K, R>,
  keyOf: (row: R) => K,
  maxBatch = 256,
): (knex: Knex, key: K) => Promise<R | undefined> {
  const pending = new WeakMap<Knex, Array<Waiting<K, R>>>();

  const run = async (knex: Knex, batch: Array<Waiting<K, R>>) => {
    if (pending.get(knex) === batch) pending.delete(knex);
    try {
      const rows = await query(knex, [...new Set(batch.map((w) => w.key))]);
      const byKey = new Map(rows.map((r) => [keyOf(r), r]));
      for (const w of batch) w.resolve(byKey.get(w.key));
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  };

  return (knex, key) => {
    let batch = pending.get(knex);
    if (batch === undefined || batch.length >= maxBatch) {
      const next: Array<Waiting<K, R>> = [];
      pending.set(knex, next);
      setImmediate(() => void run(knex, next));
      batch = next;
    }
    const joined = batch;
    return new Promise<R | undefined>((resolve, reject) => joined.push({ key, resolve, reject }));
  };
}
