import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';

/** Tags each request with an id (kept from a sane X-Request-Id header, else new) and echoes it back. */
export const requestId: Middleware = async (ctx, next) => {
  const given = ctx.get('x-request-id');
  ctx.state.requestId = /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
  ctx.set('X-Request-Id', ctx.state.requestId as string);
  await next();
};

/**
 * While the server drains (SIGTERM), every response says `Connection: close`: Node closes the keep-alive
 * connection once that response is written, so no connection is cut in the middle of a request. Set before and
 * after the handlers, for requests that were already running when the drain began.
 */
export function closeWhenDraining(lifecycle: { readonly draining: boolean }): Middleware {
  return async (ctx, next) => {
    if (lifecycle.draining) ctx.set('Connection', 'close');
    try {
      await next();
    } finally {
      if (lifecycle.draining && !ctx.headerSent) ctx.set('Connection', 'close');
    }
  };
}

/** Headers every response carries; the console adds its own Content-Security-Policy. */
export const securityHeaders: Middleware = async (ctx, next) => {
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Frame-Options', 'DENY');
  await next();
};

/**
 * JSON 404 for anything no route answered. The message names the method only, never the path: a path may carry a
 * secret pasted into a URL (SPEC "no secret in any response").
 */
export const notFound: Middleware = async (ctx) => {
  ctx.status = 404;
  ctx.body = { error: 'not_found', message: `Nothing here answers ${ctx.method}: check the path.` };
};
