import type { Knex } from 'knex';

/**
 * Two indexes for jobs that run on every instance:
 * - `tokens_expires_at_idx`: the expiry reminders (src/tokens/reminders.ts, every `EXPIRY_CHECK_INTERVAL_MS`, once
 *   per threshold) read the tokens of every organisation whose expiry falls in the next N days; the only index on
 *   `expires_at` led with `organisation_id`, so each run read the whole table, expired tokens included (they stay).
 * - `token_issuance_buckets_minute_idx`: the hourly limit's buckets older than the rolling hour are deleted every
 *   minute (src/tokens/limits.ts pruneIssuanceBuckets); the primary key leads with `token_id`.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('create index if not exists tokens_expires_at_idx on tokens (expires_at)');
  await knex.raw('create index if not exists token_issuance_buckets_minute_idx on token_issuance_buckets (minute)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists token_issuance_buckets_minute_idx');
  await knex.raw('drop index if exists tokens_expires_at_idx');
}
