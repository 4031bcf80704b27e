import type { TokenRow } from '../db/index.js';
import { jwkThumbprint, type PublicJwk } from './jwks.js';

const DAY_MS = 86_400_000;

/** The token resource of the admin API (SPEC "Admin API", "Credential lifecycle"). Never carries the secret or its hash. */
export interface TokenResource {
  id: string;
  name: string;
  client_id: string;
  services: string[];
  scopes: string;
  status: 'active' | 'expired';
  /** Active and expiring within `expiringSoonDays`. */
  expiring: boolean;
  /** Active and not used for `dormantAfterDays` (since creation when never used). */
  dormant: boolean;
  expires_at: string;
  created_at: string;
  created_by: { id: string; email: string } | null;
  last_used_at: string | null;
  /**
   * When a live secret of this token was first reported leaked while the server kept it alive (notify mode), the
   * earliest when both were; null once no live secret is a reported one (rotated away, retired, grace over).
   */
  leaked_at: string | null;
  /** Normalised addresses and CIDR ranges; empty = any address. */
  allowed_ips: string[];
  /** Access tokens per rolling hour; null = no limit. */
  max_tokens_per_hour: number | null;
  /** How the client authenticates: a client secret, or a JWT signed with one of its keys (RFC 7523). */
  auth_method: 'client_secret' | 'private_key_jwt';
  /** RFC 7638 thumbprints of the registered public keys (`private_key_jwt` only; null for a client secret). */
  jwk_thumbprints: string[] | null;
  /** Access tokens are issued only with a DPoP proof (RFC 9449). */
  require_dpop: boolean;
  /**
   * The live secrets, newest first (SPEC "Secret rotation with overlap"): `expires_at` null for a secret that lives
   * as long as the token; `last4` the secret's last four characters (null for a secret made before rotation existed).
   */
  secrets?: SecretResource[];
  /** Access tokens issued in the last rolling hour, counted for tokens with `max_tokens_per_hour` (else 0). */
  tokens_last_hour: number;
}

export interface SecretResource {
  id: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  last4: string | null;
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/**
 * The live secrets of a token row at `now`, newest first (SPEC "live secrets only"): none once the token has expired
 * (no secret of it works any more); the previous secret of a rotation while its grace period lasts, shown stopping
 * when the token expires if that comes first.
 */
export function secretsOf(row: TokenRow, now: Date): SecretResource[] {
  const out: SecretResource[] = [];
  if (row.expires_at.getTime() <= now.getTime()) return out;
  if (row.secret_id && row.secret_hash) {
    out.push({
      id: row.secret_id,
      created_at: (row.secret_created_at ?? row.created_at).toISOString(),
      expires_at: null,
      last_used_at: iso(row.secret_last_used_at),
      last4: row.secret_last4 ?? null,
    });
  }
  if (row.prev_secret_id && row.prev_secret_hash && row.prev_secret_expires_at && row.prev_secret_expires_at.getTime() > now.getTime()) {
    out.push({
      id: row.prev_secret_id,
      created_at: (row.prev_secret_created_at ?? row.created_at).toISOString(),
      expires_at: new Date(Math.min(row.prev_secret_expires_at.getTime(), row.expires_at.getTime())).toISOString(),
      last_used_at: iso(row.prev_secret_last_used_at),
      last4: row.prev_secret_last4 ?? null,
    });
  }
  return out;
}

/** The earliest first-report time of the token's live secrets (notify mode), or null: `leaked_at`. */
export function leakedAt(row: TokenRow, now: Date): Date | null {
  const current = row.leaked_at ?? null;
  const prevLive = !!row.prev_secret_hash && !!row.prev_secret_expires_at && row.prev_secret_expires_at.getTime() > now.getTime();
  const previous = prevLive ? (row.prev_secret_leaked_at ?? null) : null;
  if (!current || !previous) return current ?? previous;
  return current.getTime() <= previous.getTime() ? current : previous;
}

/** How a token's clients authenticate, as the token resource and the mail notices show it. */
export function keyFacts(row: Pick<TokenRow, 'auth_method' | 'jwks'>): Pick<TokenResource, 'auth_method' | 'jwk_thumbprints'> {
  return {
    auth_method: row.auth_method ?? 'client_secret',
    jwk_thumbprints: row.auth_method === 'private_key_jwt' ? rowJwks(row).map(jwkThumbprint) : null,
  };
}

/** The public keys of a row (jsonb comes back parsed from PostgreSQL, as text from some drivers). */
export function rowJwks(row: Pick<TokenRow, 'jwks'>): PublicJwk[] {
  if (row.jwks === null || row.jwks === undefined) return [];
  const set = (typeof row.jwks === 'string' ? JSON.parse(row.jwks) : row.jwks) as { keys?: PublicJwk[] };
  return Array.isArray(set.keys) ? set.keys : [];
}

/** The day counts behind `expiring` and `dormant` (config `expiringSoonDays`, `dormantAfterDays`). */
export interface LifecycleRules {
  expiringSoonDays: number;
  dormantAfterDays: number;
}

/** toTokenResource's lifecycle rules when none are given: expiring within 7 days, dormant after 90 days unused. */
export const DEFAULT_LIFECYCLE_RULES: LifecycleRules = Object.freeze({ expiringSoonDays: 7, dormantAfterDays: 90 });

/** `active` while `expiresAt` is later than `now`, else `expired` (SPEC "Admin API" token status). Pure. */
export function tokenStatus(expiresAt: Date, now: Date): 'active' | 'expired' {
  return expiresAt.getTime() > now.getTime() ? 'active' : 'expired';
}

/** SPEC "Credential lifecycle": active and expiring within `days` days. */
export function isExpiring(expiresAt: Date, now: Date, days: number): boolean {
  return expiresAt.getTime() > now.getTime() && expiresAt.getTime() <= now.getTime() + days * DAY_MS;
}

/** SPEC "Credential lifecycle": active and unused for `days` days, counted from creation when never used. */
export function isDormant(row: Pick<TokenRow, 'expires_at' | 'created_at' | 'last_used_at'>, now: Date, days: number): boolean {
  const lastActivity = row.last_used_at ?? row.created_at;
  return row.expires_at.getTime() > now.getTime() && lastActivity.getTime() <= now.getTime() - days * DAY_MS;
}

/** The only way a token row leaves the module. */
export function toTokenResource(
  row: TokenRow & { creator_email?: string | null; tokens_last_hour?: number },
  now: Date,
  rules: LifecycleRules = DEFAULT_LIFECYCLE_RULES,
): TokenResource {
  return {
    id: row.id,
    name: row.name,
    client_id: row.client_id,
    services: [...row.services],
    scopes: row.services.join(' '),
    status: tokenStatus(row.expires_at, now),
    expiring: isExpiring(row.expires_at, now, rules.expiringSoonDays),
    dormant: isDormant(row, now, rules.dormantAfterDays),
    expires_at: row.expires_at.toISOString(),
    created_at: row.created_at.toISOString(),
    created_by: row.created_by ? { id: row.created_by, email: row.creator_email ?? '' } : null,
    last_used_at: row.last_used_at ? row.last_used_at.toISOString() : null,
    leaked_at: iso(leakedAt(row, now)),
    allowed_ips: [...(row.allowed_ips ?? [])],
    max_tokens_per_hour: row.max_tokens_per_hour ?? null,
    ...keyFacts(row),
    require_dpop: row.require_dpop ?? false,
    secrets: secretsOf(row, now),
    tokens_last_hour: row.tokens_last_hour ?? 0,
  };
}
