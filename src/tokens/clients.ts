import type { Deps } from '../deps.js';
import { isWellFormedClientId, isWellFormedSecret, verifySecret } from './credentials.js';
import { findResourceServerByClientId, findTokenByClientId, type ClientRow } from './queries.js';

/** Credentials a request presented (the edge parses them: HTTP Basic or the form, RFC 6749 §2.3.1). */
export interface PresentedCredentials {
  clientId: string;
  secret: string;
}

/** An authenticated OAuth client: a system access token of an organisation, or a resource server of the platform. */
export type AuthenticatedClient =
  | { kind: 'token'; clientId: string; token: ClientRow }
  | { kind: 'resource_server'; clientId: string; resourceServerId: string; name: string };

/** A token with less than this left cannot authenticate: its access token would live under a second. */
const MIN_REMAINING_MS = 1_000;

/**
 * The one client authentication of the server, used by the token endpoint (fast path and oidc-provider's client
 * lookup) and by introspection and revocation. Checks format and checksum first (no database read for a made-up
 * secret), then reads the token row on every call (no cache: a revoked token fails at once), refuses a token with
 * less than a second left at `deps.clock()`, and compares SHA-256 hashes in constant time. A client ID that is no
 * token's is looked up among the resource servers. Undefined means RFC 6749 §5.2 `invalid_client`.
 */
export async function authenticateClient(deps: Deps, presented: PresentedCredentials): Promise<AuthenticatedClient | undefined> {
  const { clientId, secret } = presented;
  if (!isWellFormedClientId(clientId) || !isWellFormedSecret(secret)) return undefined;
  const token = await findTokenByClientId(deps.db.knex, clientId);
  if (token) {
    if (token.expires_at.getTime() - deps.clock().getTime() < MIN_REMAINING_MS) return undefined;
    // Both live secrets (SPEC "Secret rotation with overlap"), each compared in constant time. The row handed on
    // carries the hash that matched, so oidc-provider's own compare and the last_used_at bookkeeping see that secret.
    if (verifySecret(secret, token.secret_hash)) return { kind: 'token', clientId, token };
    const prev = token.prev_secret_hash;
    if (prev && token.prev_secret_expires_at && token.prev_secret_expires_at.getTime() > deps.clock().getTime() && verifySecret(secret, prev)) {
      return { kind: 'token', clientId, token: { ...token, secret_hash: prev } };
    }
    return undefined;
  }
  const server = await findResourceServerByClientId(deps.db.knex, clientId);
  if (!server || !verifySecret(secret, server.secret_hash)) return undefined;
  return { kind: 'resource_server', clientId, resourceServerId: server.id, name: server.name };
}
