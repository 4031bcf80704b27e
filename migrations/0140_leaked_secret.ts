import type { Knex } from 'knex';

/**
 * A notify-mode leak (docs/leaked-secrets.md) is tied to the secret that was reported, not to the token: the token
 * resource's `leaked_at` holds while a reported secret is live, and clears once none is (rotated away with grace
 * 0, retired, or its grace period over). `tokens.leaked_at` (0050) now says when the current secret
 * (`secret_hash`) was first reported; `tokens.prev_secret_leaked_at` the same for the previous one
 * (`prev_secret_hash`, 0090), moved and cleared with it. A token flagged before this migration keeps its flag on
 * its current secret (which of its secrets was reported is not on record): it clears once that secret stops.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.timestamp('prev_secret_leaked_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('prev_secret_leaked_at');
  });
}
