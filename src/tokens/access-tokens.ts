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
 * says when the soonest of them expires, for RFC 7009 §2.2.1's 503 with Retry-After. With a cap, the count and the
 * record are one transaction under a lock on the client's revocations, so concurrent revocations (on any instance)
 * cannot each see room and together pass the cap.
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
  return db.transaction(async (trx) => {
    await q.lockClientRevocations(trx, token.client_id);
    const live = await q.countLiveRevokedAccessTokens(trx, token.client_id, now, maxPerClient);
    if (live.count >= maxPerClient) {
      const seconds = live.soonest ? Math.ceil((live.soonest.getTime() - now.getTime()) / 1000) : 1;
      return { recorded: false, retryAfterSeconds: Math.max(1, seconds) };
    }
    await q.insertRevokedAccessToken(trx, { ...token, revoked_at: now });
    return { recorded: true };
  });
}

/** Whether the access token with this JWT `jti` was revoked (RFC 7009) and its record not pruned yet. */
export function isAccessTokenRevoked(db: Db, jti: string): Promise<boolean> {
  return q.isAccessTokenRevoked(db, jti);
}

/** Deletes the revocation records whose access token expired at `now`; returns how many. */
export function pruneRevokedAccessTokens(db: Db, now: Date): Promise<number> {
  return q.deleteExpiredRevokedAccessTokens(db, now);
}
