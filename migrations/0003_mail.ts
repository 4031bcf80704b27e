import type { Knex } from 'knex';

/**
 * The mail outbox (SPEC "Email"): a row per message, written in the transaction of the change it reports,
 * delivered later by every server instance's worker. `locked_by`/`locked_until` are a claim's lease; a row whose
 * lease ran out (its sender crashed) is due again. `tokens.expiry_notified_at` makes the "expires in 7 days"
 * notice one per token.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('mail_outbox', (t) => {
    t.uuid('id').primary();
    // The Message-ID header, fixed when the row is written: a resend after a crash carries the same one.
    t.text('message_id').notNullable();
    t.text('kind').notNullable();
    t.text('recipient').notNullable();
    t.text('subject').notNullable();
    t.text('text_body').notNullable();
    t.text('html_body').notNullable();
    t.text('status').notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).notNullable();
    t.uuid('locked_by');
    t.timestamp('locked_until', { useTz: true });
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('sent_at', { useTz: true });
  });
  await knex.raw(
    "alter table mail_outbox add constraint mail_outbox_status_ck check (status in ('pending', 'sent', 'failed'))",
  );
  await knex.raw('create unique index mail_outbox_message_id_uq on mail_outbox (message_id)');
  // The worker's scan: pending rows by due time; sent and failed rows stay out of the index.
  await knex.raw("create index mail_outbox_due_idx on mail_outbox (next_attempt_at) where status = 'pending'");

  await knex.schema.alterTable('tokens', (t) => {
    t.timestamp('expiry_notified_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('expiry_notified_at');
  });
  await knex.schema.dropTable('mail_outbox');
}
