import type { Knex } from 'knex';
import { affectedRows, batchedLookup, cursorTimeSql, escapeLike, type Db, type PageKey, type ResourceServerRow, type RevokedAccessTokenRow, type TokenRow } from '../db/index.js';

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

export interface TokenFilter {
  q?: string | undefined;
  status?: 'active' | 'expired' | undefined;
  after?: PageKey | undefined;
  limit: number;
  now: Date;
}

/**
 * One page of an organisation's tokens, newest first, plus one row to tell whether another page follows.
 * Every condition sits inside one organisation and the walk follows tokens_org_created_idx
 * (organisation_id, created_at desc, id desc), so the cost does not grow with other organisations' tokens.
 */
export async function listTokenRows(db: Db, organisationId: string, f: TokenFilter): Promise<Array<TokenWithCreator & { cursor_at: string }>> {
  const query = withCreator(db)
    .select(db.raw(`${cursorTimeSql('t.created_at')} as cursor_at`))
    .where('t.organisation_id', organisationId)
    .orderBy([
      { column: 't.created_at', order: 'desc' },
      { column: 't.id', order: 'desc' },
    ])
    .limit(f.limit + 1);
  if (f.status === 'active') query.andWhere('t.expires_at', '>', f.now);
  if (f.status === 'expired') query.andWhere('t.expires_at', '<=', f.now);
  if (f.q) {
    const pattern = `%${escapeLike(f.q)}%`;
    query.andWhere((w) =>
      w.whereRaw(`t.name ilike ? escape '\\'`, [pattern]).orWhereRaw(`t.client_id ilike ? escape '\\'`, [pattern]),
    );
  }
  if (f.after) query.andWhereRaw('(t.created_at, t.id) < (?::timestamptz, ?::uuid)', [f.after.at, f.after.id]);
  return (await query) as Array<TokenWithCreator & { cursor_at: string }>;
}

/** What authenticating a client needs of its token row. */
export type ClientRow = Pick<TokenRow, 'id' | 'organisation_id' | 'client_id' | 'secret_hash' | 'services' | 'expires_at'> & {
  /** The previous secret during a rotation's grace period (SPEC "Secret rotation with overlap"); absent/null when none. */
  prev_secret_hash?: string | null;
  prev_secret_expires_at?: Date | null;
};
const CLIENT_COLUMNS = ['id', 'organisation_id', 'client_id', 'secret_hash', 'services', 'expires_at', 'prev_secret_hash', 'prev_secret_expires_at'] as const;
// Columns listed, never `*`. Exported (with $1) for the bench's EXPLAIN.
export const CLIENT_LOOKUP_SQL = `select ${CLIENT_COLUMNS.join(', ')} from tokens where client_id = any($1::text[])`;

// The same statement through knex (`?` placeholders); the array binds as one PostgreSQL array parameter.
const clientLookup = batchedLookup<string, ClientRow>(
  async (knex, clientIds) =>
    ((await knex.raw(`select ${CLIENT_COLUMNS.join(', ')} from tokens where client_id = any(?::text[])`, [clientIds])) as {
      rows: ClientRow[];
    }).rows,
  (row) => row.client_id,
);

/**
 * The OAuth client lookup: one indexed read, on every token request (no cache: revocation is immediate). The
 * hottest query of the server: lookups that arrive together share one statement (`client_id = any(…)`, the same
 * unique index, db/batch.ts); each is still read after its request arrived, so a revocation committed before it
 * is seen. Inside a transaction it is a plain query on that transaction.
 */
export function findTokenByClientId(db: Db, clientId: string): Promise<ClientRow | undefined> {
  if (db.isTransaction) {
    return db('tokens').select([...CLIENT_COLUMNS]).where({ client_id: clientId }).first() as Promise<ClientRow | undefined>;
  }
  return clientLookup(db as Knex, clientId);
}

export async function deleteToken(db: Db, organisationId: string, id: string): Promise<TokenRow | undefined> {
  const [row] = await db<TokenRow>('tokens').where({ organisation_id: organisationId, id }).delete().returning('*');
  return row as TokenRow | undefined;
}

export async function findAdminEmail(db: Db, adminId: string): Promise<string | undefined> {
  const row = await db('admins').select('email').where({ id: adminId }).first();
  return (row as { email?: string } | undefined)?.email;
}

/** RFC 7009: remembers a revoked access token until it would have expired anyway. Revoking twice is a no-op. */
export async function insertRevokedAccessToken(db: Db, row: Omit<RevokedAccessTokenRow, 'revoked_at'> & { revoked_at: Date }): Promise<void> {
  await db<RevokedAccessTokenRow>('revoked_access_tokens').insert(row).onConflict('jti').ignore();
}

export async function isAccessTokenRevoked(db: Db, jti: string): Promise<boolean> {
  const row = await db('revoked_access_tokens').select('jti').where({ jti }).first();
  return row !== undefined;
}

export async function deleteExpiredRevokedAccessTokens(db: Db, now: Date): Promise<number> {
  return affectedRows(await db('revoked_access_tokens').where('expires_at', '<=', now).delete());
}

export async function insertResourceServer(db: Db, row: Omit<ResourceServerRow, 'created_at'> & { created_at: Date }): Promise<ResourceServerRow> {
  const [inserted] = await db<ResourceServerRow>('resource_servers').insert(row).returning('*');
  return inserted as ResourceServerRow;
}

export function listResourceServerRows(db: Db): Promise<ResourceServerRow[]> {
  return db<ResourceServerRow>('resource_servers').select('*').orderBy([{ column: 'created_at' }, { column: 'id' }]);
}

export function findResourceServerByClientId(db: Db, clientId: string): Promise<ResourceServerRow | undefined> {
  return db<ResourceServerRow>('resource_servers').where({ client_id: clientId }).first();
}

export async function deleteResourceServer(db: Db, id: string): Promise<ResourceServerRow | undefined> {
  const [row] = await db<ResourceServerRow>('resource_servers').where({ id }).delete().returning('*');
  return row as ResourceServerRow | undefined;
}

/**
 * The live (unexpired, not revoked) tokens one of whose secrets hashes to one of `secretHashes`, by the matching
 * hash: one indexed read (tokens_secret_hash_idx) for the whole list. The only place that matches presented secrets
 * to tokens without their client ID (leak reports), so when a token holds two live secrets during a rotation (SPEC
 * "Secret rotation with overlap"), this is the one function to extend: either secret must find the token (keyed by
 * the hash that matched).
 */
export async function findLiveTokensBySecretHashes(db: Db, secretHashes: readonly string[], now: Date): Promise<Map<string, TokenWithCreator>> {
  if (secretHashes.length === 0) return new Map();
  const hashes = [...secretHashes];
  const rows = (await withCreator(db)
    .where((w) =>
      w
        .whereIn('t.secret_hash', hashes)
        .orWhere((p) => p.whereIn('t.prev_secret_hash', hashes).andWhere('t.prev_secret_expires_at', '>', now)),
    )
    .andWhere('t.expires_at', '>', now)) as TokenWithCreator[];
  const found = new Map<string, TokenWithCreator>();
  const wanted = new Set(hashes);
  for (const r of rows) {
    if (wanted.has(r.secret_hash)) found.set(r.secret_hash, r);
    if (r.prev_secret_hash && wanted.has(r.prev_secret_hash) && r.prev_secret_expires_at && r.prev_secret_expires_at > now) {
      found.set(r.prev_secret_hash, r);
    }
  }
  return found;
}

/** Marks a token whose leak was reported but which is kept alive, keeping the first report's time; false when it is gone. */
export async function markTokenLeaked(db: Db, id: string, at: Date): Promise<boolean> {
  const n = affectedRows(await db('tokens').where({ id }).update({ leaked_at: db.raw('coalesce(leaked_at, ?::timestamptz)', [at]) }));
  return n > 0;
}

/** Every administrator's address in the organisation, oldest account first. */
export async function listAdminEmails(db: Db, organisationId: string): Promise<string[]> {
  const rows = (await db('admins').select('email').where({ organisation_id: organisationId }).orderBy('created_at')) as Array<{ email: string }>;
  return rows.map((r) => r.email);
}
