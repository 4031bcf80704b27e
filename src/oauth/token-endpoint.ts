import { IncomingMessage, type ServerResponse } from 'node:http';
import type { Middleware } from 'koa';
import { errors } from 'oidc-provider';
import type { Deps } from '../deps.js';
import { tokenRequestDuration, tokenRequests } from '../metrics.js';
import {
  AccessTokenAllowance,
  authenticateClient,
  checkClientAddress,
  findAssertionClient,
  isQuietToken,
  NO_LIMIT,
  recordUseOfQuietToken,
  type Allowance,
  type ClientRow,
} from '../tokens/index.js';
import { parseClientCredentials, type ParsedCredentials } from './credentials.js';
import { ClientAuthenticationFailed, NoClientAuthentication, RateLimited, renderOAuthError } from './errors.js';
import type { TokenFastPath } from './fast-path.js';
import { FORM, readForm, type OAuthForm } from './form.js';
import { setAuthenticatedRow } from './provider.js';
import { checkScopeSyntax } from './scope.js';

/** The provider instance in service (it is rebuilt when the signing keys change). */
export interface CurrentProvider {
  callback: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  fastPath: TokenFastPath;
}

/** The outcome oidc-provider gave a token request (set by `recordProviderOutcome`, read once by the endpoint). */
const providerOutcomes = new WeakMap<IncomingMessage, string>();

/** Runs inside each provider instance, around its router: remembers the outcome of /token for the metrics. */
export const recordProviderOutcome: Middleware = async (ctx, next) => {
  await next();
  if (ctx.path !== '/token') return;
  const body = ctx.body as { error?: unknown } | undefined;
  providerOutcomes.set(ctx.req, ctx.status < 400 ? 'ok' : typeof body?.error === 'string' ? body.error : String(ctx.status));
};

/**
 * A form body without its empty parameters (`scope=`, a bare `scope`): SPEC Part 2 and RFC 6749 §3.2 treat them as
 * omitted at every endpoint, as the fast path and our introspection and revocation do, while oidc-provider counts
 * `scope=jobs&scope=` as the parameter twice (400). What it is handed has none, so both paths answer alike. Pure.
 */
export function withoutEmptyParameters(text: string): string {
  return text
    .split('&')
    .filter((pair) => {
      const eq = pair.indexOf('=');
      return eq >= 0 && eq < pair.length - 1;
    })
    .join('&');
}

/**
 * The request as oidc-provider gets it: the same method, URL, headers and socket, with the body the edge already
 * read and decoded (the provider reads it from this stream) as UTF-8 under a plain `application/x-www-form-urlencoded`
 * content type and its own length, so that the provider parses exactly the parameters the edge read (form.ts: one
 * decoding, whatever charset or BOM the client sent), and the Authorization header in the canonical
 * `Basic <token68>` form, because the provider's parser takes exactly one space (lib/shared/client_auth.js).
 */
function replay(original: IncomingMessage, form: OAuthForm, presented: ParsedCredentials): IncomingMessage {
  const req = new IncomingMessage(original.socket);
  req._read = () => undefined; // the bytes are pushed below; never resume the socket for them
  req.method = original.method;
  req.url = original.url;
  // ISSUER's path, when the request came under it (http/common.ts servedUnderIssuerPath): the provider's request URL.
  (req as IncomingMessage & { baseUrl?: string }).baseUrl = (original as IncomingMessage & { baseUrl?: string }).baseUrl;
  req.httpVersion = original.httpVersion;
  req.httpVersionMajor = original.httpVersionMajor;
  req.httpVersionMinor = original.httpVersionMinor;
  req.headers = { ...original.headers };
  req.complete = true; // else IncomingMessage#_destroy, at the end of the stream, would destroy the socket
  if (presented.method === 'client_secret_basic') {
    const basic = `${encodeURIComponent(presented.clientId)}:${encodeURIComponent(presented.secret)}`;
    req.headers.authorization = `Basic ${Buffer.from(basic).toString('base64')}`;
  }
  if (form.text !== undefined) {
    // No charset: the provider then reads the bytes as UTF-8 without dropping a BOM (one was dropped already).
    const body = Buffer.from(withoutEmptyParameters(form.text), 'utf8');
    req.headers['content-type'] = FORM;
    req.headers['content-length'] = String(body.length);
    delete req.headers['transfer-encoding'];
    if (body.length > 0) req.push(body);
  }
  req.push(null);
  return req;
}

/**
 * The row with only the services still in the service catalogue (CONFIG_FILE `services`). A service removed from
 * the catalogue after a token was made with it is no longer granted: the token keeps working for its other
 * services, on both paths (oidc-provider refuses a client registered with a scope it does not know, as
 * `invalid_client_metadata`). None left: `invalid_scope`, naming them. The same row when nothing was removed.
 */
export function withCatalogueServices(row: ClientRow, catalogue: ReadonlySet<string>): ClientRow {
  if (row.services.every((s) => catalogue.has(s))) return row;
  const services = row.services.filter((s) => catalogue.has(s));
  if (services.length === 0) {
    throw new errors.InvalidScope('none of the services of this client is in the service catalogue any more', row.services.join(' '));
  }
  return { ...row, services };
}

/**
 * SPEC "Network and rate limits per token": a client-credentials request of a token with `max_tokens_per_hour`
 * takes one from its hourly count (tokens.AccessTokenAllowance); other grants, and tokens without a limit, cost
 * nothing, and no promise (the limit check is repeated here so that the hot path stays synchronous).
 */
function hourlyAllowance(allowance: AccessTokenAllowance, grantType: unknown, token: ClientRow): Promise<Allowance> | Allowance {
  if (token.max_tokens_per_hour === null || token.max_tokens_per_hour === undefined || grantType !== 'client_credentials') return NO_LIMIT;
  return allowance.take(token);
}

/**
 * POST /token. The edge reads the form (form.ts) and authenticates the client (credentials.ts, then
 * tokens.authenticateClient) before anything else, so every endpoint has one rule: no client authentication is
 * 401 invalid_client (RFC 6749 §5.2), empty parameters are omitted, Basic takes any number of spaces. Resource
 * servers get `unauthorized_client` (they may only introspect). A `scope` that breaks RFC 6749 §3.3 gets a message
 * saying how. Then the fast path answers the plain success case, and oidc-provider everything else: it gets the
 * body as read and decoded here (replay), a canonical Basic header, and the authenticated row for its client lookup.
 * A client assertion (RFC 7523 `private_key_jwt`) is not verified here: the edge finds the `private_key_jwt` token
 * its `sub` names (tokens.findAssertionClient) and oidc-provider verifies it (keys, iss, aud, exp, one-time jti),
 * then calls back for the token's allowed_ips and hourly limit, which are judged only for a verified assertion;
 * such requests, and every DPoP request, never take the fast path (docs/sender-constrained.md).
 * Metrics: `sat_token_requests_total{outcome,path}`, path "fast" when the fast path answered, else "provider"
 * (client-authentication failures included).
 */
export function tokenEndpoint(deps: Deps, current: () => CurrentProvider, hourly = new AccessTokenAllowance(deps)): Middleware {
  const { issuer } = deps.config;
  const catalogue: ReadonlySet<string> = new Set(deps.config.services.map((s) => s.id));
  return async (ctx) => {
    const started = process.hrtime.bigint();
    let path: 'fast' | 'provider' = 'provider';
    let outcome = 'ok';
    try {
      const form = await readForm(ctx);
      const presented = parseClientCredentials(ctx.get('authorization'), form);
      if (!presented) throw new NoClientAuthentication();
      let row: ClientRow;
      if (presented.method === 'private_key_jwt') {
        // RFC 7523: the row the assertion names; oidc-provider verifies the assertion with the row's keys, then runs
        // `admit` below (provider.ts, assertJwtClientAuthClaimsAndHeader): allowed_ips and the hourly limit.
        const named = await findAssertionClient(deps, presented.clientId);
        if (!named) throw new ClientAuthenticationFailed('client authentication failed');
        row = named;
      } else {
        const client = await authenticateClient(deps, presented);
        // SPEC "Network and rate limits per token": outside allowed_ips is invalid_client, whatever the secret.
        if (!client || !(await checkClientAddress(deps, client, ctx.ip))) {
          throw new ClientAuthenticationFailed('client authentication failed');
        }
        if (client.kind === 'resource_server') {
          throw new errors.UnauthorizedClient('resource server credentials may only be used at the introspection endpoint');
        }
        row = client.token;
      }
      // A token unused for about a month gets this use written now, so no instance takes it for dormant: for a secret
      // here (verified, its address checked above); for an assertion in `admit` below, once the provider verified it
      // and its address passed, so that neither a client ID alone nor a refused request keeps a token alive.
      const writeQuietUse = async () => {
        if (isQuietToken(row, deps.clock()) && !(await recordUseOfQuietToken(deps, row))) {
          throw new ClientAuthenticationFailed('client authentication failed');
        }
      };
      if (presented.method !== 'private_key_jwt') await writeQuietUse();
      row = withCatalogueServices(row, catalogue);
      const scope = form.params.scope;
      if (form.params.grant_type === 'client_credentials' && typeof scope === 'string') checkScopeSyntax(scope);

      // The address (for a client assertion: a secret's was checked above) and the hourly limit. A client assertion is
      // verified by oidc-provider, which runs this once it has (provider.ts): an unsigned one trips and uses up nothing.
      const admitted = row;
      let allowance: Allowance = NO_LIMIT;
      const admit = async (problem?: string) => {
        if (presented.method === 'private_key_jwt') {
          const client = { kind: 'token' as const, clientId: admitted.client_id, token: admitted };
          if (!(await checkClientAddress(deps, client, ctx.ip))) throw new ClientAuthenticationFailed('client authentication failed');
          if (problem !== undefined) throw new ClientAuthenticationFailed(problem); // only past the address: see provider.ts
          await writeQuietUse();
        }
        allowance = await hourlyAllowance(hourly, form.params.grant_type, admitted);
        if (!allowance.allowed) {
          // Revoked while this request ran (after its authentication): as any revoked token (SPEC "Errors").
          if (allowance.revoked) throw new ClientAuthenticationFailed('client authentication failed');
          throw new RateLimited(allowance.retryAfterSeconds);
        }
      };
      if (presented.method !== 'private_key_jwt') await admit();

      const { callback, fastPath } = current();
      // Never a client assertion on the fast path (it refuses them too: DPoP, private_key_jwt, require_dpop).
      if (presented.method !== 'private_key_jwt' && (await fastPath.answer(ctx, form, row)) === 'answered') {
        path = 'fast';
        return;
      }
      const req = replay(ctx.req, form, presented);
      setAuthenticatedRow(req, row, presented.method === 'private_key_jwt' ? admit : undefined);
      ctx.respond = false;
      try {
        await callback(req, ctx.res);
      } finally {
        outcome = providerOutcomes.get(req) ?? String(ctx.res.statusCode);
        const taken: Allowance = allowance;
        if (outcome !== 'ok' && taken.allowed) await taken.release();
      }
    } catch (err) {
      outcome = renderOAuthError(ctx, err, issuer, deps.log);
      if (ctx.status >= 500 && ctx.status !== 503) deps.log.error('token endpoint failed', { err, request_id: ctx.state.requestId });
      // CORS as oidc-provider answers its own token errors (lib/shared/cors.js).
      ctx.vary('Origin');
      ctx.set('Access-Control-Allow-Origin', ctx.get('Origin') || '*');
      ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate');
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      tokenRequests.inc({ outcome, path });
      tokenRequestDuration.observe({ outcome, path }, seconds);
    }
  };
}
