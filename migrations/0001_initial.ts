import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('organisations', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create unique index organisations_name_uq on organisations (lower(name))');

  await knex.schema.createTable('admins', (t) => {
    t.uuid('id').primary();
    t.uuid('organisation_id').notNullable().references('id').inTable('organisations').onDelete('CASCADE');
    t.text('email').notNullable();
    t.text('password_hash').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create unique index admins_email_uq on admins (lower(email))');
  await knex.raw('create index admins_organisation_idx on admins (organisation_id)');

  await knex.schema.createTable('tokens', (t) => {
    t.uuid('id').primary();
    t.uuid('organisation_id').notNullable().references('id').inTable('organisations').onDelete('CASCADE');
    t.text('name').notNullable();
    t.text('client_id').notNullable();
    t.text('secret_hash').notNullable();
    t.specificType('services', 'text[]').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.uuid('created_by').references('id').inTable('admins').onDelete('SET NULL');
    t.timestamp('last_used_at', { useTz: true });
  });
  await knex.raw('create unique index tokens_client_id_uq on tokens (client_id)');
  await knex.raw('create unique index tokens_org_name_uq on tokens (organisation_id, lower(name))');
  await knex.raw('create index tokens_org_created_idx on tokens (organisation_id, created_at desc, id desc)');
  await knex.raw('create index tokens_org_expires_idx on tokens (organisation_id, expires_at)');

  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('alg').notNullable();
    t.jsonb('private_jwk').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // Published in the JWKS at once; signs from this moment on (rotation publishes ahead of use).
    t.timestamp('not_before', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('signing_keys');
  await knex.schema.dropTable('tokens');
  await knex.schema.dropTable('admins');
  await knex.schema.dropTable('organisations');
}
