import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Deps } from '../deps.js';
import { emptyBody, parseBody, parseQuery } from '../http/validate.js';
import {
  generateToken,
  generateTokenBody,
  getToken,
  listTokens,
  listTokensQuery,
  revokeToken,
  updateTokenCredentials,
  updateTokenCredentialsBody,
} from '../tokens/index.js';
import { adminState } from './auth.js';

/** The service catalogue and the token endpoints (SPEC "Admin API"). Every call is scoped to the admin's organisation. */
export function tokenRoutes(router: Router, deps: Deps, auth: Middleware): void {
  router.get('/services', auth, (ctx) => {
    ctx.body = { items: deps.config.services.map((s) => ({ id: s.id, name: s.name, description: s.description })) };
  });

  router.post('/tokens', auth, async (ctx) => {
    const input = parseBody(ctx, generateTokenBody);
    const token = await generateToken(deps, adminState(ctx).actor, input, { ip: ctx.ip });
    ctx.status = 201;
    ctx.set('Location', `/admin/api/tokens/${token.id}`);
    ctx.body = token;
  });

  router.get('/tokens', auth, async (ctx) => {
    const query = parseQuery(ctx, listTokensQuery);
    ctx.body = await listTokens(deps, adminState(ctx).actor, query);
  });

  router.get('/tokens/:id', auth, async (ctx) => {
    ctx.body = await getToken(deps, adminState(ctx).actor, ctx.params.id ?? '');
  });

  // SPEC Part 2 "Sender-constrained and secretless tokens": replaces jwks, sets require_dpop. (The other PATCH
  // fields, name, services and limits, belong to the lifecycle work; the two bodies merge into one route.)
  router.patch('/tokens/:id', auth, async (ctx) => {
    const input = parseBody(ctx, updateTokenCredentialsBody);
    ctx.body = await updateTokenCredentials(deps, adminState(ctx).actor, ctx.params.id ?? '', input, { ip: ctx.ip });
  });

  router.post('/tokens/:id/revoke', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    ctx.body = await revokeToken(deps, adminState(ctx).actor, ctx.params.id ?? '', { ip: ctx.ip });
  });
}
