import { LRUCache } from 'lru-cache';
import type { Client, ClientMetadata } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { rowJwks, type ClientRow } from '../tokens/index.js';

/** Client objects kept at most (least recently used dropped first). */
const CLIENT_INSTANCES = 10_000;

/** Client metadata built from a token row; `org_id`, `token_id`, `expires_at` are extra metadata (provider.ts). */
function toMetadata(row: ClientRow): ClientMetadata {
  // private_key_jwt (RFC 7523): the registered public keys, no secret; oidc-provider verifies the assertion.
  const credentials: Partial<ClientMetadata> =
    row.auth_method === 'private_key_jwt'
      ? { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: rowJwks(row) as NonNullable<ClientMetadata['jwks']>['keys'] } }
      : { token_endpoint_auth_method: 'client_secret_basic', client_secret: row.secret_hash ?? undefined };
  return {
    client_id: row.client_id,
    ...credentials,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    // RFC 9449 §5.2: the token endpoint refuses requests without a DPoP proof (provider.ts answers invalid_dpop_proof).
    dpop_bound_access_tokens: row.require_dpop === true,
    scope: row.services.join(' '),
    org_id: row.organisation_id,
    token_id: row.id,
    expires_at: Math.floor(row.expires_at.getTime() / 1000),
    // Its access tokens are counted by the hourly limit as they are issued (tokens/limits.ts), not by the usage flush.
    hourly_limited: row.max_tokens_per_hour !== null && row.max_tokens_per_hour !== undefined,
  };
}

/** Every row field toMetadata reads, in one string: rows with equal keys give equal metadata (keep them in step). */
function metadataKey(row: ClientRow): string {
  const jwks = row.jwks === null ? '' : typeof row.jwks === 'string' ? row.jwks : JSON.stringify(row.jwks);
  return `${row.client_id} ${row.id} ${row.organisation_id} ${row.expires_at.getTime()} ${row.secret_hash} ${row.services.join(',')} ${row.auth_method} ${row.require_dpop} ${row.max_tokens_per_hour == null ? 0 : 1} ${jwks}`;
}

/**
 * The provider's Client object for an authenticated token row, validated by oidc-provider's Client constructor
 * (invalid metadata throws `invalid_client_metadata`) and reused while the row is unchanged. Used by the provider's
 * client lookup and by the fast path, so both issue for the same Client.
 */
export function createClientFactory(provider: Provider): (row: ClientRow) => Client {
  // lib/models/client.js: `constructor(metadata)`; @types/oidc-provider declares no constructor arguments.
  const ClientModel = provider.Client as typeof provider.Client & (new (metadata: ClientMetadata) => Client);
  // Client objects by the exact row they were built from (an LRU, like oidc-provider's own of 100, but large enough
  // for every active client of a big deployment, and keyed by the row fields instead of a SHA-256 of the serialised
  // metadata). The row is still read on every request (tokens.authenticateClient): a revoked or changed token is
  // never served from here, because its row is gone or its fields, and so the key, differ.
  const instances = new LRUCache<string, Client>({ max: CLIENT_INSTANCES });
  return (row) => {
    const key = metadataKey(row);
    let client = instances.get(key);
    if (client === undefined) {
      client = new ClientModel(toMetadata(row));
      instances.set(key, client);
    }
    return client;
  };
}
