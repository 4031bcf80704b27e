import type { Db } from '../db/index.js';
import * as q from './queries.js';

/**
 * One-time use of a client assertion or DPoP proof `jti` (RFC 7523 §3 item 7, RFC 9449 §11.1), on every instance:
 * `key` identifies the issuer and jti (oidc-provider's ReplayDetection id), `expiresAt` is when the JWT could no
 * longer be accepted anyway. True the first time; false when a live entry exists.
 */
export function claimOneTimeUse(db: Db, key: string, expiresAt: Date, now: Date): Promise<boolean> {
  return q.claimReplayId(db, key, expiresAt, now);
}

/** Whether `key` is claimed and still live (oidc-provider's adapter `find`). */
export function isOneTimeUseClaimed(db: Db, key: string, now: Date): Promise<boolean> {
  return q.findReplayId(db, key, now);
}

/** Deletes the entries whose JWTs have expired (the prune job). */
export function pruneOneTimeUses(db: Db, now: Date): Promise<number> {
  return q.deleteExpiredReplayIds(db, now);
}
