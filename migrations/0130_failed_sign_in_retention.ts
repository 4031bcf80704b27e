import type { Knex } from 'knex';

/**
 * `audit_events_sign_in_failed_idx`: the housekeeping job deletes `admin.sign_in_failed` events older than their
 * retention every minute (SPEC Part 2 "Bounded state from unauthenticated traffic"; src/accounts/sessions.ts
 * pruneSessions); this partial index makes that a range read of those events only, whatever the audit log's size.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("create index audit_events_sign_in_failed_idx on audit_events (created_at) where action = 'admin.sign_in_failed'");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists audit_events_sign_in_failed_idx');
}
