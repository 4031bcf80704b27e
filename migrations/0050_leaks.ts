import type { Knex } from 'knex';

/**
 * Leaked secrets (SPEC Part 2 "Leaked secrets"):
 * - `tokens_secret_hash_idx`: a reported secret is matched by the hash of a live secret, one indexed read.
 * - `tokens.leaked_at`: when a leak of a token that was kept alive (SECRET_SCANNING_ACTION=notify) was first reported.
 * - `audit_events.leak_url`, `leak_source`, `leak_action`: where a `token.leaked` secret was found, by whom
 *   (the alert's `source`, or `public report`) and what the server did (`revoked` or `notified`).
 * - `audit_events_leaked_idx`: the token list's count of leaked tokens reads only those events.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('create index tokens_secret_hash_idx on tokens (secret_hash)');
  await knex.schema.alterTable('tokens', (t) => {
    t.timestamp('leaked_at', { useTz: true });
  });
  await knex.schema.alterTable('audit_events', (t) => {
    t.text('leak_url');
    t.text('leak_source');
    t.text('leak_action');
  });
  await knex.raw(
    "create index audit_events_leaked_idx on audit_events (organisation_id, created_at) where action = 'token.leaked'",
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists audit_events_leaked_idx');
  await knex.schema.alterTable('audit_events', (t) => {
    t.dropColumn('leak_action');
    t.dropColumn('leak_source');
    t.dropColumn('leak_url');
  });
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('leaked_at');
  });
  await knex.raw('drop index if exists tokens_secret_hash_idx');
}
