import { createHash } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import type { Deps } from '../deps.js';
import { CLIENT_ASSERTION_ALGS } from './jwks.js';
import { rowJwks } from './resource.js';
import { isWellFormedClientId, isWellFormedSecret, verifySecret } from './credentials.js';
import type { ResourceServerRow } from '../db/index.js';
import { claimReplayId, findIntrospectionRows, findResourceServerByClientId, findTokenByClientId, type ClientRow } from './queries.js';

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
    // A private_key_jwt token has no secret (secret_hash null): no secret authenticates it.
    if (token.auth_method !== 'client_secret' || token.secret_hash === null) return undefined;
    // Both live secrets (SPEC "Secret rotation with overlap"), each compared in constant time. The row handed on
    // carries the hash that matched, so oidc-provider's own compare and the last_used_at bookkeeping see that secret.
    if (verifySecret(secret, token.secret_hash)) return { kind: 'token', clientId, token };
    const prev = token.prev_secret_hash;
    if (prev && token.prev_secret_expires_at && token.prev_secret_expires_at.getTime() > deps.clock().getTime() && verifySecret(secret, prev)) {
      return { kind: 'token', clientId, token: { ...token, secret_hash: prev } };
    }
    return undefined;
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

/**
 * The token a client assertion (RFC 7523, `private_key_jwt`) names, before the assertion is verified: a
 * `private_key_jwt` token with at least a second left, read on every call (no cache). oidc-provider then verifies
 * the assertion against the row's keys (signature, iss, sub, aud, exp, one-time jti). Undefined: `invalid_client`.
 */
export async function findAssertionClient(deps: Deps, clientId: string): Promise<ClientRow | undefined> {
  if (!isWellFormedClientId(clientId)) return undefined;
  const token = await findTokenByClientId(deps.db.knex, clientId);
  if (!token || token.auth_method !== 'private_key_jwt' || token.jwks === null) return undefined;
  if (token.expires_at.getTime() - deps.clock().getTime() < MIN_REMAINING_MS) return undefined;
  return token;
}

/** JWT types that name another kind of JWT (RFC 8725 §3.11): a DPoP proof or an access token is no client assertion. */
const OTHER_JWT_TYPES = new Set(['dpop+jwt', 'at+jwt', 'application/at+jwt', 'application/dpop+jwt']);

/**
 * Whether a client assertion's `typ` header allows it to be one (RFC 7523 sets none; RFC 8725 §3.11 explicit
 * typing): absent, `JWT`, or anything but the type of another kind of JWT this server deals in. Pure.
 */
export function isClientAssertionType(typ: unknown): boolean {
  return typ === undefined || (typeof typ === 'string' && !OTHER_JWT_TYPES.has(typ.toLowerCase()));
}

/**
 * Whether every value of a client assertion's `aud` is one of `audiences` (this server's identifiers: the issuer and
 * endpoint URLs). RFC 7523 §3 lets `aud` be an array that merely includes us, but an assertion addressed to us and
 * to another party can be replayed here by that party (the audience-injection attack behind
 * draft-ietf-oauth-rfc7523bis). An array of our own identifiers only stays accepted: openid-client 5 sends
 * `[issuer, token_endpoint]`.
 */
export function namesOnlyUs(aud: unknown, audiences: readonly string[]): boolean {
  const values = Array.isArray(aud) ? aud : [aud];
  return values.length > 0 && values.every((v) => typeof v === 'string' && audiences.includes(v));
}

/** SPEC Part 2: a client assertion's `exp` is at most this far ahead, in seconds. */
export const MAX_ASSERTION_LIFETIME_S = 300;

/**
 * What is wrong with a client assertion whose signature verified, by our rules beyond RFC 7523's signature, `iss`
 * and `exp` checks (SPEC Part 2 "private_key_jwt"): its `typ` names another kind of JWT, `exp` is missing or past
 * or more than MAX_ASSERTION_LIFETIME_S ahead of `nowS` (seconds), `sub` differs from `iss`, or `aud` names anyone
 * but `audiences` (namesOnlyUs). Undefined when none. The answer may say which: the caller holds the client's key
 * (a refusal before the signature is checked says only "client authentication failed"). Pure. (The endpoints find
 * the client by `sub` and check `iss` against it before the signature, oidc-provider and jose alike, so `sub` ≠ `iss`
 * never reaches them through here; the rule stays for any other caller.)
 */
export function assertionClaimsProblem(
  header: { typ?: unknown },
  claims: { exp?: unknown; iss?: unknown; sub?: unknown; aud?: unknown },
  audiences: readonly string[],
  nowS: number,
): string | undefined {
  if (!isClientAssertionType(header.typ)) return 'the client_assertion typ names another kind of JWT';
  if (typeof claims.exp !== 'number' || claims.exp <= nowS) return 'the client_assertion has expired';
  if (claims.exp - nowS > MAX_ASSERTION_LIFETIME_S) return `the client_assertion exp must be at most ${MAX_ASSERTION_LIFETIME_S} seconds ahead`;
  if (claims.sub !== claims.iss) return 'the client_assertion sub must equal its iss (the client ID)';
  if (!namesOnlyUs(claims.aud, audiences)) return 'the client_assertion aud must name this server only';
  return undefined;
}

/**
 * A client assertion refused after its signature verified: `problem`, what is wrong (assertionClaimsProblem), to be
 * told only to a caller whose address `token` allows (else it would learn that the key it holds is good).
 */
export interface RefusedAssertion {
  kind: 'refused';
  problem: string;
  token: ClientRow;
}

/**
 * Seconds a client's clock may run ahead of ours (RFC 7523 §3: "subject to allowable clock skew"): an assertion
 * whose `nbf` (or `iat`) is up to this far in the future is accepted, as clients such as openid-client and
 * oauth4webapi set `nbf` to their own clock's now. `exp` gets no leeway: an expired assertion is refused.
 * oidc-provider's default is the same 15 s.
 */
export const ASSERTION_CLOCK_SKEW_S = 15;
const ASSERTION_ALGS = [...CLIENT_ASSERTION_ALGS.EC, ...CLIENT_ASSERTION_ALGS.RSA];

/**
 * `private_key_jwt` (RFC 7523 §3) at our own endpoints (introspection, revocation), with the rules oidc-provider
 * applies at the token endpoint: signed by one of the token's registered keys, `iss` = `sub` = the client ID, `aud`
 * one of `audiences` (the issuer and endpoint URLs) and nothing else (namesOnlyUs), `exp` present, not past
 * and at most 5 minutes ahead of `deps.clock()`, `nbf` if present at most ASSERTION_CLOCK_SKEW_S ahead,
 * and a `jti` claimed once in the shared replay store (the key oidc-provider uses, so a jti spent at one endpoint
 * is spent at all). Undefined means `invalid_client`; RefusedAssertion too, and says why.
 */
export async function authenticateAssertion(
  deps: Deps,
  presented: { clientId: string; assertion: string },
  audiences: string[],
): Promise<AuthenticatedClient | RefusedAssertion | undefined> {
  const { clientId } = presented;
  const token = await findAssertionClient(deps, clientId);
  if (!token) return undefined;
  const now = deps.clock();
  const verified = await verifyAssertion(token, presented.assertion, audiences, now);
  if (!verified || 'kind' in verified) return verified;
  const key = createHash('sha256').update(`${clientId}${verified.jti}`).digest('base64url');
  if (!(await claimReplayId(deps.db.knex, key, new Date(verified.exp * 1000), now))) return undefined;
  return { kind: 'token', clientId, token };
}

/**
 * authenticateAssertion's checks of the assertion itself against `token`'s registered keys (signature, iss, sub,
 * aud, exp, nbf, a non-empty string `jti`), without claiming that `jti`: its `exp` and `jti` when it passes,
 * RefusedAssertion when the signature verified but assertionClaimsProblem found something, else undefined.
 */
export async function verifyAssertion(
  token: ClientRow,
  assertion: string,
  audiences: string[],
  now: Date,
): Promise<{ exp: number; jti: string } | RefusedAssertion | undefined> {
  const clientId = token.client_id;
  let exp: number;
  let jti: string;
  const nowS = now.getTime() / 1000;
  try {
    const { payload, protectedHeader } = await jwtVerify(assertion, createLocalJWKSet({ keys: rowJwks(token) as JWK[] }), {
      issuer: clientId,
      audience: audiences,
      algorithms: ASSERTION_ALGS,
      currentDate: now,
      clockTolerance: ASSERTION_CLOCK_SKEW_S, // for nbf; exp is checked strictly below
      requiredClaims: ['exp', 'jti'],
    });
    const problem = assertionClaimsProblem(protectedHeader, payload, audiences, nowS);
    if (problem !== undefined) return { kind: 'refused', problem, token };
    exp = payload.exp as number;
    // RFC 7519 §4.1.7: a string; requiredClaims only checks presence (oidc-provider refuses 7, {} and "" too).
    if (typeof payload.jti !== 'string' || payload.jti === '') return undefined;
    jti = payload.jti;
  } catch {
    return undefined;
  }
  return { exp, jti };
}
