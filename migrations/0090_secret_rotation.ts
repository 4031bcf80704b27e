import type { Knex } from 'knex';

/**
 * Secret rotation with overlap and expiry reminders (SPEC Part 2 "Credential lifecycle"). A token holds at most
 * two live secrets, so both live on the token row (one indexed read by client ID finds both, the fast path of the
 * token endpoint keeps its single lookup):
 * - the current secret: the existing `secret_hash`, plus `secret_id`, `secret_created_at`, `secret_last_used_at`,
 *   `secret_last4` (null for a secret made before this migration: only its hash was ever stored);
 * - the previous secret during a rotation's grace period: `prev_secret_*`, with `prev_secret_expires_at`;
 *   `tokens_prev_secret_hash_idx` lets a leak report find a token by its previous secret (one indexed read).
 * - `expiry_reminded_days`: the most urgent reminder threshold already mailed (null: none); a token notified by
 *   the former 7-day notice counts as reminded at 7 days.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.uuid('secret_id');
    t.timestamp('secret_created_at', { useTz: true });
    t.timestamp('secret_last_used_at', { useTz: true });
    t.text('secret_last4');
    t.uuid('prev_secret_id');
    t.text('prev_secret_hash');
    t.timestamp('prev_secret_created_at', { useTz: true });
    t.timestamp('prev_secret_expires_at', { useTz: true });
    t.timestamp('prev_secret_last_used_at', { useTz: true });
    t.text('prev_secret_last4');
    t.integer('expiry_reminded_days');
  });
  await knex.raw(
    'update tokens set secret_id = gen_random_uuid(), secret_created_at = created_at, secret_last_used_at = last_used_at',
  );
  await knex.raw('update tokens set expiry_reminded_days = 7 where expiry_notified_at is not null');
  await knex.raw('alter table tokens alter column secret_id set default gen_random_uuid()');
  await knex.raw('alter table tokens alter column secret_id set not null');
  await knex.raw('create index tokens_prev_secret_hash_idx on tokens (prev_secret_hash) where prev_secret_hash is not null');
  await knex.raw(
    'create index tokens_prev_secret_expiry_idx on tokens (prev_secret_expires_at) where prev_secret_expires_at is not null',
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists tokens_prev_secret_expiry_idx');
  await knex.raw('drop index if exists tokens_prev_secret_hash_idx');
  await knex.schema.alterTable('tokens', (t) => {
    for (const c of [
      'secret_id',
      'secret_created_at',
      'secret_last_used_at',
      'secret_last4',
      'prev_secret_id',
      'prev_secret_hash',
      'prev_secret_created_at',
      'prev_secret_expires_at',
      'prev_secret_last_used_at',
      'prev_secret_last4',
      'expiry_reminded_days',
    ])
      t.dropColumn(c);
  });
}
