import type { Knex } from 'knex';

/** The per-client cap on remembered revocations (SPEC Part 2 "Bounded state") counts on this index. */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('create index if not exists revoked_access_tokens_client_expires_idx on revoked_access_tokens (client_id, expires_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists revoked_access_tokens_client_expires_idx');
}
