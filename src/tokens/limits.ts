// SPEC Part 2 "Network and rate limits per token": the enforcement of `allowed_ips` and `max_tokens_per_hour`.
import { recordAudit } from '../audit/index.js';
import { isForeignKeyViolation, type Db } from '../db/index.js';
import type { Deps } from '../deps.js';
import type { AuthenticatedClient } from './clients.js';
import { isAddressAllowed } from './networks.js';
import type { ClientRow } from './queries.js';
import type { UsageRecorder } from './usage.js';

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

// One statement, one round trip: adds `n` to the current minute's bucket (its row lock orders concurrent requests
// for the token on every instance, and `returning` gives the count after the other requests' increments), and adds
// the older buckets of the hour, which no one changes any more.
const TAKE_SQL = `with up as (
  insert into token_issuance_buckets as b (token_id, minute, count) values (?, ?, ?)
  on conflict (token_id, minute) do update set count = b.count + excluded.count
  returning count
)
select (select count from up)::int + coalesce((
  select sum(count) from token_issuance_buckets where token_id = ? and minute >= ? and minute < ?
), 0)::int as total`;

/**
 * What the hourly limit says about one more access token: allowed (with a way to give it back), refused for
 * `retryAfterSeconds`, or `revoked`: the token was revoked (its row deleted) after the request authenticated, so
 * there is nothing left to count against (the caller answers as for any revoked token: 401 invalid_client).
 */
export type Allowance =
  | { allowed: true; release: () => Promise<void> }
  | { allowed: false; retryAfterSeconds: number; revoked?: false }
  | { allowed: false; revoked: true };

const REVOKED: Allowance = Object.freeze({ allowed: false as const, revoked: true as const });

/** The answer for a token without a limit (or a request that takes none): allowed, nothing to give back. */
export const NO_LIMIT: Allowance = Object.freeze({ allowed: true as const, release: async () => undefined });

/**
 * How many access tokens an instance reserves at once for a token with `limit` per hour: 1 (exact, one statement
 * per request) under 200 per hour, else 1 % of the limit, at most 200. A reservation is counted in the database
 * before any of it is used and is only used inside its minute, so the count never goes over the limit. When half
 * of a reservation is used, the instance reserves the next one in the background (so requests do not wait for that
 * statement); what an instance reserved and did not use is given back when it reserves again in a later minute,
 * by the bookkeeping job once its minute is over (releasePastMinutes), when the token's limit changed, or at
 * shutdown (releaseUnused) (until then the hour shows it as used, so another instance near the limit may be
 * refused up to `unusedReservationBound(limit)` early, and `tokens_last_hour` may show it).
 */
export function reservationSize(limit: number): number {
  return limit < 200 ? 1 : Math.min(200, Math.floor(limit / 100));
}

/** The most one instance may hold reserved and unused for a token with `limit` per hour: half a reservation, plus
 * the next one reserved ahead (0 on the exact path). */
export function unusedReservationBound(limit: number): number {
  const size = reservationSize(limit);
  return size === 1 ? 0 : size + Math.ceil(size / 2);
}

interface Reservation {
  minute: number;
  /** The token's max_tokens_per_hour when it was reserved: a changed limit voids it. */
  limit: number;
  reserved: number;
  used: number;
  /** The next reservation is being counted in the database (at most one at a time). */
  extending: boolean;
  /** The limit refused a reservation ahead this minute: use what is left, then count one by one. */
  full: boolean;
}

/**
 * The hourly limit of SPEC "Network and rate limits per token", one per server instance (it keeps the instance's
 * reservations). `take(row)`: one access token of the token's `max_tokens_per_hour` (null: no limit, no work, no
 * database access). The count lives in the database (PostgreSQL or the embedded one), in per-minute buckets, so it
 * holds across instances: an increment and the hour's sum are one atomic statement. Past the limit the increment
 * is taken back and the answer says in how many seconds (at least 1) enough of the hour's buckets have aged out
 * for one more. `release` gives the token back when the request did not end in an access token after all. A token
 * revoked after the request authenticated is answered `revoked` (its count's row can no longer refer to it).
 */
export class AccessTokenAllowance {
  private readonly reservations = new Map<string, Reservation>();
  private readonly pending = new Map<string, Promise<void>>();
  /** Reservations being extended in the background (awaited by releaseUnused). */
  private readonly extensions = new Set<Promise<void>>();

  /**
   * `unlimitedUse`: this instance's bookkeeping of access tokens issued while a token had no limit (UsageRecorder),
   * written for a token before its first count under a limit, so a limit set a moment ago counts them.
   */
  constructor(
    private readonly deps: Pick<Deps, 'db' | 'clock'>,
    private readonly unlimitedUse?: Pick<UsageRecorder, 'hasUnwrittenIssued' | 'flushIssuedFor'>,
  ) {}

  async take(token: ClientRow): Promise<Allowance> {
    try {
      return await this.takeOne(token);
    } catch (err) {
      // The count's row refers to the token's: a revocation that committed after the request authenticated (the
      // authentication read the row without locking it) makes the insert fail its foreign key (PostgreSQL 23503).
      if (isForeignKeyViolation(err)) return REVOKED;
      throw err;
    }
  }

  private async takeOne(token: ClientRow): Promise<Allowance> {
    const limit = token.max_tokens_per_hour;
    if (limit === null || limit === undefined) return NO_LIMIT;
    if (this.unlimitedUse?.hasUnwrittenIssued(token.id)) await this.unlimitedUse.flushIssuedFor(this.deps.db.knex, token.id);
    const size = reservationSize(limit);
    // Reserved under another limit (changed since, on any instance): given back, so the new limit counts only
    // what was issued (a lowered limit would otherwise be passed by the rest of it, or refuse on its phantom count).
    const held = this.reservations.get(token.id);
    if (held && held.limit !== limit) await this.drop(token.id, held);
    if (size === 1) return takeExactly(this.deps, token.id, limit, 1);
    for (;;) {
      const minute = minuteOf(this.deps.clock()).getTime();
      const r = this.reservations.get(token.id);
      if (r && r.minute === minute && r.limit === limit && r.used < r.reserved) {
        r.used++;
        if (!r.extending && !r.full && r.reserved - r.used <= size / 2) this.extend(token.id, limit, size, r);
        return { allowed: true, release: async () => this.giveBackOne(token.id, r) };
      }
      const inFlight = this.pending.get(token.id);
      if (inFlight) {
        await inFlight;
        continue;
      }
      let answer: Allowance | undefined;
      const work = this.reserve(token.id, limit, size, r).then((a) => {
        answer = a;
      });
      this.pending.set(token.id, work);
      try {
        await work;
      } finally {
        this.pending.delete(token.id);
      }
      if (answer) return answer;
    }
  }

  /** Gives back what the last reservation left unused, reserves `size` (or, near the limit, exactly one). */
  private async reserve(tokenId: string, limit: number, size: number, last: Reservation | undefined): Promise<Allowance | undefined> {
    this.reservations.delete(tokenId);
    if (last && last.reserved > last.used) await giveBack(this.deps.db.knex, tokenId, new Date(last.minute), last.reserved - last.used);
    if (this.reservations.size > 10_000) this.sweep();
    const now = this.deps.clock();
    const minute = minuteOf(now);
    const total = await addToBucket(this.deps.db.knex, tokenId, now, size);
    if (total <= limit) {
      this.reservations.set(tokenId, { minute: minute.getTime(), limit, reserved: size, used: 0, extending: false, full: false });
      return undefined; // the caller takes one from it
    }
    await giveBack(this.deps.db.knex, tokenId, minute, size);
    return takeExactly(this.deps, tokenId, limit, 1);
  }

  /**
   * Reserves the next `size` for `r` in the background, while requests still use what is left of it: counted in
   * the database first, then added to `r` if it is still this instance's reservation for that minute; given back
   * otherwise, and when it would go over the limit (then `r` is used up and the token is counted one by one).
   * A failed statement leaves `r` as it was (the next request that finds it used up reserves in the foreground).
   */
  private extend(tokenId: string, limit: number, size: number, r: Reservation): void {
    const now = this.deps.clock();
    if (minuteOf(now).getTime() !== r.minute) return;
    r.extending = true;
    const db = this.deps.db.knex;
    const minute = new Date(r.minute);
    const extension = addToBucket(db, tokenId, now, size)
      .then(async (total) => {
        if (total <= limit && this.reservations.get(tokenId) === r && minuteOf(this.deps.clock()).getTime() === r.minute) {
          r.reserved += size;
          return;
        }
        if (total > limit) r.full = true;
        await giveBack(db, tokenId, minute, size);
      })
      .catch(() => undefined) // nothing counted, or the count stays too high until the hour passes: never too low
      .finally(() => {
        r.extending = false;
        this.extensions.delete(extension);
      });
    this.extensions.add(extension);
  }

  private async giveBackOne(tokenId: string, r: Reservation): Promise<void> {
    if (this.reservations.get(tokenId) === r && r.used > 0) r.used--;
    else await giveBack(this.deps.db.knex, tokenId, new Date(r.minute), 1);
  }

  /**
   * Shutdown (SPEC "Operations": pending bookkeeping is flushed): gives back what this instance reserved and did
   * not use, after the reservations being extended have settled, so the hour's count that the other instances and
   * `tokens_last_hour` read is exact again. Call once no request runs any more. Returns how many were given back.
   */
  async releaseUnused(): Promise<number> {
    await Promise.all([...this.extensions, ...this.pending.values()].map((p) => p.catch(() => undefined)));
    const held = [...this.reservations];
    this.reservations.clear(); // a release after this one gives back in the database (giveBackOne)
    let released = 0;
    for (const [tokenId, r] of held) {
      const unused = r.reserved - r.used;
      if (unused <= 0) continue;
      await giveBack(this.deps.db.knex, tokenId, new Date(r.minute), unused);
      released += unused;
    }
    return released;
  }

  /** Takes `r` out of this instance's reservations and gives back what it left unused. */
  private async drop(tokenId: string, r: Reservation): Promise<void> {
    if (this.reservations.get(tokenId) !== r) return;
    this.reservations.delete(tokenId); // an extension still in flight sees it gone and gives itself back
    const unused = r.reserved - r.used;
    r.reserved = r.used; // a later giveBackOne for it goes to the database
    if (unused > 0) await giveBack(this.deps.db.knex, tokenId, new Date(r.minute), unused);
  }

  /**
   * The bookkeeping job (every 5 s): gives back what reservations of minutes already over left unused, so an
   * instance that sees no more requests for a token does not hold part of its hour for the rest of the hour (the
   * other instances would be refused that much early, or, after the limit was lowered, entirely). Returns how many.
   */
  async releasePastMinutes(): Promise<number> {
    const minute = minuteOf(this.deps.clock()).getTime();
    let released = 0;
    for (const [tokenId, r] of [...this.reservations]) {
      if (r.minute === minute || r.extending) continue;
      released += Math.max(0, r.reserved - r.used);
      await this.drop(tokenId, r);
    }
    return released;
  }

  /** Forgets reservations of past minutes (their unused part stays counted until it leaves the hour). */
  private sweep(): void {
    const minute = minuteOf(this.deps.clock()).getTime();
    for (const [id, r] of this.reservations) if (r.minute !== minute) this.reservations.delete(id);
  }
}

async function addToBucket(db: Db, tokenId: string, now: Date, n: number): Promise<number> {
  const minute = minuteOf(now);
  const result = await db.raw(TAKE_SQL, [tokenId, minute, n, tokenId, windowStart(now), minute]);
  return Number((result.rows as Array<{ total: number }>)[0]?.total ?? 0);
}

/** The exact path: `n` (1) access tokens counted in the database by one statement, or refused. */
async function takeExactly(deps: Pick<Deps, 'db' | 'clock'>, tokenId: string, limit: number, n: number): Promise<Allowance> {
  const db = deps.db.knex;
  const now = deps.clock();
  const minute = minuteOf(now);
  const total = await addToBucket(db, tokenId, now, n);
  const release = () => giveBack(db, tokenId, minute, n);
  if (total <= limit) return { allowed: true, release };
  await release();
  return { allowed: false, retryAfterSeconds: await secondsUntilAllowed(db, tokenId, limit, now) };
}

async function giveBack(db: Db, tokenId: string, minute: Date, n: number): Promise<void> {
  await db('token_issuance_buckets').where({ token_id: tokenId, minute }).decrement('count', n);
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
