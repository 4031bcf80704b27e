import { affectedRows, cursorTimeSql, escapeLike, type Db, type PageKey, type RevokedAccessTokenRow, type TokenRow } from '../db/index.js';
import type { LifecycleRules } from './resource.js';
import type { TokenStatusFilter } from './schemas.js';

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

/** The token row, locked until the transaction ends (PATCH reads, checks and writes it). */
export function lockTokenById(trx: Db, organisationId: string, id: string): Promise<TokenRow | undefined> {
  return trx<TokenRow>('tokens').where({ organisation_id: organisationId, id }).forUpdate().first() as Promise<TokenRow | undefined>;
}

export type TokenChanges = Partial<Pick<TokenRow, 'name' | 'services' | 'allowed_ips' | 'max_tokens_per_hour'>>;

export async function updateTokenRow(trx: Db, organisationId: string, id: string, changes: TokenChanges): Promise<TokenRow | undefined> {
  const [row] = await trx<TokenRow>('tokens').where({ organisation_id: organisationId, id }).update(changes).returning('*');
  return row as TokenRow | undefined;
}

/** Active tokens of an organisation whose last use (or creation, when never used) is at or before `cutoff`. */
export async function listDormantTokenIds(db: Db, organisationId: string, now: Date, cutoff: Date): Promise<string[]> {
  return (await db('tokens')
    .where('organisation_id', organisationId)
    .andWhere('expires_at', '>', now)
    .andWhereRaw('coalesce(last_used_at, created_at) <= ?', [cutoff])
    .orderBy('created_at')
    .pluck('id')) as string[];
}

/**
 * Deletes the token only if, at this moment, its organisation's policy still revokes dormant tokens and the token
 * is still active and dormant for that many days. One statement: of several instances racing for the same token,
 * exactly one gets the row back (the others wait for its row lock, then find nothing).
 */
export async function deleteTokenIfDormantByPolicy(
  trx: Db,
  organisationId: string,
  id: string,
  now: Date,
): Promise<(TokenRow & { policy_days: number }) | undefined> {
  const result = await trx.raw(
    `with policy as (select revoke_dormant_after_days as days from organisation_policies where organisation_id = ?)
     delete from tokens t using policy p
      where t.id = ? and t.organisation_id = ? and t.expires_at > ? and p.days is not null
        and coalesce(t.last_used_at, t.created_at) <= ?::timestamptz - make_interval(days => p.days)
      returning t.*, p.days as policy_days`,
    [organisationId, id, organisationId, now, now],
  );
  return (result as { rows: Array<TokenRow & { policy_days: number }> }).rows[0];
}

export interface TokenFilter {
  q?: string | undefined;
  status?: TokenStatusFilter | undefined;
  after?: PageKey | undefined;
  limit: number;
  now: Date;
  /** For `expiring` and `dormant` (config expiringSoonDays, dormantAfterDays). */
  rules: LifecycleRules;
}

const DAY_MS = 86_400_000;

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
  // Both are subsets of the active tokens: (organisation_id, expires_at) bounds them (see migration 0070).
  if (f.status === 'expiring') {
    query.andWhere('t.expires_at', '>', f.now).andWhere('t.expires_at', '<=', new Date(f.now.getTime() + f.rules.expiringSoonDays * DAY_MS));
  }
  if (f.status === 'dormant') {
    query
      .andWhere('t.expires_at', '>', f.now)
      .andWhereRaw('coalesce(t.last_used_at, t.created_at) <= ?', [new Date(f.now.getTime() - f.rules.dormantAfterDays * DAY_MS)]);
  }
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
export type ClientRow = Pick<TokenRow, 'id' | 'organisation_id' | 'client_id' | 'secret_hash' | 'services' | 'expires_at'>;
const CLIENT_COLUMNS = ['id', 'organisation_id', 'client_id', 'secret_hash', 'services', 'expires_at'] as const;
// Columns listed, never `*`: a prepared statement keeps the shape it was prepared with. Exported for the bench's EXPLAIN.
export const CLIENT_LOOKUP_SQL = `select ${CLIENT_COLUMNS.join(', ')} from tokens where client_id = any($1::text[])`;

interface PooledConnection {
  query(q: string | { name: string; text: string; values: unknown[] }, values?: unknown[]): Promise<{ rows: ClientRow[] }>;
}
interface KnexClientInternals {
  config: { client?: unknown };
  acquireConnection(): Promise<PooledConnection>;
  releaseConnection(connection: PooledConnection): Promise<unknown>;
}
interface Lookup {
  clientId: string;
  resolve(row: ClientRow | undefined): void;
  reject(err: unknown): void;
}

/** Lookups waiting for the next statement, per database (knex client); at most MAX_LOOKUPS to a statement. */
const waiting = new WeakMap<KnexClientInternals, Lookup[]>();
const MAX_LOOKUPS = 256;

async function runLookups(client: KnexClientInternals, batch: Lookup[]): Promise<void> {
  try {
    const connection = await client.acquireConnection();
    // Everything that arrived while a connection was found goes into this one statement.
    if (waiting.get(client) === batch) waiting.delete(client);
    try {
      const ids = [...new Set(batch.map((l) => l.clientId))];
      const { rows } =
        client.config.client === 'pg'
          ? await connection.query({ name: 'sat_client_lookup', text: CLIENT_LOOKUP_SQL, values: [ids] })
          : await connection.query(CLIENT_LOOKUP_SQL, [ids]);
      const byId = new Map(rows.map((r) => [r.client_id, r]));
      for (const l of batch) l.resolve(byId.get(l.clientId));
    } finally {
      await client.releaseConnection(connection);
    }
  } catch (err) {
    if (waiting.get(client) === batch) waiting.delete(client);
    for (const l of batch) l.reject(err);
  }
}

/**
 * The OAuth client lookup: one indexed read, on every token request (no cache: revocation is immediate). The
 * hottest query of the server, so it skips the query builder and runs on a pooled connection directly: on
 * PostgreSQL as a named prepared statement (parsed and planned once per connection), on the embedded engine as a
 * parameterised query. Lookups that arrive together share one statement (`client_id = any(…)`, the same unique
 * index): each is still read after its request arrived, so a revocation committed before it is seen, but at 32
 * concurrent requests a few share each round trip. Same rows as `db('tokens').select(…).where({ client_id })`,
 * which a transaction still uses.
 */
export function findTokenByClientId(db: Db, clientId: string): Promise<ClientRow | undefined> {
  if (db.isTransaction) {
    return db('tokens').select([...CLIENT_COLUMNS]).where({ client_id: clientId }).first() as Promise<ClientRow | undefined>;
  }
  const client = (db as unknown as { client: KnexClientInternals }).client;
  let batch = waiting.get(client);
  if (batch === undefined || batch.length >= MAX_LOOKUPS) {
    const next: Lookup[] = [];
    waiting.set(client, next);
    setImmediate(() => void runLookups(client, next));
    batch = next;
  }
  const lookups = batch;
  return new Promise((resolve, reject) => lookups.push({ clientId, resolve, reject }));
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
