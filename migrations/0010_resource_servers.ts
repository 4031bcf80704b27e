import type { Knex } from 'knex';

/**
 * Resource servers of the platform (SPEC Part 2 "OAuth conformance"): credentials, in the same formats as system
 * access tokens, that may call introspection for tokens of every organisation and nothing else. Not owned by an
 * organisation; only the SHA-256 of the secret is stored. Revoking deletes the row.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('resource_servers', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    t.text('client_id').notNullable();
    t.text('secret_hash').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create unique index resource_servers_client_id_uq on resource_servers (client_id)');
  await knex.raw('create unique index resource_servers_name_uq on resource_servers (lower(name))');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('resource_servers');
}
