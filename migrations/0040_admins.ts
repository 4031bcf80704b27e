import type { Knex } from 'knex';
import { normaliseEmail } from '../src/text.js';

/**
 * Administrators (SPEC Part 2 "Administrators"):
 * - admins.email_key: the normalised address (NFKC + case fold), unique: one identity per administrator. Backfilled
 *   here; an older row whose key collides with an earlier one keeps a null key (and signs in by its exact address).
 * - admins.last_sign_in_at: set by every new session (sign-in, accepted invitation).
 * - admin_sessions.last_seen_at / user_agent: what "see your sessions" shows.
 * - admin_one_time_tokens: invitations (72 h) and password resets (1 h); only the SHA-256 of the token is stored.
 * - audit_events.subject_admin_id / subject_admin_email: the administrator an admin.* event is about.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('admins', (t) => {
    t.text('email_key');
    t.timestamp('last_sign_in_at', { useTz: true });
  });
  const rows = (await knex('admins').select('id', 'email').orderBy([{ column: 'created_at' }, { column: 'id' }])) as Array<{
    id: string;
    email: string;
  }>;
  const seen = new Set<string>();
  for (const row of rows) {
    const key = normaliseEmail(row.email);
    if (seen.has(key)) continue;
    seen.add(key);
    await knex('admins').where({ id: row.id }).update({ email_key: key });
  }
  await knex.raw('create unique index admins_email_key_uq on admins (email_key)');
  // Earlier sign-ins are in the audit log.
  await knex.raw(
    `update admins set last_sign_in_at = (select max(e.created_at) from audit_events e
       where e.actor_id = admins.id and e.action = 'admin.signed_in')`,
  );

  await knex.schema.alterTable('admin_sessions', (t) => {
    t.timestamp('last_seen_at', { useTz: true });
    t.text('user_agent');
  });
  await knex.raw('update admin_sessions set last_seen_at = created_at');

  await knex.schema.createTable('admin_one_time_tokens', (t) => {
    t.uuid('id').primary();
    t.text('purpose').notNullable();
    t.text('token_hash').notNullable();
    t.uuid('organisation_id').notNullable().references('id').inTable('organisations').onDelete('CASCADE');
    // The administrator a reset is for; null for an invitation (the account does not exist yet).
    t.uuid('admin_id').references('id').inTable('admins').onDelete('CASCADE');
    t.text('email').notNullable();
    t.text('email_key').notNullable();
    t.uuid('created_by').references('id').inTable('admins').onDelete('SET NULL');
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('used_at', { useTz: true });
  });
  await knex.raw(
    "alter table admin_one_time_tokens add constraint admin_one_time_tokens_purpose_ck check (purpose in ('invitation', 'password_reset'))",
  );
  await knex.raw('create unique index admin_one_time_tokens_hash_uq on admin_one_time_tokens (token_hash)');
  await knex.raw('create index admin_one_time_tokens_email_idx on admin_one_time_tokens (email_key, purpose)');
  await knex.raw('create index admin_one_time_tokens_expires_idx on admin_one_time_tokens (expires_at)');

  await knex.schema.alterTable('audit_events', (t) => {
    t.uuid('subject_admin_id');
    t.text('subject_admin_email');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_events', (t) => {
    t.dropColumn('subject_admin_email');
    t.dropColumn('subject_admin_id');
  });
  await knex.schema.dropTable('admin_one_time_tokens');
  await knex.schema.alterTable('admin_sessions', (t) => {
    t.dropColumn('user_agent');
    t.dropColumn('last_seen_at');
  });
  await knex.raw('drop index if exists admins_email_key_uq');
  await knex.schema.alterTable('admins', (t) => {
    t.dropColumn('email_key');
    t.dropColumn('last_sign_in_at');
  });
}
