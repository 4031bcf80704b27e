import type { Knex } from 'knex';

/** Admin API: sessions, the login throttle, the audit log, and revoked access tokens (RFC 7009). */
export async function up(knex: Knex): Promise<void> {
  // Sessions: the token is never stored, only its SHA-256 (like client secrets: 256 random bits need no slow hash).
  await knex.schema.createTable('admin_sessions', (t) => {
    t.uuid('id').primary();
    t.text('token_hash').notNullable();
    t.uuid('admin_id').notNullable().references('id').inTable('admins').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.text('ip');
  });
  await knex.raw('create unique index admin_sessions_token_hash_uq on admin_sessions (token_hash)');
  await knex.raw('create index admin_sessions_admin_idx on admin_sessions (admin_id)');
  await knex.raw('create index admin_sessions_expires_idx on admin_sessions (expires_at)');

  // Failed sign-ins per key ('email:<lower email>' or 'ip:<address>') in a fixed window: one row per key.
  await knex.schema.createTable('login_throttle', (t) => {
    t.text('key').primary();
    t.integer('failures').notNullable();
    t.timestamp('window_started_at', { useTz: true }).notNullable();
  });
  await knex.raw('create index login_throttle_window_idx on login_throttle (window_started_at)');

  // Who did what, when, from where. Token columns are copies: the token row itself is deleted on revoke.
  await knex.schema.createTable('audit_events', (t) => {
    t.uuid('id').primary();
    t.uuid('organisation_id').notNullable().references('id').inTable('organisations').onDelete('CASCADE');
    t.uuid('actor_id').references('id').inTable('admins').onDelete('SET NULL');
    t.text('actor_email').notNullable();
    t.text('action').notNullable();
    t.uuid('token_id');
    t.text('token_name');
    t.text('client_id');
    t.text('ip');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index audit_events_org_created_idx on audit_events (organisation_id, created_at desc, id desc)');

  // Access tokens (JWT ids) revoked at the revocation endpoint; kept until the JWT would have expired anyway.
  await knex.schema.createTable('revoked_access_tokens', (t) => {
    t.text('jti').primary();
    t.text('client_id').notNullable();
    t.uuid('organisation_id').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('revoked_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index revoked_access_tokens_expires_idx on revoked_access_tokens (expires_at)');

  // Paging with `q`: the substring filter runs inside one organisation's rows, on the (organisation_id,
  // created_at, id) index of 0001; no new index needed for it.
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('revoked_access_tokens');
  await knex.schema.dropTable('audit_events');
  await knex.schema.dropTable('login_throttle');
  await knex.schema.dropTable('admin_sessions');
}
