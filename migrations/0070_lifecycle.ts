import type { Knex } from 'knex';

/**
 * Credential lifecycle (SPEC Part 2): the organisation policy, the per-token network and rate limit fields, and
 * the details of an audit event (old and new values of a policy or token change).
 *
 * No index for "expiring" or "dormant": both are subsets of an organisation's active tokens, which
 * tokens_org_expires_idx (organisation_id, expires_at) already finds and which the token limit keeps few. An index
 * on last_used_at would cost every usage flush its HOT update, for nothing.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('organisation_policies', (t) => {
    t.uuid('organisation_id').primary().references('id').inTable('organisations').onDelete('CASCADE');
    t.integer('max_lifetime_days').notNullable();
    t.specificType('allowed_services', 'text[]').notNullable();
    t.integer('revoke_dormant_after_days');
    t.integer('default_max_tokens_per_hour');
    t.timestamp('updated_at', { useTz: true }).notNullable();
    t.uuid('updated_by').references('id').inTable('admins').onDelete('SET NULL');
  });
  // The dormant-revocation job reads only the organisations that asked for it.
  await knex.raw(
    'create index organisation_policies_revoke_dormant_idx on organisation_policies (organisation_id) where revoke_dormant_after_days is not null',
  );

  await knex.schema.alterTable('tokens', (t) => {
    // Normalised addresses and CIDR ranges (ipaddr.js); empty = any address.
    t.specificType('allowed_ips', 'text[]').notNullable().defaultTo('{}');
    t.integer('max_tokens_per_hour');
  });

  // `if not exists`: another change may add the same free-form column to the audit log.
  await knex.raw('alter table audit_events add column if not exists details jsonb');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('max_tokens_per_hour');
    t.dropColumn('allowed_ips');
  });
  await knex.schema.dropTable('organisation_policies');
  await knex.raw('alter table audit_events drop column if exists details');
}
