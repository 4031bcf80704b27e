import type { Knex } from 'knex';

/**
 * `audit_events_token_idx`: one token's events, newest first (GET /admin/api/audit?token_id=…, the console's token
 * detail view), read from the index instead of scanning the organisation's events. Events without a token (admin
 * and policy events) are left out of it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'create index audit_events_token_idx on audit_events (organisation_id, token_id, created_at desc, id desc) where token_id is not null',
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists audit_events_token_idx');
}
