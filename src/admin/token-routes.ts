import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Deps } from '../deps.js';
import { emptyBody, parseBody, parseBodyWithRules, parseQuery } from '../http/validate.js';
import {
  generateToken,
  generateTokenBody,
  generateTokenProblems,
  getToken,
  listTokens,
  listTokensQuery,
  revokeToken,
  patchToken,
  patchTokenProblems,
  updateTokenBody,
} from '../tokens/index.js';
import { retireSecret, rotateSecret, rotateSecretBody } from '../tokens/index.js';
import { adminState } from './auth.js';
import { describeRoute } from './openapi.js';
import { generatedToken, revokedToken, serviceList, tokenPage, tokenResource } from './responses.js';
import { rotatedToken, tokenWithSecrets } from './responses.js';

/** The service catalogue and the token endpoints (SPEC "Admin API"). Every call is scoped to the admin's organisation. */
export function tokenRoutes(router: Router, deps: Deps, auth: Middleware): void {
  describeRoute('GET', '/services', { summary: 'The service catalogue a token can be granted', response: serviceList });
  router.get('/services', auth, (ctx) => {
    ctx.body = { items: deps.config.services.map((s) => ({ id: s.id, name: s.name, description: s.description })) };
  });

  describeRoute('POST', '/tokens', {
    summary: 'Generate a token (the client secret, if any, is shown once)',
    body: generateTokenBody,
    status: 201,
    response: generatedToken,
    successHeaders: { Location: 'The new token: /admin/api/tokens/{id}' },
    errors: { 409: ['name_taken', 'token_limit_reached'] },
  });
  router.post('/tokens', auth, async (ctx) => {
    const { actor } = adminState(ctx);
    const input = await parseBodyWithRules(ctx, generateTokenBody, (valid, failed) => generateTokenProblems(deps, actor, valid, failed));
    const token = await generateToken(deps, actor, input, { ip: ctx.ip });
    ctx.status = 201;
    ctx.set('Location', `/admin/api/tokens/${token.id}`);
    ctx.body = token;
  });

  describeRoute('GET', '/tokens', { summary: "List the organisation's tokens, newest first", query: listTokensQuery, response: tokenPage });
  router.get('/tokens', auth, async (ctx) => {
    const query = parseQuery(ctx, listTokensQuery);
    ctx.body = await listTokens(deps, adminState(ctx).actor, query);
  });

  describeRoute('GET', '/tokens/:id', { summary: 'One token', response: tokenResource });
  router.get('/tokens/:id', auth, async (ctx) => {
    ctx.body = await getToken(deps, adminState(ctx).actor, ctx.params.id ?? '');
  });

  // SPEC Part 2: name, services, allowed_ips, max_tokens_per_hour ("Network and rate limits per token"); jwks or
  // public_key, require_dpop ("Sender-constrained and secretless tokens").
  describeRoute('PATCH', '/tokens/:id', {
    summary: 'Change a token: name, services, allowed_ips, max_tokens_per_hour, public keys (private_key_jwt), require_dpop',
    body: updateTokenBody,
    response: tokenResource,
    errors: { 409: ['name_taken', 'conflict'] },
  });
  router.patch('/tokens/:id', auth, async (ctx) => {
    const { actor } = adminState(ctx);
    const id = ctx.params.id ?? '';
    const input = await parseBodyWithRules(ctx, updateTokenBody, (valid) => patchTokenProblems(deps, actor, id, valid));
    ctx.body = await patchToken(deps, actor, id, input, { ip: ctx.ip });
  });

  describeRoute('POST', '/tokens/:id/revoke', { summary: 'Revoke a token: its client stops working at once', response: revokedToken });
  router.post('/tokens/:id/revoke', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    ctx.body = await revokeToken(deps, adminState(ctx).actor, ctx.params.id ?? '', { ip: ctx.ip });
  });

  // Secret rotation with overlap (SPEC Part 2 "Credential lifecycle"). Every field is optional, so is the body.
  const rotateBody = rotateSecretBody.optional();
  describeRoute('POST', '/tokens/:id/rotate', {
    summary: 'Rotate the client secret: a new secret (shown once), the previous one works for the grace period',
    body: rotateBody,
    response: rotatedToken,
    errors: { 409: ['rotation_in_progress', 'conflict'] },
  });
  router.post('/tokens/:id/rotate', auth, async (ctx) => {
    const input = parseBody(ctx, rotateBody) ?? {};
    ctx.body = await rotateSecret(deps, adminState(ctx).actor, ctx.params.id ?? '', input, { ip: ctx.ip });
  });

  describeRoute('POST', '/tokens/:id/secrets/:secret_id/retire', {
    summary: 'Retire one secret of a token: it stops at once',
    response: tokenWithSecrets,
    errors: { 409: ['last_secret', 'conflict'] },
  });
  router.post('/tokens/:id/secrets/:secret_id/retire', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    ctx.body = await retireSecret(deps, adminState(ctx).actor, ctx.params.id ?? '', ctx.params.secret_id ?? '', { ip: ctx.ip });
  });
}
