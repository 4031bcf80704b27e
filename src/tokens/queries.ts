import { affectedRows, cursorTimeSql, escapeLike, type Db, type PageKey, type ResourceServerRow, type RevokedAccessTokenRow, type TokenRow } from '../db/index.js';

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
  const values = { ...row, jwks: row.jwks === null ? null : typeof row.jwks === 'string' ? row.jwks : JSON.stringify(row.jwks) };
  const [inserted] = await db<TokenRow>('tokens').insert(values as TokenRow).returning('*');
  return inserted as TokenRow;
}

/** Sets the sender-constraint fields of one token of an organisation (PATCH); false when there is no such token. */
export async function updateTokenCredentials(
  db: Db,
  organisationId: string,
  id: string,
  changes: { jwks?: TokenRow['jwks']; require_dpop?: boolean },
): Promise<boolean> {
  const values: Record<string, unknown> = {};
  if (changes.jwks !== undefined) values.jwks = changes.jwks === null ? null : JSON.stringify(changes.jwks);
  if (changes.require_dpop !== undefined) values.require_dpop = changes.require_dpop;
  if (Object.keys(values).length === 0) return true;
  return affectedRows(await db('tokens').where({ organisation_id: organisationId, id }).update(values)) > 0;
}

/**
 * oidc-provider's ReplayDetection, shared by every instance: claims `id` (SHA-256 of issuer and jti) until
 * `expiresAt` in one statement. True when this call claimed it (never seen, or only an expired entry not pruned
 * yet); false when a live entry exists, whichever instance wrote it.
 */
export async function claimReplayId(db: Db, id: string, expiresAt: Date, now: Date): Promise<boolean> {
  const result = await db.raw(
    `insert into oauth_replay (id, expires_at) values (?, ?)
     on conflict (id) do update set expires_at = excluded.expires_at where oauth_replay.expires_at <= ?
     returning id`,
    [id, expiresAt, now],
  );
  return ((result as { rows?: unknown[] }).rows ?? []).length === 1;
}

export async function findReplayId(db: Db, id: string, now: Date): Promise<boolean> {
  const row = await db('oauth_replay').select('id').where({ id }).andWhere('expires_at', '>', now).first();
  return row !== undefined;
}

export async function deleteExpiredReplayIds(db: Db, now: Date): Promise<number> {
  return affectedRows(await db('oauth_replay').where('expires_at', '<=', now).delete());
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
export type ClientRow = Pick<
  TokenRow,
  'id' | 'organisation_id' | 'client_id' | 'secret_hash' | 'services' | 'expires_at' | 'auth_method' | 'jwks' | 'require_dpop'
>;
const CLIENT_COLUMNS = ['id', 'organisation_id', 'client_id', 'secret_hash', 'services', 'expires_at', 'auth_method', 'jwks', 'require_dpop'] as const;
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
          ? await connection.query({ name: 'sat_client_lookup_v2', text: CLIENT_LOOKUP_SQL, values: [ids] })
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
