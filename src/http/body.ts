import type { Context } from 'koa';
import getRawBody from 'raw-body';

/** Why a request body could not be read: larger than allowed, or cut short / not matching its Content-Length. */
export class BodyReadError extends Error {
  constructor(
    readonly reason: 'too_large' | 'unreadable',
    options?: { cause?: unknown },
  ) {
    super(reason === 'too_large' ? 'the request body is too large' : 'the request body could not be read', options);
    this.name = 'BodyReadError';
  }
}

/**
 * The one body reader of the server (raw-body), used by the admin API's JSON reader and the OAuth form reader,
 * each with its own limit and error shape. Checks the declared Content-Length against `limit` before reading and
 * the bytes while reading; on `too_large` the connection is marked to close (the rest is not read).
 */
export async function readRawBody(ctx: Context, limit: number): Promise<Buffer> {
  try {
    return await getRawBody(ctx.req, { length: ctx.get('content-length') || undefined, limit });
  } catch (err) {
    if ((err as { type?: unknown }).type === 'entity.too.large') {
      ctx.set('Connection', 'close');
      throw new BodyReadError('too_large', { cause: err });
    }
    throw new BodyReadError('unreadable', { cause: err });
  }
}
