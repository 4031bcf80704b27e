import type { Knex } from 'knex';

/** JWK members that are private (RFC 7518 §6.2.2, §6.3.2): never in public_jwk. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * Signing keys encrypted at rest (SPEC Part 2 "Signing keys encrypted at rest"): each row keeps its public JWK in
 * clear (published in the JWKS, listed by `sat keys list`) and its private JWK either sealed (AES-256-GCM under the
 * key-encryption key `kek_id`) or, only with ALLOW_PLAINTEXT_KEYS, in clear. Existing plaintext keys are sealed by
 * the first start that has a key-encryption key (src/keys: a migration cannot see the configuration).
 * `created_at` becomes the application's clock at insert (automatic rotation counts from it).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('signing_keys', (t) => {
    t.jsonb('public_jwk');
    t.text('sealed_jwk');
    t.text('kek_id');
  });
  const rows = await knex('signing_keys').select('kid', 'private_jwk');
  for (const row of rows as Array<{ kid: string; private_jwk: Record<string, unknown> | string }>) {
    const jwk = typeof row.private_jwk === 'string' ? (JSON.parse(row.private_jwk) as Record<string, unknown>) : row.private_jwk;
    const pub = Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.includes(k)));
    await knex('signing_keys').where({ kid: row.kid }).update({ public_jwk: JSON.stringify(pub) });
  }
  await knex.raw('alter table signing_keys alter column public_jwk set not null');
  await knex.raw('alter table signing_keys alter column private_jwk drop not null');
  await knex.raw(
    'alter table signing_keys add constraint signing_keys_private_ck check ' +
      '((private_jwk is null) <> (sealed_jwk is null) and (sealed_jwk is null) = (kek_id is null))',
  );
}

export async function down(knex: Knex): Promise<void> {
  const sealed = await knex('signing_keys').whereNotNull('sealed_jwk').count<{ n: number | string }[]>({ n: '*' });
  if (Number(sealed[0]?.n ?? 0) > 0) throw new Error('signing keys are encrypted: a migration cannot decrypt them');
  await knex.raw('alter table signing_keys drop constraint signing_keys_private_ck');
  await knex.raw('alter table signing_keys alter column private_jwk set not null');
  await knex.schema.alterTable('signing_keys', (t) => {
    t.dropColumn('public_jwk');
    t.dropColumn('sealed_jwk');
    t.dropColumn('kek_id');
  });
}
