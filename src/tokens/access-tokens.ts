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

export async function revokeAccessToken(db: Db, token: RevokedAccessToken, now: Date): Promise<void> {
  await q.insertRevokedAccessToken(db, { ...token, revoked_at: now });
}

export function isAccessTokenRevoked(db: Db, jti: string): Promise<boolean> {
  return q.isAccessTokenRevoked(db, jti);
}

export function pruneRevokedAccessTokens(db: Db, now: Date): Promise<number> {
  return q.deleteExpiredRevokedAccessTokens(db, now);
}
