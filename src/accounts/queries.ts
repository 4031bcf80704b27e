import type { AdminRow, Db, OrganisationRow } from '../db/index.js';
import { normaliseEmail } from '../text.js';

/** The organisation with this name, compared case-insensitively (SQL `lower`); undefined when there is none. */
export const findOrganisationByName = (db: Db, name: string): Promise<OrganisationRow | undefined> =>
  db<OrganisationRow>('organisations').whereRaw('lower(name) = lower(?)', [name]).first();

/** The organisation with this id; undefined when there is none. */
export const findOrganisationById = (db: Db, id: string): Promise<OrganisationRow | undefined> =>
  db<OrganisationRow>('organisations').where({ id }).first();

/** Inserts an organisation and returns the stored row; a taken name is a unique violation (organisations_name_uq). */
export const insertOrganisation = async (db: Db, row: Pick<OrganisationRow, 'id' | 'name'>): Promise<OrganisationRow> => {
  const [inserted] = await db<OrganisationRow>('organisations').insert(row).returning('*');
  return inserted as OrganisationRow;
};

/** By identity (normaliseEmail); a pre-0040 row left without a key still matches its exact address, case aside. */
export const findAdminByEmail = (db: Db, email: string): Promise<AdminRow | undefined> =>
  db<AdminRow>('admins')
    .where({ email_key: normaliseEmail(email) })
    .orWhere((w) => w.whereNull('email_key').andWhereRaw('lower(email) = lower(?)', [email.trim()]))
    .orderByRaw('email_key is null')
    .first();

/** The administrator with this id; undefined when there is none. */
export const findAdminById = (db: Db, id: string): Promise<AdminRow | undefined> =>
  db<AdminRow>('admins').where({ id }).first();

/**
 * Inserts an administrator with `email` and `email_key` both set to the normalised address (normaliseEmail) and
 * returns the stored row; an address already in use is a unique violation (admins_email_key_uq).
 */
export const insertAdmin = async (db: Db, row: Omit<AdminRow, 'created_at' | 'email_key'>): Promise<AdminRow> => {
  const email = normaliseEmail(row.email);
  const [inserted] = await db<AdminRow>('admins').insert({ ...row, email, email_key: email }).returning('*');
  return inserted as AdminRow;
};

/** How many administrators the database holds, across every organisation. */
export const countAdmins = async (db: Db): Promise<number> => {
  const row = await db('admins').count<{ count: number | string }>({ count: '*' }).first();
  return Number(row?.count ?? 0);
};
