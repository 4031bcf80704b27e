import type { Knex } from 'knex';

/**
 * Sender-constrained and secretless tokens (SPEC Part 2): a token authenticates with a client secret or with
 * `private_key_jwt` (its public keys in `jwks`, no secret: `secret_hash` becomes nullable), and may require DPoP.
 * `oauth_replay` is oidc-provider's ReplayDetection model shared by every instance: one row per client assertion
 * or DPoP proof `jti` (keyed by SHA-256 of issuer and jti), kept until it could no longer be accepted, then pruned.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.text('auth_method').notNullable().defaultTo('client_secret');
    t.jsonb('jwks');
    t.boolean('require_dpop').notNullable().defaultTo(false);
  });
  await knex.raw('alter table tokens alter column secret_hash drop not null');
  await knex.raw(
    `alter table tokens add constraint tokens_auth_method_ck check (
       (auth_method = 'client_secret' and secret_hash is not null and jwks is null)
       or (auth_method = 'private_key_jwt' and secret_hash is null and jwks is not null))`,
  );
  await knex.schema.createTable('oauth_replay', (t) => {
    t.text('id').primary();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
  await knex.raw('create index oauth_replay_expires_idx on oauth_replay (expires_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('oauth_replay');
  await knex('tokens').where({ auth_method: 'private_key_jwt' }).delete();
  await knex.raw('alter table tokens drop constraint tokens_auth_method_ck');
  await knex.raw('alter table tokens alter column secret_hash set not null');
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('auth_method');
    t.dropColumn('jwks');
    t.dropColumn('require_dpop');
  });
}
