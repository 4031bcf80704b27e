import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Middleware } from 'koa';
import { errors } from 'oidc-provider';
import type { Deps } from '../deps.js';
import { tokenRequestDuration, tokenRequests } from '../metrics.js';
import { authenticateClient } from '../tokens/index.js';
import { parseClientCredentials } from './credentials.js';
import { ClientAuthenticationFailed, renderOAuthError } from './errors.js';
import type { TokenFastPath } from './fast-path.js';
import { readForm } from './form.js';
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
 * POST /token. The edge reads the form (form.ts) and authenticates the client (credentials.ts, then
 * tokens.authenticateClient) before anything else, so every endpoint has one rule: no client authentication is
 * 401 invalid_client (RFC 6749 §5.2), empty parameters are omitted, Basic takes any number of spaces. Resource
 * servers get `unauthorized_client` (they may only introspect). A `scope` that breaks RFC 6749 §3.3 gets a message
 * saying how. Then the fast path answers the plain success case, and oidc-provider everything else: it gets the
 * parsed form (as `req.body`), a canonical Basic header, and the authenticated row for its client lookup.
 * Metrics: `sat_token_requests_total{outcome,path}`, path "fast" when the fast path answered, else "provider"
 * (client-authentication failures included).
 */
export function tokenEndpoint(deps: Deps, current: () => CurrentProvider): Middleware {
  const { issuer } = deps.config;
  return async (ctx) => {
    const started = process.hrtime.bigint();
    let path: 'fast' | 'provider' = 'provider';
    let outcome = 'ok';
    try {
      const form = await readForm(ctx);
      const presented = parseClientCredentials(ctx.get('authorization'), form);
      if (!presented) throw new ClientAuthenticationFailed('no client authentication mechanism provided', true);
      const client = await authenticateClient(deps, presented);
      if (!client) throw new ClientAuthenticationFailed('client authentication failed', presented.method === 'client_secret_basic');
      if (client.kind === 'resource_server') {
        throw new errors.UnauthorizedClient('resource server credentials may only be used at the introspection endpoint');
      }
      const scope = form.params.scope;
      if (form.params.grant_type === 'client_credentials' && typeof scope === 'string') checkScopeSyntax(scope);

      const { callback, fastPath } = current();
      const result = await fastPath.answer(ctx, form, client.token);
      if (result === 'answered') {
        path = 'fast';
        return;
      }
      // oidc-provider reads `req.body` when the stream was consumed (lib/shared/selective_body.js), and parses the
      // Authorization header with exactly one space (lib/shared/client_auth.js): give it both in canonical form.
      const req: IncomingMessage & { body?: unknown } = ctx.req;
      req.body = form.params;
      if (presented.method === 'client_secret_basic') {
        const encode = (v: string) => encodeURIComponent(v);
        req.headers.authorization = `Basic ${Buffer.from(`${encode(presented.clientId)}:${encode(presented.secret)}`).toString('base64')}`;
      }
      setAuthenticatedRow(ctx.req, client.token);
      ctx.respond = false;
      await callback(ctx.req, ctx.res);
      outcome = providerOutcomes.get(ctx.req) ?? String(ctx.res.statusCode);
    } catch (err) {
      outcome = renderOAuthError(ctx, err, issuer);
      if (ctx.status >= 500) deps.log.error('token endpoint failed', { err, request_id: ctx.state.requestId });
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
