import type { Deps } from '../deps.js';
import { isWellFormedClientId, isWellFormedSecret, verifySecret } from './credentials.js';
import type { ResourceServerRow } from '../db/index.js';
import { findIntrospectionRows, findResourceServerByClientId, findTokenByClientId, type ClientRow } from './queries.js';

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
  if (token) return checkClient(deps, presented, token, undefined);
  return checkClient(deps, presented, undefined, await findResourceServerByClientId(deps.db.knex, clientId));
}

/** authenticateClient's decision on the rows read for the presented client ID (a token's row wins). */
function checkClient(
  deps: Deps,
  presented: PresentedCredentials,
  token: ClientRow | undefined,
  server: Pick<ResourceServerRow, 'id' | 'name' | 'secret_hash'> | undefined,
): AuthenticatedClient | undefined {
  const { clientId, secret } = presented;
  if (token) {
    if (token.expires_at.getTime() - deps.clock().getTime() < MIN_REMAINING_MS) return undefined;
    return verifySecret(secret, token.secret_hash) ? { kind: 'token', clientId, token } : undefined;
  }
  if (!server || !verifySecret(secret, server.secret_hash)) return undefined;
  return { kind: 'resource_server', clientId, resourceServerId: server.id, name: server.name };
}

/** What introspection reads about the token it is asked about (RFC 7662), at the time of the request. */
export interface IntrospectedSubject {
  /** The row of the token's client (its `client_id` claim), or undefined when that token was deleted. */
  client: ClientRow | undefined;
  /** Whether the access token's `jti` was revoked at the revocation endpoint (RFC 7009). */
  revoked: boolean;
}

/**
 * Introspection's reads in one statement (shared with concurrent introspection requests): the caller's
 * credentials are authenticated exactly as authenticateClient does, and the subject token's client row and
 * revocation are read at the same moment. `caller` undefined means `invalid_client`. Every row is read on every
 * call: a revocation or deletion committed before the request is seen.
 */
export async function authenticateForIntrospection(
  deps: Deps,
  presented: PresentedCredentials,
  subject: { clientId: string; jti: string },
): Promise<{ caller: AuthenticatedClient | undefined; subject: IntrospectedSubject }> {
  if (!isWellFormedClientId(presented.clientId) || !isWellFormedSecret(presented.secret)) {
    return { caller: undefined, subject: { client: undefined, revoked: false } };
  }
  const rows = await findIntrospectionRows(deps.db.knex, { clientIds: [presented.clientId, subject.clientId], jti: subject.jti });
  const caller = checkClient(deps, presented, rows.tokens.get(presented.clientId), rows.resourceServers.get(presented.clientId));
  return { caller, subject: { client: rows.tokens.get(subject.clientId), revoked: rows.revoked } };
}

/** introspection's read of a token's client and revocation, for a caller already authenticated. */
export async function findIntrospectedSubject(deps: Deps, subject: { clientId: string; jti: string }): Promise<IntrospectedSubject> {
  const rows = await findIntrospectionRows(deps.db.knex, { clientIds: [subject.clientId], jti: subject.jti });
  return { client: rows.tokens.get(subject.clientId), revoked: rows.revoked };
}
