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
  };
}
