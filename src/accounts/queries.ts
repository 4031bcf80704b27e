import type { AdminRow, Db, OrganisationRow } from '../db/index.js';
import { normaliseEmail } from './email.js';

export const findOrganisationByName = (db: Db, name: string): Promise<OrganisationRow | undefined> =>
  db<OrganisationRow>('organisations').whereRaw('lower(name) = lower(?)', [name]).first();

export const findOrganisationById = (db: Db, id: string): Promise<OrganisationRow | undefined> =>
  db<OrganisationRow>('organisations').where({ id }).first();

export const insertOrganisation = async (db: Db, row: Pick<OrganisationRow, 'id' | 'name'>): Promise<OrganisationRow> => {
  const [inserted] = await db<OrganisationRow>('organisations').insert(row).returning('*');
  return inserted as OrganisationRow;
};

/** Emails are stored normalised (migration 0060), so one indexed equality on the normalised spelling finds the row. */
export const findAdminByEmail = (db: Db, email: string): Promise<AdminRow | undefined> =>
  db<AdminRow>('admins').whereRaw('lower(email) = ?', [normaliseEmail(email)]).first();

export const findAdminById = (db: Db, id: string): Promise<AdminRow | undefined> =>
  db<AdminRow>('admins').where({ id }).first();

export const insertAdmin = async (db: Db, row: Omit<AdminRow, 'created_at'>): Promise<AdminRow> => {
  const [inserted] = await db<AdminRow>('admins').insert({ ...row, email: normaliseEmail(row.email) }).returning('*');
  return inserted as AdminRow;
};

export const countAdmins = async (db: Db): Promise<number> => {
  const row = await db('admins').count<{ count: number | string }>({ count: '*' }).first();
  return Number(row?.count ?? 0);
};
