import type { Knex } from 'knex';
import type { Db } from '../db/index.js';
import * as q from './queries.js';

/** RFC 7009: an access token (by its JWT `jti`) revoked by the client it was issued to. */
export interface RevokedAccessToken {
  jti: string;
  client_id: string;
  organisation_id: string;
  /** The JWT's `exp`: after it the record is useless and pruned. */
  expires_at: Date;
}

/**
 * Records the revocation, unless the client already has `maxPerClient` unexpired revocations on record (SPEC
 * Part 2 "Bounded state": a client cannot grow the table without bound). Then nothing is written and the answer
 * says when the soonest of them expires, for RFC 7009 §2.2.1's 503 with Retry-After; a `jti` already on record is
 * recorded whatever the count. With a cap, the count and the record are one transaction under a lock on the
 * client's revocations, so concurrent revocations (on any instance) cannot each see room and together pass the cap;
 * and an instance runs one client's revocations one at a time (oneAtATime), so a client revoking many tokens at once
 * holds one pooled connection, not the pool: other clients' requests never queue behind its lock.
 */
export async function revokeAccessToken(
  db: Knex,
  token: RevokedAccessToken,
  now: Date,
  maxPerClient = Number.POSITIVE_INFINITY,
): Promise<{ recorded: true } | { recorded: false; retryAfterSeconds: number }> {
  if (!Number.isFinite(maxPerClient)) {
    await q.insertRevokedAccessToken(db, { ...token, revoked_at: now });
    return { recorded: true };
  }
  return oneAtATime(token.client_id, () =>
    db.transaction(async (trx) => {
      await q.lockClientRevocations(trx, token.client_id);
      if (await q.isAccessTokenRevoked(trx, token.jti)) return { recorded: true as const };
      const live = await q.countLiveRevokedAccessTokens(trx, token.client_id, now, maxPerClient);
      if (live.count >= maxPerClient) {
        const seconds = live.soonest ? Math.ceil((live.soonest.getTime() - now.getTime()) / 1000) : 1;
        return { recorded: false as const, retryAfterSeconds: Math.max(1, seconds) };
      }
      await q.insertRevokedAccessToken(trx, { ...token, revoked_at: now });
      return { recorded: true as const };
    }),
  );
}

/** The tail of each client's revocations running on this instance (oneAtATime); a key leaves once its tail ends. */
const revocationQueues = new Map<string, Promise<unknown>>();

/** Runs `work` after every earlier call with the same `key` on this instance has settled; its result or error. */
function oneAtATime<T>(key: string, work: () => Promise<T>): Promise<T> {
  const run = (revocationQueues.get(key) ?? Promise.resolve()).then(work, work);
  const tail = run.catch(() => undefined);
  revocationQueues.set(key, tail);
  void tail.then(() => {
    if (revocationQueues.get(key) === tail) revocationQueues.delete(key);
  });
  return run;
}

/** Whether the access token with this JWT `jti` was revoked (RFC 7009) and its record not pruned yet. */
export function isAccessTokenRevoked(db: Db, jti: string): Promise<boolean> {
  return q.isAccessTokenRevoked(db, jti);
}

/** Deletes the revocation records whose access token expired at `now`; returns how many. */
export function pruneRevokedAccessTokens(db: Db, now: Date): Promise<number> {
  return q.deleteExpiredRevokedAccessTokens(db, now);
}
