import type { Knex } from 'knex';
import { tokenNameKey } from '../src/text.js';

const BATCH = 500;

/**
 * SPEC "Admin API" (name unique in the organisation, case-insensitive) and Part 2 "Names are text that displays as
 * written": `tokens.name_key`, the name's key (src/text.ts tokenNameKey: NFKC, full case folding), which the name
 * check and the list's `q` compare instead of `lower(name)`. Existing rows are keyed here, in batches (the key is
 * JavaScript's Unicode, not the database's). The index on (organisation_id, name_key) is not unique: names written
 * before may already share a key (`café` in NFC and NFD), and both are kept as they are; the check under the
 * organisation lock refuses a new clash. `tokens_org_name_uq` stays. The column is nullable, for the previous
 * version during a rolling upgrade (below).
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
  await knex.raw('create index tokens_org_name_key_idx on tokens (organisation_id, name_key)');
  // Rolling upgrades: an instance of the previous version, still running beside this one, inserts tokens without a
  // key (the column stays nullable for it) and renames them without changing the key. A rename that leaves the key
  // as it was clears it, so a key is never stale; a token without one is compared by its name (isNameKeyTaken, q).
  await knex.raw(`create function tokens_name_key_stale() returns trigger language plpgsql as $$
    begin
      if new.name is distinct from old.name and new.name_key is not distinct from old.name_key then
        new.name_key := null;
      end if;
      return new;
    end $$`);
  await knex.raw(
    'create trigger tokens_name_key_stale before update of name on tokens for each row execute function tokens_name_key_stale()',
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists tokens_name_key_stale on tokens');
  await knex.raw('drop function if exists tokens_name_key_stale()');
  await knex.raw('drop index if exists tokens_org_name_key_idx');
  await knex.schema.alterTable('tokens', (t) => {
    t.dropColumn('name_key');
  });
}
