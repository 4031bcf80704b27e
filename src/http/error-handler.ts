import type { Middleware } from 'koa';
import { isDatabaseUnavailable, noteDatabaseOutage, OUTAGE_RETRY_AFTER_SECONDS } from '../db/index.js';
import { AppError, RateLimitedError } from '../errors.js';
import type { Logger } from '../log.js';
import { loggedPath } from './access-log.js';

/**
 * Renders errors as SPEC's `{error, message, details?}`. Unknown errors become 500 internal_error with a
 * generic message; their detail goes to the log (redacted) with the request id, never to the client.
 */
export function errorHandler(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof AppError) {
        ctx.status = err.status;
        if (err.headers) ctx.set(err.headers);
        if (err instanceof RateLimitedError) ctx.set('Retry-After', String(err.retryAfterSeconds));
        // A 401 carries a challenge (RFC 9110 §15.5.2): the error's own (secret scanning's), else the admin API's
        // scheme, a bearer session token (SPEC "Admin API"). The domain says only that the caller is not signed in;
        // when a bearer token came and was refused, the challenge says so (RFC 6750 §3.1 `invalid_token`; with no
        // token, or a session cookie, no error code, as §3 asks).
        if (err.status === 401 && !ctx.response.get('WWW-Authenticate')) {
          // A token after the scheme (any whitespace, as admin/auth.ts reads it); a bare "Bearer" sent none.
          const bearerRefused = err.code === 'unauthorized' && /^bearer\s+\S/i.test(ctx.get('Authorization'));
          ctx.set('WWW-Authenticate', bearerRefused ? 'Bearer error="invalid_token"' : 'Bearer');
        }
        ctx.body = { error: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
        return;
      }
      const e = err as { status?: number; expose?: boolean; message?: string; type?: string; code?: unknown };
      if (typeof e.code === 'string' && /^22[0-9A-Z]{3}$/.test(e.code)) {
        // SQLSTATE class 22 (data exception): a value the edge let through and the database refused. Still the
        // client's input, so 400, and one short line without the statement (SPEC Part 2 "Bad input never gives 5xx").
        log.warn('database refused a request value', { sqlstate: e.code, request_id: ctx.state.requestId, method: ctx.method, path: loggedPath(ctx.path) });
        ctx.status = 400;
        ctx.body = { error: 'validation_failed', message: 'The request is not valid.' };
        return;
      }
      if (e.status === 413 || e.type === 'entity.too.large') {
        ctx.status = 413;
        ctx.body = { error: 'payload_too_large', message: 'The request body is larger than 1 MB.' };
        return;
      }
      if (e.status === 400 && e.type === 'entity.parse.failed') {
        ctx.status = 400;
        ctx.body = { error: 'invalid_json', message: 'The request body is not valid JSON.' };
        return;
      }
      if (e.message === 'aborted' || (ctx.req.destroyed && !ctx.req.complete)) {
        // The client went away or was cut off (REQUEST_TIMEOUT_SECONDS) mid-body: nobody to answer, nothing to log.
        // (Not merely `destroyed`: Node also destroys a request whose body was read in full.)
        ctx.status = 400;
        ctx.body = { error: 'validation_failed', message: 'The request was not received in full.' };
        return;
      }
      if (isDatabaseUnavailable(err)) {
        noteDatabaseOutage(log, err, `${ctx.method} ${ctx.path}`);
        ctx.status = 503;
        ctx.set('Retry-After', String(OUTAGE_RETRY_AFTER_SECONDS));
        ctx.body = { error: 'service_unavailable', message: 'The database is unavailable. Try again shortly.' };
        return;
      }
      log.error('request failed', { err, request_id: ctx.state.requestId, method: ctx.method, path: loggedPath(ctx.path) });
      ctx.status = 500;
      ctx.body = { error: 'internal_error', message: 'Something went wrong on our side. Try again later.' };
    }
  };
}
