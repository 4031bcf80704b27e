// The admin JSON API under /admin/api: its own strict body reader, sessions, tokens, audit.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import compose from 'koa-compose';
import { z } from 'zod';
import { dummyPasswordHash } from '../accounts/index.js';
import { issuerUrl, packageRoot } from '../config/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { allowedMethods, notFound } from '../http/common.js';
import { jsonBody, malformedQueryParameters } from '../http/validate.js';
import { adminsRoutes } from './admins-routes.js';
import { auditRoutes } from './audit-routes.js';
import { describedRoute, describeRoute, openApiDocument, type HttpMethod } from './openapi.js';
import { policyRoutes } from './policy-routes.js';
import { requireAdmin } from './auth.js';
import { sessionRoutes } from './session-routes.js';
import { tokenRoutes } from './token-routes.js';

/** Where the admin JSON API is mounted; everything under it is answered by adminApi. */
export const ADMIN_API_PREFIX = '/admin/api';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The admin API's routes (for the middleware below, and for the test that checks they are all described). */
export function adminRouter(deps: Deps): Router {
  // Paths as documented, exactly: no case-insensitive or trailing-slash variants (koa-router's defaults) that the
  // OpenAPI description does not list.
  const router = new Router({ prefix: ADMIN_API_PREFIX, sensitive: true, strict: true });
  const auth = compose([requireAdmin(deps), knownQuery]);
  sessionRoutes(router, deps, auth);
  tokenRoutes(router, deps, auth);
  auditRoutes(router, deps, auth);
  policyRoutes(router, deps, auth);
  adminsRoutes(router, deps, auth);
  openApiRoute(router, deps);
  return router;
}

/**
 * Every parameter must be UTF-8 once percent-decoded, on every route of the API, signed in or not: else
 * AppError 400 validation_failed with one detail per malformed parameter name. Runs before the router.
 */
function refuseMalformedQuery(querystring: string): void {
  const malformed = querystring === '' ? [] : malformedQueryParameters(querystring);
  if (malformed.length > 0) {
    throw new AppError(
      'validation_failed',
      'A query parameter is not valid UTF-8 once percent-decoded.',
      malformed.map((name) => ({ path: name, message: 'is not valid UTF-8' })),
    );
  }
}

/**
 * One rule for the query string of every signed-in route (docs/admin-api.md): a route that takes no parameters
 * refuses any (400 validation_failed "is not a known field": `GET /admins?limit=5` does not page, so it does not
 * pretend to); a route that takes some checks them itself (parseQuery, strict). UTF-8 is checked earlier, for every
 * route (refuseMalformedQuery). Runs after authentication, inside the matched route (its template names the route).
 */
const knownQuery: Middleware = async (ctx, next) => {
  if (ctx.querystring !== '') {
    const route = String((ctx as { _matchedRoute?: unknown })._matchedRoute ?? '').slice(ADMIN_API_PREFIX.length);
    const doc = describedRoute(ctx.method as HttpMethod, route);
    if (doc && !doc.query) {
      const names = [...new Set(Object.keys(ctx.query))];
      if (names.length > 0) {
        throw new AppError(
          'validation_failed',
          'This call takes no query parameters.',
          names.map((name) => ({ path: name.slice(0, 32), message: 'is not a known field' })),
        );
      }
    }
  }
  await next();
};

/** GET /openapi.json: the OpenAPI 3.1 description of this API (SPEC "Operations"); public, it holds no data. */
function openApiRoute(router: Router, deps: Deps): void {
  let document: string | undefined;
  describeRoute('GET', '/openapi.json', {
    summary: 'This description (OpenAPI 3.1)',
    tag: 'meta',
    auth: false,
    response: z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.looseObject({}) }),
  });
  router.get('/openapi.json', (ctx) => {
    document ??= JSON.stringify(openApiDocument({ prefix: ADMIN_API_PREFIX, serverUrl: issuerUrl(deps.config.issuer, ''), version: packageVersion() }));
    ctx.type = 'application/json';
    ctx.body = document;
  });
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/**
 * Answers everything under /admin/api and nothing else. Errors are AppErrors, rendered by the application's
 * error handler as `{error, message, details?}`. Bodies are read here only, never on the OAuth paths.
 */
export function adminApi(deps: Deps): Middleware {
  void dummyPasswordHash(); // computed once up front, so the first unknown-email sign-in is not slower than others
  const router = adminRouter(deps);

  const readBody = jsonBody();
  const routes = router.routes() as unknown as Middleware;
  const methods = allowedMethods(router);

  // In order: the JSON body, the routes, 405 for a known path with another method, else 404.
  const api = compose([readBody, routes, methods, notFound]);
  return async (ctx, next) => {
    if (ctx.path !== ADMIN_API_PREFIX && !ctx.path.startsWith(`${ADMIN_API_PREFIX}/`)) return next();
    ctx.set('Cache-Control', 'no-store');
    if (!SAFE_METHODS.has(ctx.method) && deps.db.diskSpace?.().low) {
      // Embedded database on an almost full disk: refuse writes before the engine runs out of space (issue 10 item 13).
      throw new AppError('insufficient_storage', 'The server is almost out of disk space. Try again once an operator has freed some.', undefined, {
        'Retry-After': '60',
      });
    }
    try {
      refuseMalformedQuery(ctx.querystring);
      await api(ctx, async () => undefined); // the API answers every path under its prefix: nothing after it runs
    } catch (err) {
      // Refused before the router ran (a malformed query, an unreadable body): the access log still names the route
      // of a known endpoint (docs/operations.md "Access log"), as for its other answers.
      nameRoute(ctx, router);
      throw err;
    }
  };
}

/** Sets the route the router would have matched (`_matchedRoute`, read by the access log), when none is set yet. */
function nameRoute(ctx: Context, router: Router): void {
  const context = ctx as Context & { _matchedRoute?: unknown };
  if (context._matchedRoute !== undefined) return;
  const layer = router.match(ctx.path, ctx.method).pathAndMethod.findLast((l) => l.methods.length > 0);
  if (layer) context._matchedRoute = layer.path;
}
