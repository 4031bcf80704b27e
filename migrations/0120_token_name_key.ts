import type { Knex } from 'knex';
import { tokenNameKey } from '../src/text.js';

const BATCH = 500;

/**
 * SPEC "Admin API" (name unique in the organisation, case-insensitive) and Part 2 "Names are text that displays as
 * written": `tokens.name_key`, the name's key (src/text.ts tokenNameKey: NFKC, full case folding), which the name
 * check and the list's `q` compare instead of `lower(name)`. Existing rows are keyed here, in batches (the key is
 * JavaScript's Unicode, not the database's). The index on (organisation_id, name_key) is not unique: names written
 * before may already share a key (`café` in NFC and NFD), and both are kept as they are; the check under the
 * organisation lock refuses a new clash. `tokens_org_name_uq` stays.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tokens', (t) => {
    t.text('name_key');
  });
  let after: string | undefined;
  for (;;) {
    const rows = (await knex('tokens')
      .select('id', 'name')
      .modify((query) => {
        if (after !== undefined) query.where('id', '>', after);
      })
      .orderBy('id')
      .limit(BATCH)) as Array<{ id: string; name: string }>;
    if (rows.length === 0) break;
    const values = rows.map(() => '(?::uuid, ?::text)').join(', ');
    await knex.raw(
      `update tokens set name_key = v.key from (values ${values}) as v(id, key) where tokens.id = v.id`,
      rows.flatMap((r) => [r.id, tokenNameKey(r.name)]),
    );
    after = rows[rows.length - 1]!.id;
  }
  await knex.raw('alter table tokens alter column name_key set not null');
  await knex.raw('create index tokens_org_name_key_idx on tokens (organisation_id, name_key)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists tokens_org_name_key_idx');
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('name_key');
  });
}
