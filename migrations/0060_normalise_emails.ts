import type { Knex } from 'knex';
import { normaliseEmail } from '../src/text.js';

/**
 * SPEC Part 2 "One identity per administrator": administrators' emails are stored in their one normalised spelling
 * (NFKC, case folded, no format characters; src/accounts/email.ts), so sign-in, the throttle and the unique index
 * all see one identity. Existing rows are rewritten. Two existing administrators whose addresses normalise to the
 * same spelling cannot both keep it: the migration then stops, changes nothing and names them, and the operator
 * decides which account stays (docs/security.md "Upgrading: email clashes").
 */
export async function up(knex: Knex): Promise<void> {
  const rows = (await knex('admins').select('id', 'email').orderBy('created_at')) as Array<{ id: string; email: string }>;
  const byNormal = new Map<string, Array<{ id: string; email: string }>>();
  for (const row of rows) {
    const key = normaliseEmail(row.email);
    byNormal.set(key, [...(byNormal.get(key) ?? []), row]);
  }
  const clashes = [...byNormal.entries()].filter(([, list]) => list.length > 1);
  if (clashes.length > 0) {
    const text = clashes.map(([key, list]) => `${key}: ${list.map((r) => `${JSON.stringify(r.email)} (${r.id})`).join(', ')}`);
    throw new Error(
      `administrators' email addresses that are one identity once normalised (NFKC, case folding): ${text.join('; ')}. ` +
        'Delete or rename all but one of each group, then start again (docs/security.md).',
    );
  }
  for (const [key, [row]] of byNormal) {
    if (row && row.email !== key) await knex('admins').where({ id: row.id }).update({ email: key });
  }
  // Throttle buckets keyed by an old spelling end with their window; new attempts use the normalised key.
}

export async function down(): Promise<void> {
  // The original spellings are not kept; normalised addresses stay valid for the old code.
}
