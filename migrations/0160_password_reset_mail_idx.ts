import type { Knex } from 'knex';

/**
 * `mail_outbox_password_reset_idx`: every password-reset request for a known administrator counts the reset mails
 * queued for that address in the last `passwordReset.mailWindowSeconds` (src/accounts/password-reset.ts, the limit
 * per email that keeps a mailbox from being flooded); this partial index makes that a range read of that address's
 * reset mails, whatever the outbox's size (sent mail is kept 30 days).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("create index mail_outbox_password_reset_idx on mail_outbox (recipient, created_at) where kind = 'password_reset'");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists mail_outbox_password_reset_idx');
}
