import type Router from '@koa/router';
import type { Middleware } from 'koa';
import { csrfTokenFor, signIn, signInBody, signOut } from '../accounts/index.js';
import type { Deps } from '../deps.js';
import { emptyBody, parseBody } from '../http/validate.js';
import { adminState, clearSessionCookie, setSessionCookie } from './auth.js';
import { describeRoute } from './openapi.js';
import { me, signedIn } from './responses.js';

/** POST /login, POST /logout, GET /me (SPEC "Admin API"). */
export function sessionRoutes(router: Router, deps: Deps, auth: Middleware): void {
  describeRoute('POST', '/login', {
    summary: 'Sign in: a session token and cookie',
    tag: 'session',
    auth: false,
    body: signInBody,
    response: signedIn,
    errors: { 401: ['invalid_credentials'], 429: ['rate_limited'] },
  });
  router.post('/login', async (ctx) => {
    const input = parseBody(ctx, signInBody);
    const signedIn = await signIn(deps, input, { ip: ctx.ip, userAgent: ctx.get('user-agent') || null });
    setSessionCookie(ctx, deps, signedIn.token, new Date(signedIn.expires_at));
    ctx.body = signedIn;
  });

  describeRoute('POST', '/logout', { summary: 'End this session', tag: 'session', status: 204 });
  router.post('/logout', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    await signOut(deps, adminState(ctx).session, { ip: ctx.ip });
    clearSessionCookie(ctx, deps);
    ctx.status = 204;
  });

  describeRoute('GET', '/me', { summary: 'The signed-in administrator and the CSRF token', tag: 'session', response: me });
  router.get('/me', auth, (ctx) => {
    const { session, sessionToken } = adminState(ctx);
    ctx.body = {
      admin: session.admin,
      organisation: session.admin.organisation,
      expires_at: session.expires_at.toISOString(),
      csrf_token: csrfTokenFor(sessionToken),
    };
  });
}
