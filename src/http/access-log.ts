import { performance } from 'node:perf_hooks';
import type { Middleware } from 'koa';
import type { Logger } from '../log.js';

/**
 * One access-log line per request (SPEC "Operations"), written when the response is finished or the client went
 * away: `{msg: "request", request_id, method, path, route?, status, ms, client_ip, aborted?}`. `path` has no query
 * string (never logged: it may carry credentials); `route` is the matched route template of the admin API or the
 * ops routes, the console, the OAuth endpoints (set there); `client_ip` is `ctx.ip`, which follows TRUST_PROXY. Runs after `requestId`.
 */
/** Longer paths are cut in log lines: one short line per request, whatever a client sends (SPEC Part 2). */
const MAX_LOGGED_PATH = 256;

/** A request path as log lines carry it: at most MAX_LOGGED_PATH characters, then "…" (secrets are redacted by the logger). */
export function loggedPath(path: string): string {
  return path.length > MAX_LOGGED_PATH ? `${path.slice(0, MAX_LOGGED_PATH)}…` : path;
}

/** No address is longer (IPv6 with an IPv4 tail and a zone): more is what a client wrote into X-Forwarded-For. */
const MAX_LOGGED_ADDRESS = 64;

/**
 * A client address as log lines carry it: at most MAX_LOGGED_ADDRESS characters, then "…". Behind TRUST_PROXY the
 * address comes from X-Forwarded-For, which, without a load balancer in front to set it, is whatever the client sent.
 */
export function loggedAddress(ip: string): string {
  return ip.length > MAX_LOGGED_ADDRESS ? `${ip.slice(0, MAX_LOGGED_ADDRESS)}…` : ip;
}

export function accessLog(log: Logger): Middleware {
  return async (ctx, next) => {
    if (log.enabled?.('info') === false) return next(); // LOG_LEVEL above info: no line, no listener, no work
    const start = performance.now();
    const clientIp = ctx.ip; // read now: once the socket is gone its address is too
    const path = ctx.path; // as asked (a later middleware may route it as another path)
    const res = ctx.res;
    res.once('close', () => {
      const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
      log.info('request', {
        request_id: ctx.state.requestId as string | undefined,
        method: ctx.method,
        path: loggedPath(path),
        ...(typeof route === 'string' ? { route } : {}),
        status: res.statusCode,
        ms: Math.round((performance.now() - start) * 10) / 10,
        client_ip: loggedAddress(clientIp),
        ...(res.writableFinished ? {} : { aborted: true }),
      });
    });
    await next();
  };
}
