import type { Context } from 'koa';
import getRawBody from 'raw-body';

/** What went wrong reading a body: `too_large` (over the limit, declared or read) or `malformed` (length mismatch). */
export class BodyReadError extends Error {
  constructor(
    readonly reason: 'too_large' | 'malformed',
    message: string,
  ) {
    super(message);
    this.name = 'BodyReadError';
  }
}

/**
 * Reads the request body as bytes with raw-body, at most `limit` bytes: a larger Content-Length is refused before
 * anything is read, a longer stream as soon as it passes the limit. Errors are BodyReadError for the caller to
 * render in its own error shape (the admin API's, or RFC 6749's); an aborted request rethrows as it is.
 */
export async function readBodyBytes(ctx: Context, limit: number): Promise<Buffer> {
  const declared = ctx.get('content-length');
  try {
    return await getRawBody(ctx.req, { limit, length: declared === '' ? undefined : Number(declared) });
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') throw new BodyReadError('too_large', 'The request body is too large.');
    if (type === 'request.size.invalid') throw new BodyReadError('malformed', 'The request body does not match its Content-Length.');
    throw err;
  }
}
