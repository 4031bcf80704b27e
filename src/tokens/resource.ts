import type { TokenRow } from '../db/index.js';
import { jwkThumbprint, type PublicJwk } from './jwks.js';

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
  /** How the client authenticates: a client secret, or a JWT signed with one of its keys (RFC 7523). */
  auth_method: 'client_secret' | 'private_key_jwt';
  /** RFC 7638 thumbprints of the registered public keys (`private_key_jwt` only; null for a client secret). */
  jwk_thumbprints: string[] | null;
  /** Access tokens are issued only with a DPoP proof (RFC 9449). */
  require_dpop: boolean;
}

/** The public keys of a row (jsonb comes back parsed from PostgreSQL, as text from some drivers). */
export function rowJwks(row: Pick<TokenRow, 'jwks'>): PublicJwk[] {
  if (row.jwks === null || row.jwks === undefined) return [];
  const set = (typeof row.jwks === 'string' ? JSON.parse(row.jwks) : row.jwks) as { keys?: PublicJwk[] };
  return Array.isArray(set.keys) ? set.keys : [];
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
    auth_method: row.auth_method ?? 'client_secret',
    jwk_thumbprints: row.auth_method === 'private_key_jwt' ? rowJwks(row).map(jwkThumbprint) : null,
    require_dpop: row.require_dpop ?? false,
  };
}
