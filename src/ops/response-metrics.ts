import type { Middleware } from 'koa';
import { httpResponses, rateLimitedRequests, signInFailures } from '../metrics.js';

/** Paths outside the admin router that may answer 429, named as themselves; any other becomes "other". */
const knownPaths = new Set(['/token', '/token/introspection', '/token/revocation', '/credentials/revoke', '/secret-scanning/verify']);
const LOGIN = '/admin/api/login';

/**
 * Counts what operators alert on, from the responses themselves (so every code path that answers 429 or refuses a
 * sign-in is counted without touching it): responses by status class, 429s by endpoint (a bounded label: the
 * matched route or a known path), and refused sign-ins by reason.
 */
export const responseMetrics: Middleware = async (ctx, next) => {
  try {
    await next();
  } finally {
    const status = ctx.status;
    httpResponses.inc({ status_class: `${Math.floor(status / 100)}xx` });
    const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
    const endpoint = typeof route === 'string' ? route : knownPaths.has(ctx.path) ? ctx.path : 'other';
    if (status === 429) rateLimitedRequests.inc({ endpoint });
    if (ctx.method === 'POST' && endpoint === LOGIN) {
      if (status === 401) signInFailures.inc({ reason: 'invalid_credentials' });
      else if (status === 429) signInFailures.inc({ reason: 'rate_limited' });
    }
  }
};
