import type { TokenRow } from '../db/index.js';

/** The token resource of the admin API (SPEC "Admin API"). Never carries the secret or its hash. */
export interface TokenResource {
  id: string;
  name: string;
  client_id: string;
  services: string[];
  scopes: string;
  status: 'active' | 'expired';
  expires_at: string;
  created_at: string;
  created_by: { id: string; email: string } | null;
  last_used_at: string | null;
  /** When a leak of this token's secret was reported while the server kept it alive (notify mode); else null. */
  leaked_at: string | null;
  /**
   * The live secrets, newest first (SPEC "Secret rotation with overlap"): `expires_at` null for a secret that lives
   * as long as the token; `last4` the secret's last four characters (null for a secret made before rotation existed).
   */
  secrets?: SecretResource[];
}

export interface SecretResource {
  id: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  last4: string | null;
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/** The live secrets of a token row at `now`, newest first. */
export function secretsOf(row: TokenRow, now: Date): SecretResource[] {
  const out: SecretResource[] = [];
  if (row.secret_id) {
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
      expires_at: row.prev_secret_expires_at.toISOString(),
      last_used_at: iso(row.prev_secret_last_used_at),
      last4: row.prev_secret_last4 ?? null,
    });
  }
  return out;
}

export function tokenStatus(expiresAt: Date, now: Date): 'active' | 'expired' {
  return expiresAt.getTime() > now.getTime() ? 'active' : 'expired';
}

/** The only way a token row leaves the module. */
export function toTokenResource(row: TokenRow & { creator_email?: string | null }, now: Date): TokenResource {
  return {
    id: row.id,
    name: row.name,
    client_id: row.client_id,
    services: [...row.services],
    scopes: row.services.join(' '),
    status: tokenStatus(row.expires_at, now),
    expires_at: row.expires_at.toISOString(),
    created_at: row.created_at.toISOString(),
    created_by: row.created_by ? { id: row.created_by, email: row.creator_email ?? '' } : null,
    last_used_at: row.last_used_at ? row.last_used_at.toISOString() : null,
    leaked_at: row.leaked_at ? row.leaked_at.toISOString() : null,
    secrets: secretsOf(row, now),
  };
}
