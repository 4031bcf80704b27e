// The admin JSON API under /admin/api: its own strict body reader, sessions, tokens, audit.
import Router from '@koa/router';
import type { Middleware } from 'koa';
import { dummyPasswordHash } from '../accounts/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { jsonBody } from '../http/validate.js';
import { adminsRoutes } from './admins-routes.js';
import { auditRoutes } from './audit-routes.js';
import { requireAdmin } from './auth.js';
import { sessionRoutes } from './session-routes.js';
import { tokenRoutes } from './token-routes.js';

export const ADMIN_API_PREFIX = '/admin/api';

/**
 * Answers everything under /admin/api and nothing else. Errors are AppErrors, rendered by the application's
 * error handler as `{error, message, details?}`. Bodies are read here only, never on the OAuth paths.
 */
export function adminApi(deps: Deps): Middleware {
  void dummyPasswordHash(); // computed once up front, so the first unknown-email sign-in is not slower than others
  const router = new Router({ prefix: ADMIN_API_PREFIX });
  const auth = requireAdmin(deps);
  sessionRoutes(router, deps, auth);
  tokenRoutes(router, deps, auth);
  auditRoutes(router, deps, auth);
  adminsRoutes(router, deps, auth);

  const readBody = jsonBody();
  const routes = router.routes() as unknown as Middleware;
  const methods = router.allowedMethods({
    throw: true,
    methodNotAllowed: () => new AppError('method_not_allowed', 'This method is not allowed here.'),
    notImplemented: () => new AppError('method_not_allowed', 'This method is not allowed here.'),
  }) as unknown as Middleware;
  const notFound: Middleware = async (ctx) => {
    ctx.status = 404;
    ctx.body = { error: 'not_found', message: `Nothing at ${ctx.method} ${ctx.path}.` };
  };

  return async (ctx, next) => {
    if (ctx.path !== ADMIN_API_PREFIX && !ctx.path.startsWith(`${ADMIN_API_PREFIX}/`)) return next();
    ctx.set('Cache-Control', 'no-store');
    await readBody(ctx, () => routes(ctx, () => methods(ctx, () => notFound(ctx, async () => undefined))));
  };
}
