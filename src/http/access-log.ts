import { performance } from 'node:perf_hooks';
import type { Context, Middleware } from 'koa';
import { redactText, type Logger } from '../log.js';

/** Longer paths are cut in log lines: one short line per request, whatever a client sends (SPEC Part 2). */
const MAX_LOGGED_PATH = 256;

/**
 * A request path as log lines carry it: a percent-encoded secret redacted (`redactedPath`), then at most
 * MAX_LOGGED_PATH characters and "…" (plain secrets are redacted by the logger).
 */
export function loggedPath(path: string): string {
  const safe = redactedPath(path);
  return safe.length > MAX_LOGGED_PATH ? `${safe.slice(0, MAX_LOGGED_PATH)}…` : safe;
}

/**
 * A request path with any secret in it redacted even when percent-encoded (`/x/%73ats%5F…`): the logger's redaction
 * sees the raw path, so a path whose ASCII escapes, decoded, show a secret is logged decoded and redacted; any other
 * path is logged as sent.
 */
export function redactedPath(path: string): string {
  if (!path.includes('%')) return path;
  const decoded = path.replace(/%([0-7][0-9A-Fa-f])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const redacted = redactText(decoded);
  return redacted === decoded ? path : redacted;
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

/** Longer values of `noteInAccessLog` are cut like addresses: the line stays short whatever a client sent. */
const MAX_NOTE_VALUE = 64;

/**
 * Adds fields to this request's access-log line: why a request was refused, say, where a line of its own would make
 * two lines for one client error (SPEC Part 2: at most one short log line). Values are cut at MAX_NOTE_VALUE
 * characters (then "…"); the logger redacts secrets in them as everywhere.
 */
export function noteInAccessLog(ctx: Context, fields: Record<string, string>): void {
  const notes = ((ctx.state.accessLogNotes as Record<string, string> | undefined) ??= {});
  for (const [key, value] of Object.entries(fields)) notes[key] = value.length > MAX_NOTE_VALUE ? `${value.slice(0, MAX_NOTE_VALUE)}…` : value;
}

/**
 * One access-log line per request (SPEC "Operations"), written when the response is finished or the client went
 * away: `{msg: "request", request_id, method, path, route?, status, ms, client_ip, aborted?}` (`status` null when
 * the connection closed before any answer). `path` has no query
 * string (never logged: it may carry credentials); `route` is the matched route template of the admin API or the
 * ops routes, the console, the OAuth endpoints (set there); `client_ip` is `ctx.ip`, which follows TRUST_PROXY. Runs after `requestId`.
 */
export function accessLog(log: Logger): Middleware {
  return async (ctx, next) => {
    if (log.enabled?.('info') === false) return next(); // LOG_LEVEL above info: no line, no listener, no work
    const start = performance.now();
    const clientIp = ctx.ip; // read now: once the socket is gone its address is too
    // As asked (a later middleware may route it as another path); an unparsable target as sent (guardRequestTarget).
    const path = typeof ctx.state.invalidTarget === 'string' ? ctx.state.invalidTarget : ctx.path;
    const res = ctx.res;
    res.once('close', () => {
      const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
      log.info('request', {
        request_id: ctx.state.requestId as string | undefined,
        method: ctx.method,
        path: loggedPath(path),
        ...(typeof route === 'string' ? { route } : {}),
        // No answer sent (the client left, or the shutdown grace ran out mid-request): no status, rather than the
        // 404 Koa presets, which dashboards would count as one.
        status: res.headersSent ? res.statusCode : null,
        ms: Math.round((performance.now() - start) * 10) / 10,
        client_ip: loggedAddress(clientIp),
        ...(res.writableFinished ? {} : { aborted: true }),
        ...(ctx.state.accessLogNotes as Record<string, string> | undefined),
      });
    });
    await next();
  };
}
