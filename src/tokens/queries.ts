import type { Knex } from 'knex';
import { affectedRows, cursorTimeSql, sharedRead, escapeLike, type Db, type PageKey, type ResourceServerRow, type RevokedAccessTokenRow, type TokenRow } from '../db/index.js';
import { tokenNameKey } from '../text.js';
import type { LifecycleRules } from './resource.js';
import type { TokenStatusFilter } from './schemas.js';

export interface TokenWithCreator extends TokenRow {
  creator_email: string | null;
}

/**
 * How many tokens of the organisation are unexpired at `now` (`expires_at` later than it): what the per-organisation
 * token limit counts. Read it under the organisation's lock.
 */
export async function countActiveTokens(db: Db, organisationId: string, now: Date): Promise<number> {
  const row = await db('tokens')
    .where({ organisation_id: organisationId })
    .andWhere('expires_at', '>', now)
    .count<{ count: number | string }>({ count: '*' })
    .first();
  return Number(row?.count ?? 0);
}

/** Inserts a token; its `name_key` comes from its name here, so no writer can store one that does not match. */
export async function insertToken(db: Db, row: Omit<TokenRow, 'last_used_at' | 'name_key'>): Promise<TokenRow> {
  const jwks = row.jwks === null ? null : typeof row.jwks === 'string' ? row.jwks : JSON.stringify(row.jwks);
  const values = { ...row, name_key: tokenNameKey(row.name), jwks };
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

/** Whether `id` (SHA-256 of issuer and jti) has a live replay-detection entry at `now`, whichever instance wrote it. */
export async function findReplayId(db: Db, id: string, now: Date): Promise<boolean> {
  const row = await db('oauth_replay').select('id').where({ id }).andWhere('expires_at', '>', now).first();
  return row !== undefined;
}

/** Prunes the replay-detection entries expired at `now`; returns how many were deleted. */
export async function deleteExpiredReplayIds(db: Db, now: Date): Promise<number> {
  return affectedRows(await db('oauth_replay').where('expires_at', '<=', now).delete());
}

const withCreator = (db: Db) =>
  db<TokenWithCreator>('tokens as t').leftJoin('admins as a', 'a.id', 't.created_by').select('t.*', 'a.email as creator_email');

/**
 * One token of the organisation with its creator's email (`null` when the creator is gone); undefined for an unknown
 * id or one in another organisation.
 */
export function findTokenById(db: Db, organisationId: string, id: string): Promise<TokenWithCreator | undefined> {
  return withCreator(db).where({ 't.organisation_id': organisationId, 't.id': id }).first();
}

/**
 * The token row with its creator's address, locked until the transaction ends (PATCH and rotation read, check and
 * write it); undefined outside the organisation.
 */
export function lockTokenById(trx: Db, organisationId: string, id: string): Promise<TokenWithCreator | undefined> {
  return withCreator(trx).where({ 't.organisation_id': organisationId, 't.id': id }).forUpdate('t').first() as Promise<TokenWithCreator | undefined>;
}

export type TokenChanges = Partial<Pick<TokenRow, 'name' | 'services' | 'allowed_ips' | 'max_tokens_per_hour'>>;

/** Applies PATCH changes to one token of an organisation; a new name gets its `name_key` with it. */
export async function updateTokenRow(trx: Db, organisationId: string, id: string, changes: TokenChanges): Promise<TokenRow | undefined> {
  const values = changes.name === undefined ? changes : { ...changes, name_key: tokenNameKey(changes.name) };
  const [row] = await trx<TokenRow>('tokens').where({ organisation_id: organisationId, id }).update(values).returning('*');
  return row as TokenRow | undefined;
}

/**
 * The name of another token of the organisation (not `exceptId`) with the name key `nameKey`, or undefined (on
 * tokens_org_name_key_idx). Revoked tokens are deleted, so this is "among tokens not revoked"; expired tokens keep
 * their name.
 */
export async function tokenNamedAlike(db: Db, organisationId: string, nameKey: string, exceptId?: string): Promise<string | undefined> {
  // A token without a key (written by the previous version during a rolling upgrade: migration 0120) is keyed here.
  const query = db('tokens')
    .select('name', 'name_key')
    .where({ organisation_id: organisationId })
    .andWhere((w) => w.where({ name_key: nameKey }).orWhereNull('name_key'));
  if (exceptId !== undefined) query.andWhereNot('id', exceptId);
  const rows = (await query) as Array<{ name: string; name_key: string | null }>;
  return rows.find((r) => (r.name_key ?? tokenNameKey(r.name)) === nameKey)?.name;
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
 * Writes `at` as the token's last use now (never moving it back): true, or false when the token is gone (revoked
 * meanwhile). Its row lock orders it with deleteTokenIfDormantByPolicy's conditional delete.
 */
export async function touchLastUsed(db: Db, id: string, at: Date): Promise<boolean> {
  const rows = await db('tokens').where({ id }).update({ last_used_at: db.raw('greatest(last_used_at, ?::timestamptz)', [at]) }, ['id']);
  return rows.length === 1;
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
    // Names by key, q keyed the same way (`café` in NFC finds it written in NFD, `STRASSE` finds `Straße`); the
    // client ID as typed. `%`, `_` and `\` are literal.
    const nameKey = `%${escapeLike(tokenNameKey(f.q))}%`;
    const clientId = `%${escapeLike(f.q)}%`;
    // A token without a key yet (the previous version wrote it, migration 0120) matches by its name, as before.
    query.andWhere((w) =>
      w
        .whereRaw(`t.name_key like ? escape '\\'`, [nameKey])
        .orWhereRaw(`t.name_key is null and t.name ilike ? escape '\\'`, [clientId])
        .orWhereRaw(`t.client_id ilike ? escape '\\'`, [clientId]),
    );
  }
  if (f.after) query.andWhereRaw('(t.created_at, t.id) < (?::timestamptz, ?::uuid)', [f.after.at, f.after.id]);
  return (await query) as Array<TokenWithCreator & { cursor_at: string }>;
}

/** What authenticating a client needs of its token row. */
export type ClientRow = Pick<
  TokenRow,
  'id' | 'organisation_id' | 'client_id' | 'secret_hash' | 'services' | 'expires_at' | 'auth_method' | 'jwks' | 'require_dpop'
> &
  Partial<Pick<TokenRow, 'allowed_ips' | 'max_tokens_per_hour' | 'last_used_at' | 'created_at'>> & {
  /** The previous secret during a rotation's grace period (SPEC "Secret rotation with overlap"); absent/null when none. */
  prev_secret_hash?: string | null;
  prev_secret_expires_at?: Date | null;
};
const CLIENT_COLUMNS = [
  'id',
  'organisation_id',
  'client_id',
  'secret_hash',
  'services',
  'expires_at',
  'auth_method',
  'jwks',
  'require_dpop',
  'prev_secret_hash',
  'prev_secret_expires_at',
  'allowed_ips',
  'max_tokens_per_hour',
  'last_used_at',
  'created_at',
] as const;
/**
 * The statement findTokenByClientId prepares (`$1`: a text array of client IDs); exported for the bench's EXPLAIN.
 * Columns listed, never `*`: a prepared statement keeps the shape it was prepared with (a new shape, a new name).
 */
export const CLIENT_LOOKUP_SQL = `select ${CLIENT_COLUMNS.join(', ')} from tokens where client_id = any($1::text[])`;

const lookupClient = sharedRead<string, ClientRow, Map<string, ClientRow>, ClientRow | undefined>({
  name: 'sat_client_lookup_v5',
  text: CLIENT_LOOKUP_SQL,
  max: 256,
  values: (ids) => [[...new Set(ids)]],
  index: (rows) => new Map(rows.map((r) => [r.client_id, r])),
  answer: (byId, id) => byId.get(id),
});

/**
 * The OAuth client lookup: one indexed read, on every token request (no cache: revocation is immediate). The
 * hottest query of the server, so it skips the query builder (sharedRead): on PostgreSQL a named prepared
 * statement, and lookups that arrive together share one statement (`client_id = any(…)`, the same unique index):
 * at 32 concurrent requests a few share each round trip. Same rows as `db('tokens').select(…).where({ client_id })`,
 * which a transaction still uses.
 */
export function findTokenByClientId(db: Db, clientId: string): Promise<ClientRow | undefined> {
  if (db.isTransaction) {
    return db('tokens').select([...CLIENT_COLUMNS]).where({ client_id: clientId }).first() as Promise<ClientRow | undefined>;
  }
  return lookupClient(db, clientId);
}

/** What introspecting a token needs to read, by key: client IDs (the caller's, the token's client) and a `jti`. */
export interface IntrospectionQuery {
  clientIds: string[];
  jti?: string | undefined;
}

/** The rows an IntrospectionQuery found: token rows and resource-server rows by client ID, and whether `jti` is revoked. */
export interface IntrospectionRows {
  tokens: Map<string, ClientRow>;
  resourceServers: Map<string, Pick<ResourceServerRow, 'id' | 'name' | 'client_id' | 'secret_hash'>>;
  revoked: boolean;
}

/**
 * One statement for everything an introspection request reads (`$1`: client IDs, `$2`: jtis; exported for the
 * bench's EXPLAIN): each part is a unique-index lookup (tokens_client_id_uq, resource_servers_client_id_uq,
 * revoked_access_tokens' primary key).
 */
export const INTROSPECTION_LOOKUP_SQL = [
  `select 't' as kind, client_id as key, id, organisation_id, secret_hash, services, expires_at, auth_method, jwks, require_dpop, prev_secret_hash, prev_secret_expires_at, null::text as name, allowed_ips, max_tokens_per_hour, last_used_at, created_at from tokens where client_id = any($1::text[])`,
  `select 'r', client_id, id, null, secret_hash, null, null, null, null, null, null, null, name, null, null, null, null from resource_servers where client_id = any($1::text[])`,
  `select 'j', jti, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null from revoked_access_tokens where jti = any($2::text[])`,
].join(' union all ');

interface IntrospectionRow {
  kind: 't' | 'r' | 'j';
  key: string;
  id: string;
  organisation_id: string;
  /** Null for a private_key_jwt token; never null for a resource server. */
  secret_hash: string | null;
  services: string[];
  expires_at: Date;
  auth_method: ClientRow['auth_method'];
  jwks: ClientRow['jwks'];
  require_dpop: boolean;
  prev_secret_hash: string | null;
  prev_secret_expires_at: Date | null;
  name: string;
  allowed_ips: string[] | null;
  max_tokens_per_hour: number | null;
  /** The caller's last use and creation: a quiet caller's use is written at once (dormant.ts). */
  last_used_at: Date | null;
  created_at: Date;
}

const lookupIntrospection = sharedRead<IntrospectionQuery, IntrospectionRow, Map<string, IntrospectionRow>, IntrospectionRows>({
  name: 'sat_introspection_lookup_v5',
  text: INTROSPECTION_LOOKUP_SQL,
  max: 128,
  values: (queries) => [
    [...new Set(queries.flatMap((q) => q.clientIds))],
    [...new Set(queries.flatMap((q) => (q.jti === undefined ? [] : [q.jti])))],
  ],
  // Each part reads a unique column, so kind and key name one row.
  index: (rows) => new Map(rows.map((r) => [`${r.kind}:${r.key}`, r])),
  answer: (byKey, q) => {
    const out: IntrospectionRows = { tokens: new Map(), resourceServers: new Map(), revoked: q.jti !== undefined && byKey.has(`j:${q.jti}`) };
    for (const clientId of q.clientIds) {
      const t = byKey.get(`t:${clientId}`);
      if (t) {
        const { id, organisation_id, secret_hash, services, expires_at, auth_method, jwks, require_dpop, prev_secret_hash, prev_secret_expires_at, allowed_ips, max_tokens_per_hour, last_used_at, created_at } = t;
        out.tokens.set(clientId, {
          id,
          organisation_id,
          client_id: clientId,
          secret_hash,
          services,
          expires_at,
          auth_method,
          jwks,
          require_dpop,
          prev_secret_hash,
          prev_secret_expires_at,
          allowed_ips: allowed_ips ?? [],
          max_tokens_per_hour,
          last_used_at,
          created_at,
        });
      }
      const r = byKey.get(`r:${clientId}`);
      if (r) out.resourceServers.set(clientId, { id: r.id, name: r.name, client_id: clientId, secret_hash: r.secret_hash as string });
    }
    return out;
  },
});

/**
 * Reads, in one statement shared with the introspection requests running at the same time, the token rows and
 * resource-server rows of `clientIds` and whether `jti` was revoked (RFC 7009). Read on every call (revocation
 * and deletion are seen at once). In a transaction, the same reads through knex.
 */
export async function findIntrospectionRows(db: Db, query: IntrospectionQuery): Promise<IntrospectionRows> {
  if (!db.isTransaction) return lookupIntrospection(db, query);
  const out: IntrospectionRows = { tokens: new Map(), resourceServers: new Map(), revoked: false };
  for (const id of new Set(query.clientIds)) {
    const token = await findTokenByClientId(db, id);
    if (token) out.tokens.set(id, token);
    const server = await findResourceServerByClientId(db, id);
    if (server) out.resourceServers.set(id, server);
  }
  if (query.jti !== undefined) out.revoked = await isAccessTokenRevoked(db, query.jti);
  return out;
}

/**
 * Deletes (revokes) the token `id` while one of `secretHashes` is still one of its secrets, the current or the
 * previous one: a leak report acts on the secrets it found. Undefined when the token is gone, or no longer has any of
 * them (revoked, or the secrets retired, in between). The deleted row says which of them it still had.
 */
export async function deleteTokenHoldingSecret(db: Db, organisationId: string, id: string, secretHashes: readonly string[]): Promise<TokenRow | undefined> {
  const [row] = await db<TokenRow>('tokens')
    .where({ organisation_id: organisationId, id })
    .andWhere((w) => w.whereIn('secret_hash', secretHashes).orWhereIn('prev_secret_hash', secretHashes))
    .delete()
    .returning('*');
  return row as TokenRow | undefined;
}

/** Deletes (revokes) one token of the organisation and returns its row; undefined when there is no such token. */
export async function deleteToken(db: Db, organisationId: string, id: string): Promise<TokenRow | undefined> {
  const [row] = await db<TokenRow>('tokens').where({ organisation_id: organisationId, id }).delete().returning('*');
  return row as TokenRow | undefined;
}

/** The email of administrator `adminId`; undefined when there is no such administrator. */
export async function findAdminEmail(db: Db, adminId: string): Promise<string | undefined> {
  const row = await db('admins').select('email').where({ id: adminId }).first();
  return (row as { email?: string } | undefined)?.email;
}

/** RFC 7009: remembers a revoked access token until it would have expired anyway. Revoking twice is a no-op. */
export async function insertRevokedAccessToken(db: Db, row: Omit<RevokedAccessTokenRow, 'revoked_at'> & { revoked_at: Date }): Promise<void> {
  await db<RevokedAccessTokenRow>('revoked_access_tokens').insert(row).onConflict('jti').ignore();
}

/** Whether the access token with this `jti` was revoked (RFC 7009) and its entry not pruned yet. */
export async function isAccessTokenRevoked(db: Db, jti: string): Promise<boolean> {
  const row = await db('revoked_access_tokens').select('jti').where({ jti }).first();
  return row !== undefined;
}

/** The advisory-lock class of lockClientRevocations (its second key is the client ID's hash): a constant of ours. */
const CLIENT_REVOCATIONS_LOCK_CLASS = 7_009;

/**
 * Serialises, until the end of the transaction, the revocations recorded for `clientId` (a transaction-scoped
 * PostgreSQL advisory lock on its hash; a collision only makes two clients wait for each other), so that counting
 * them against the cap and recording one is a single step.
 */
export async function lockClientRevocations(trx: Knex.Transaction, clientId: string): Promise<void> {
  await trx.raw('select pg_advisory_xact_lock(?, hashtext(?))', [CLIENT_REVOCATIONS_LOCK_CLASS, clientId]);
}

/**
 * How many unexpired revoked access tokens `clientId` has, counted up to `limit`, and the soonest of their expiry
 * times (on the (client_id, expires_at) index of migration 0061).
 */
export async function countLiveRevokedAccessTokens(db: Db, clientId: string, now: Date, limit: number): Promise<{ count: number; soonest: Date | undefined }> {
  const rows = (await db('revoked_access_tokens')
    .select('expires_at')
    .where({ client_id: clientId })
    .andWhere('expires_at', '>', now)
    .orderBy('expires_at', 'asc')
    .limit(limit)) as Array<{ expires_at: Date }>;
  return { count: rows.length, soonest: rows[0]?.expires_at };
}

/** Prunes the revoked access tokens that expired at `now` (they are refused as expired anyway); returns how many. */
export async function deleteExpiredRevokedAccessTokens(db: Db, now: Date): Promise<number> {
  return affectedRows(await db('revoked_access_tokens').where('expires_at', '<=', now).delete());
}

/** Inserts a resource server (an introspection caller) and returns the stored row; a database error propagates. */
export async function insertResourceServer(db: Db, row: Omit<ResourceServerRow, 'created_at'> & { created_at: Date }): Promise<ResourceServerRow> {
  const [inserted] = await db<ResourceServerRow>('resource_servers').insert(row).returning('*');
  return inserted as ResourceServerRow;
}

/** Every resource server row, oldest first (ties by id). */
export function listResourceServerRows(db: Db): Promise<ResourceServerRow[]> {
  return db<ResourceServerRow>('resource_servers').select('*').orderBy([{ column: 'created_at' }, { column: 'id' }]);
}

/** Resource servers whose secret hash is one of `hashes`, by hash (leaked-secret reports). */
export async function findResourceServersBySecretHashes(db: Db, hashes: readonly string[]): Promise<Map<string, ResourceServerRow>> {
  if (hashes.length === 0) return new Map();
  const rows = await db<ResourceServerRow>('resource_servers').whereIn('secret_hash', [...hashes]);
  return new Map(rows.map((r) => [r.secret_hash, r]));
}

/** The resource server with this client ID; undefined when there is none. */
export function findResourceServerByClientId(db: Db, clientId: string): Promise<ResourceServerRow | undefined> {
  return db<ResourceServerRow>('resource_servers').where({ client_id: clientId }).first();
}

/** Deletes the resource server `id` and returns its row; undefined when there is no such one. */
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
    // A private_key_jwt token has no secret (secret_hash null), so it never matches.
    if (r.secret_hash !== null && wanted.has(r.secret_hash)) found.set(r.secret_hash, r);
    if (r.prev_secret_hash && wanted.has(r.prev_secret_hash) && r.prev_secret_expires_at && r.prev_secret_expires_at > now) {
      found.set(r.prev_secret_hash, r);
    }
  }
  return found;
}

/**
 * Marks the secret whose hash is `secretHash` (the current or the previous one) of a token kept alive after its
 * leak was reported, keeping that secret's first report time; false when the token is gone. Matched by hash in the
 * update itself, so a rotation committed since the secret was looked up marks the slot it is in now.
 */
export async function markTokenLeaked(db: Db, id: string, secretHash: string, at: Date): Promise<boolean> {
  const n = affectedRows(
    await db('tokens')
      .where({ id })
      .andWhere((w) => w.where('secret_hash', secretHash).orWhere('prev_secret_hash', secretHash))
      .update({
        leaked_at: db.raw('case when secret_hash = ? then coalesce(leaked_at, ?::timestamptz) else leaked_at end', [secretHash, at]),
        prev_secret_leaked_at: db.raw('case when prev_secret_hash = ? then coalesce(prev_secret_leaked_at, ?::timestamptz) else prev_secret_leaked_at end', [
          secretHash,
          at,
        ]),
      }),
  );
  return n > 0;
}
