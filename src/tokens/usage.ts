import type { Db } from '../db/index.js';

const MINUTE_MS = 60_000;
/** At most this many (token, minute) counts wait in memory (a long database outage): later new ones are dropped. */
const MAX_PENDING_ISSUED = 100_000;

/**
 * Bookkeeping of access tokens issued, off the hot path: token exchanges record in memory, `flush` (every 5 s, and
 * before an admin call on tokens) writes it in a few statements and never blocks a response. A token authenticated
 * as the caller of introspection or revocation records a use too, with nothing counted (`count` false).
 *
 * - `last_used_at`: at most one update per token and secret per `minIntervalMs`. The token's `last_used_at` is the
 *   latest use of any of its secrets; each live secret keeps its own (`secret_last_used_at`,
 *   `prev_secret_last_used_at`, matched by the hash that authenticated: SPEC "Secret rotation with overlap").
 * - `tokens_last_hour` of tokens without `max_tokens_per_hour` (SPEC "Network and rate limits per token": the token
 *   resource shows it): access tokens issued per token and minute, added to the same `token_issuance_buckets` the
 *   hourly limit counts in. Access tokens of a token that had a limit when they were issued are counted there by
 *   the limit itself (limits.ts), so they are not recorded here (`count` false). One issued without a limit is
 *   written even when the token has a limit by the time of the flush: a limit set on another instance a moment
 *   ago must count what this instance issued in the hour before it.
 */
export class UsageRecorder {
  private pending = new Map<string, { id: string; hash: string | null; at: Date }>();
  private written = new Map<string, number>();
  /** `tokenId minuteMs` → access tokens issued in that minute, not yet written. */
  private issued = new Map<string, number>();
  /** The tokens with counts in `issued` (a lookup per limited request, whatever the number of counts waiting). */
  private issuedTokens = new Set<string>();

  constructor(private readonly minIntervalMs = 60_000) {}

  /**
   * Records an access token issued at `at` (deps.clock() of the caller) to the token `tokenId`, authenticated by the
   * secret whose hash is `secretHash` (when known): a use for `last_used_at` and, when `count` (the token had no
   * hourly limit, which would have counted it already), one more in its minute's count.
   */
  record(tokenId: string, at: Date, secretHash?: string, count = true): void {
    if (count) this.countIssued(tokenId, at);
    const key = secretHash ? `${tokenId} ${secretHash}` : tokenId;
    const last = this.written.get(key);
    if (last !== undefined && at.getTime() - last < this.minIntervalMs) return;
    this.pending.set(key, { id: tokenId, hash: secretHash ?? null, at });
  }

  private countIssued(tokenId: string, at: Date): void {
    const bucket = `${tokenId} ${Math.floor(at.getTime() / MINUTE_MS) * MINUTE_MS}`;
    const count = this.issued.get(bucket);
    if (count !== undefined) this.issued.set(bucket, count + 1);
    else if (this.issued.size < MAX_PENDING_ISSUED) {
      this.issued.set(bucket, 1);
      this.issuedTokens.add(tokenId);
    }
  }

  get size(): number {
    return this.pending.size;
  }

  /**
   * Writes what was recorded: the issued counts, then the last uses. Returns how many last-use entries it wrote.
   * On a database error what was taken stays for the next flush, and the error is thrown.
   */
  async flush(db: Db): Promise<number> {
    await this.flushIssued(db);
    return this.flushLastUsed(db);
  }

  /** Whether access tokens issued to `tokenId` without a limit are counted here and not written yet. */
  hasUnwrittenIssued(tokenId: string): boolean {
    return this.issuedTokens.has(tokenId);
  }

  /**
   * Writes the issued counts of `tokenId` now (the others wait for the next flush): a limit set on the token a moment
   * ago then counts what this instance issued in the hour before it, as SPEC "Network and rate limits per token"
   * promises, not only what a flush had already written. On a database error they stay, and the error is thrown.
   */
  async flushIssuedFor(db: Db, tokenId: string): Promise<void> {
    const prefix = `${tokenId} `;
    const mine = new Map([...this.issued].filter(([key]) => key.startsWith(prefix)));
    this.issuedTokens.delete(tokenId);
    if (mine.size === 0) return;
    for (const key of mine.keys()) this.issued.delete(key);
    await this.writeIssued(db, mine);
  }

  private async flushIssued(db: Db): Promise<void> {
    if (this.issued.size === 0) return;
    const batch = this.issued;
    this.issued = new Map();
    this.issuedTokens = new Set();
    await this.writeIssued(db, batch);
  }

  private async writeIssued(db: Db, batch: Map<string, number>): Promise<void> {
    const ids: string[] = [];
    const minutes: string[] = [];
    const counts: number[] = [];
    for (const [key, n] of batch) {
      const [id, minute] = key.split(' ') as [string, string];
      ids.push(id);
      minutes.push(new Date(Number(minute)).toISOString());
      counts.push(n);
    }
    try {
      // A token revoked meanwhile (its row deleted) is skipped. One given a limit meanwhile is not: its limit counts
      // what was issued before it in the hour.
      await db.raw(
        `insert into token_issuance_buckets as b (token_id, minute, count)
         select u.id, u.minute, u.n from unnest(?::uuid[], ?::timestamptz[], ?::int[]) as u(id, minute, n)
           join tokens t on t.id = u.id
          order by u.id, u.minute
         on conflict (token_id, minute) do update set count = b.count + excluded.count`,
        [ids, minutes, counts],
      );
    } catch (err) {
      for (const [key, n] of batch) {
        this.issued.set(key, (this.issued.get(key) ?? 0) + n); // retried next flush
        this.issuedTokens.add(key.split(' ')[0]!);
      }
      throw err;
    }
  }

  private async flushLastUsed(db: Db): Promise<number> {
    if (this.pending.size === 0) return 0;
    const batch = [...this.pending];
    this.pending = new Map();
    const ids = batch.map(([, u]) => u.id);
    const hashes = batch.map(([, u]) => u.hash ?? ''); // '' matches no hash
    const times = batch.map(([, u]) => u.at.toISOString());
    try {
      // The rows are locked in id order first (as every instance's flush does): two instances flushing the same
      // tokens in different orders would deadlock (40P01) and lose a round of bookkeeping to the retry.
      await db.raw(
        `with u as (select unnest(?::uuid[]) as id, unnest(?::text[]) as hash, unnest(?::timestamptz[]) as at),
              locked as materialized (select t.id from tokens t where t.id in (select u.id from u) order by t.id for no key update)
         update tokens t set
            last_used_at = greatest(t.last_used_at, (select max(u.at) from u where u.id = t.id)),
            secret_last_used_at = greatest(t.secret_last_used_at, (select max(u.at) from u where u.id = t.id and u.hash = t.secret_hash)),
            prev_secret_last_used_at = greatest(t.prev_secret_last_used_at, (select max(u.at) from u where u.id = t.id and u.hash = t.prev_secret_hash))
          where t.id in (select locked.id from locked)`,
        [ids, hashes, times],
      );
    } catch (err) {
      for (const [key, u] of batch) if (!this.pending.has(key)) this.pending.set(key, u); // retried next flush
      throw err;
    }
    for (const [key, u] of batch) this.written.set(key, u.at.getTime());
    if (this.written.size > 100_000) this.written.clear();
    return batch.length;
  }
}
