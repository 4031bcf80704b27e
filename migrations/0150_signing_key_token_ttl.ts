import type { Knex } from 'knex';

/**
 * `signing_keys.max_token_ttl_seconds`: the longest access token lifetime (ACCESS_TOKEN_TTL_SECONDS) of any server
 * that has signed with the key, raised by each server before it first signs with it (src/keys/service.ts
 * recordSignerTokenTtl). A superseded key stays published, and is kept, for that lifetime plus an hour (SPEC Part 2
 * "superseded keys stay published for the longest access token lifetime plus an hour"), so that instances with
 * different lifetimes (a rolling change of the setting) publish the same keys and a long-lived token never outlives
 * its key on the instances with short ones. Null for keys that have not signed since this migration: each instance
 * then counts its own lifetime, as before.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('signing_keys', (t) => {
    t.integer('max_token_ttl_seconds');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('signing_keys', (t) => {
    t.dropColumn('max_token_ttl_seconds');
  });
}
