import type { Knex } from 'knex';

/** PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back whole and may run again. */
const RETRYABLE_CODES = new Set(['40P01', '40001']);

/** True when `err` is a deadlock (40P01) or serialization failure (40001), after which a transaction may be retried. */
export function isRetryableTransactionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && RETRYABLE_CODES.has(code);
}

/**
 * Runs `work` in a transaction and runs it again, from the start, when PostgreSQL rolls it back as the victim of
 * a deadlock or a serialization failure (at most `attempts` runs in all, default 3). For a transaction that locks
 * several rows whose order another writer does not share (removing an administrator locks all their tokens; the
 * usage flush locks the tokens it writes in its own order): without it, the loser of such a race is a 500.
 * `work` must have no effect outside the transaction. Any other error, or the last attempt's, is thrown.
 */
export async function transactionWithRetry<T>(knex: Knex, work: (trx: Knex.Transaction) => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await knex.transaction(work);
    } catch (err) {
      if (attempt >= attempts || !isRetryableTransactionError(err)) throw err;
    }
  }
}
