import type { Middleware } from 'koa';
import { AppError, RateLimitedError } from '../errors.js';
import type { Logger } from '../log.js';

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
        ctx.body = { error: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
        return;
      }
      const e = err as { status?: number; expose?: boolean; message?: string; type?: string };
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
      log.error('request failed', { err, request_id: ctx.state.requestId, method: ctx.method, path: ctx.path });
      ctx.status = 500;
      ctx.body = { error: 'internal_error', message: 'Something went wrong on our side. Try again later.' };
    }
  };
}
