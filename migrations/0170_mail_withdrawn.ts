import type { Knex } from 'knex';

/**
 * `mail_outbox.status` may be `withdrawn`: a password-reset mail whose link a newer request replaced before the mail
 * went out (src/mail/admin-notices.ts withdrawUnsentPasswordResetMail). It is never sent (so the newest mail in the
 * inbox is the one whose link works, also after a mail backlog), its link is removed from the row, and it still
 * counts toward the reset mails per address and hour (the row stays). Withdrawn rows go with sent ones after the
 * retention (pruneSentMail).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table mail_outbox drop constraint mail_outbox_status_ck');
  await knex.raw("alter table mail_outbox add constraint mail_outbox_status_ck check (status in ('pending', 'sent', 'failed', 'withdrawn'))");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("delete from mail_outbox where status = 'withdrawn'");
  await knex.raw('alter table mail_outbox drop constraint mail_outbox_status_ck');
  await knex.raw("alter table mail_outbox add constraint mail_outbox_status_ck check (status in ('pending', 'sent', 'failed'))");
}
