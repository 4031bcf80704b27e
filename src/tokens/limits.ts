// SPEC Part 2 "Network and rate limits per token": the enforcement of `allowed_ips` and `max_tokens_per_hour`.
import { recordAudit } from '../audit/index.js';
import type { Db } from '../db/index.js';
import type { Deps } from '../deps.js';
import type { AuthenticatedClient } from './clients.js';
import { isAddressAllowed } from './networks.js';
import type { ClientRow } from './queries.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** At most one `token.denied_address` event per token per this interval (SPEC). */
const DENIED_AUDIT_INTERVAL_MS = MINUTE_MS;

/**
 * The address check after client authentication, at the token endpoint (before its fast path), introspection and
 * revocation: true when the caller may go on. A resource server, or a token with an empty `allowed_ips`, passes
 * without any work. A token called from `address` (koa's ctx.ip, which follows TRUST_PROXY) outside its
 * allowlist is refused, whatever its secret: the caller answers 401 `invalid_client` (RFC 6749 §5.2), and the
 * organisation's audit log gets `token.denied_address` with the address, at most once per token per minute across
 * instances (a conditional update of `tokens.denied_address_audit_at` decides which request writes it).
 */
export async function checkClientAddress(deps: Deps, client: AuthenticatedClient, address: string): Promise<boolean> {
  if (client.kind !== 'token') return true;
  const networks = client.token.allowed_ips;
  if (!networks || networks.length === 0 || isAddressAllowed(address, networks)) return true;
  await auditDeniedAddress(deps, client.token, address);
  return false;
}

async function auditDeniedAddress(deps: Deps, token: ClientRow, address: string): Promise<void> {
  const now = deps.clock();
  const since = new Date(now.getTime() - DENIED_AUDIT_INTERVAL_MS);
  await deps.db.knex.transaction(async (trx) => {
    const claimed = await trx('tokens')
      .where({ id: token.id })
      .andWhere((w) => w.whereNull('denied_address_audit_at').orWhere('denied_address_audit_at', '<=', since))
      .update({ denied_address_audit_at: now })
      .returning(['id', 'name']);
    const row = (claimed as Array<{ id: string; name: string }>)[0];
    if (!row) return;
    await recordAudit(trx, {
      organisation_id: token.organisation_id,
      actor_id: null,
      actor_email: token.client_id,
      action: 'token.denied_address',
      token_id: token.id,
      token_name: row.name,
      client_id: token.client_id,
      ip: address,
      created_at: now,
      details: { address },
    });
  });
}

/** The start of the minute bucket `at` falls in. */
function minuteOf(at: Date): Date {
  return new Date(Math.floor(at.getTime() / MINUTE_MS) * MINUTE_MS);
}

/** The first bucket still inside the rolling hour that ends in the bucket of `now` (60 buckets in all). */
function windowStart(now: Date): Date {
  return new Date(minuteOf(now).getTime() - HOUR_MS + MINUTE_MS);
}

// One statement, one round trip: increments the current minute's bucket (its row lock orders concurrent requests
// for the token on every instance, and `returning` gives the count after the other requests' increments), and adds
// the older buckets of the hour, which no one changes any more.
const TAKE_SQL = `with up as (
  insert into token_issuance_buckets as b (token_id, minute, count) values (?, ?, 1)
  on conflict (token_id, minute) do update set count = b.count + 1
  returning count
)
select (select count from up)::int + coalesce((
  select sum(count) from token_issuance_buckets where token_id = ? and minute >= ? and minute < ?
), 0)::int as total`;

/** What the hourly limit says about one more access token. */
export type Allowance = { allowed: true; release: () => Promise<void> } | { allowed: false; retryAfterSeconds: number };

const FREE: Allowance = Object.freeze({ allowed: true as const, release: async () => undefined });

/**
 * Takes one access token of the token's `max_tokens_per_hour` (null: no limit, no work, no database access). The
 * count lives in the database (PostgreSQL or the embedded one), in per-minute buckets, so it holds across
 * instances: the increment and the hour's sum are one atomic statement; past the limit the increment is taken
 * back and the answer says in how many seconds (at least 1) enough of the hour's buckets have aged out for one
 * more. `release` gives the token back when the request did not end in an access token after all.
 */
export async function takeAccessTokenAllowance(deps: Deps, token: ClientRow): Promise<Allowance> {
  const limit = token.max_tokens_per_hour;
  if (limit === null || limit === undefined) return FREE;
  const db = deps.db.knex;
  const now = deps.clock();
  const minute = minuteOf(now);
  const start = windowStart(now);
  const result = await db.raw(TAKE_SQL, [token.id, minute, token.id, start, minute]);
  const total = Number((result.rows as Array<{ total: number }>)[0]?.total ?? 0);
  const release = () => giveBack(db, token.id, minute);
  if (total <= limit) return { allowed: true, release };
  await release();
  return { allowed: false, retryAfterSeconds: await secondsUntilAllowed(db, token.id, limit, now) };
}

async function giveBack(db: Db, tokenId: string, minute: Date): Promise<void> {
  await db('token_issuance_buckets').where({ token_id: tokenId, minute }).decrement('count', 1);
}

/** Seconds from `now` until the rolling hour holds fewer than `limit` access tokens of the token. */
async function secondsUntilAllowed(db: Db, tokenId: string, limit: number, now: Date): Promise<number> {
  const buckets = (await db('token_issuance_buckets')
    .select('minute', 'count')
    .where({ token_id: tokenId })
    .andWhere('minute', '>=', windowStart(now))
    .orderBy('minute', 'asc')) as Array<{ minute: Date; count: number }>;
  let total = buckets.reduce((n, b) => n + Number(b.count), 0);
  for (const b of buckets) {
    total -= Number(b.count);
    if (total < limit) {
      // The bucket leaves the window when the window's start passes it: one hour after its minute began.
      const leavesAt = new Date(b.minute).getTime() + HOUR_MS;
      return Math.max(1, Math.ceil((leavesAt - now.getTime()) / 1000));
    }
  }
  return 1;
}

/** Access tokens issued in the rolling hour (SPEC `tokens_last_hour`), by token ID, for tokens with a count. */
export async function countTokensLastHour(db: Db, tokenIds: readonly string[], now: Date): Promise<Map<string, number>> {
  if (tokenIds.length === 0) return new Map();
  const rows = (await db('token_issuance_buckets')
    .select('token_id')
    .sum({ n: 'count' })
    .whereIn('token_id', [...tokenIds])
    .andWhere('minute', '>=', windowStart(now))
    .groupBy('token_id')) as Array<{ token_id: string; n: string | number }>;
  return new Map(rows.map((r) => [r.token_id, Number(r.n)]));
}

/** The prune job: deletes buckets that left the rolling hour. Returns how many. */
export function pruneIssuanceBuckets(db: Db, now: Date): Promise<number> {
  return db('token_issuance_buckets').where('minute', '<', windowStart(now)).delete();
}
