import type { Knex } from 'knex';

/**
 * Per-token network and rate limits, enforced (SPEC Part 2 "Network and rate limits per token"):
 * - token_issuance_buckets: access tokens issued per token per minute (`minute` is the bucket's start), upserted
 *   atomically at the token endpoint and summed over the last 60 buckets; only tokens with a limit get rows. The
 *   primary key (token_id, minute) serves both the upsert and the sum; the prune job deletes buckets older than an
 *   hour.
 * - tokens.denied_address_audit_at: when the last `token.denied_address` event of the token was written, so a
 *   conditional update lets at most one through per minute across instances.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('token_issuance_buckets', (t) => {
    t.uuid('token_id').notNullable().references('id').inTable('tokens').onDelete('CASCADE');
    t.timestamp('minute', { useTz: true }).notNullable();
    t.integer('count').notNullable();
    t.primary(['token_id', 'minute']);
  });
  await knex.schema.alterTable('tokens', (t) => {
    t.timestamp('denied_address_audit_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('denied_address_audit_at');
  });
  await knex.schema.dropTable('token_issuance_buckets');
}
