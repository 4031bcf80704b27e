import type { Db, TokenRow } from '../db/index.js';

export interface TokenWithCreator extends TokenRow {
  creator_email: string | null;
}

/** Serialises generate calls of one organisation (SPEC: the limit holds under concurrency). */
export async function lockOrganisation(trx: Db, organisationId: string): Promise<boolean> {
  const row = await trx('organisations').select('id').where({ id: organisationId }).forUpdate().first();
  return row !== undefined;
}

export async function countActiveTokens(db: Db, organisationId: string, now: Date): Promise<number> {
  const row = await db('tokens')
    .where({ organisation_id: organisationId })
    .andWhere('expires_at', '>', now)
    .count<{ count: number | string }>({ count: '*' })
    .first();
  return Number(row?.count ?? 0);
}

export async function insertToken(db: Db, row: Omit<TokenRow, 'last_used_at'>): Promise<TokenRow> {
  const [inserted] = await db<TokenRow>('tokens').insert(row).returning('*');
  return inserted as TokenRow;
}

const withCreator = (db: Db) =>
  db<TokenWithCreator>('tokens as t').leftJoin('admins as a', 'a.id', 't.created_by').select('t.*', 'a.email as creator_email');

export function findTokenById(db: Db, organisationId: string, id: string): Promise<TokenWithCreator | undefined> {
  return withCreator(db).where({ 't.organisation_id': organisationId, 't.id': id }).first();
}

/** The OAuth client lookup: one indexed read, on every token request (no cache: revocation is immediate). */
export function findTokenByClientId(db: Db, clientId: string): Promise<TokenRow | undefined> {
  return db<TokenRow>('tokens').where({ client_id: clientId }).first();
}

export async function deleteToken(db: Db, organisationId: string, id: string): Promise<TokenRow | undefined> {
  const [row] = await db<TokenRow>('tokens').where({ organisation_id: organisationId, id }).delete().returning('*');
  return row as TokenRow | undefined;
}
