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

/** The most bytes of a refused body read and thrown away (discardRest) before the connection is closed instead. */
export const MAX_DISCARDED_BYTES = 16 * 1024 * 1024;

/** Sockets whose refused request body is being thrown away (discardRest): client-error.ts closes them quietly. */
const discarding = new WeakSet<object>();

/** Whether `socket` is throwing away a refused body (its 413 was answered already). */
export function isDiscardingBody(socket: object): boolean {
  return discarding.has(socket);
}

/**
 * After a 413: the rest of the request body is read and thrown away (a lingering close, as nginx's), so that a client
 * still sending it reads the answer; closing at once reset its connection (Node's fetch saw EPIPE, not the 413, for
 * most bodies of 2 MB and more). Bounded: a body declared or found to be over MAX_DISCARDED_BYTES in all closes the
 * connection instead (`Connection: close`, or the socket destroyed), and Node's request timeout
 * (REQUEST_TIMEOUT_SECONDS) ends a slow one, quietly (client-error.ts: no second answer). Otherwise the connection
 * stays usable afterwards.
 */
export function discardRest(ctx: Context, alreadyRead = 0): void {
  if (Number(ctx.get('content-length') || 0) > MAX_DISCARDED_BYTES) {
    ctx.set('Connection', 'close');
    return;
  }
  const { req } = ctx;
  discarding.add(req.socket);
  let seen = alreadyRead;
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > MAX_DISCARDED_BYTES) req.socket.destroy();
  });
  req.once('end', () => discarding.delete(req.socket));
  req.resume();
}

/**
 * The one body reader of the server (raw-body), used by the JSON reader (admin API, secret scanning, public
 * revocation) and the OAuth form reader, each with its own limit and error shape. Checks the declared Content-Length
 * against `limit` before reading and the bytes while reading; on `too_large` the rest is thrown away (discardRest).
 */
export async function readRawBody(ctx: Context, limit: number): Promise<Buffer> {
  try {
    return await getRawBody(ctx.req, { length: ctx.get('content-length') || undefined, limit });
  } catch (err) {
    if ((err as { type?: unknown }).type === 'entity.too.large') {
      discardRest(ctx, limit); // raw-body paused the request having read about `limit` bytes
      throw new BodyReadError('too_large', { cause: err });
    }
    throw new BodyReadError('unreadable', { cause: err });
  }
}

/**
 * The request's `Content-Encoding` when it is one this server does not decode (anything but `identity`), for the
 * caller's own refusal (RFC 9110 §8.4, §15.5.16: 415 for the JSON endpoints, `invalid_request` for OAuth); undefined
 * when the body is sent as is. The value is for a message: only a plain token list is returned as given.
 */
export function unsupportedContentEncoding(ctx: Context): string | undefined {
  const value = ctx.get('content-encoding').trim();
  if (value === '' || /^identity$/i.test(value)) return undefined;
  return /^[A-Za-z0-9._-]{1,32}(\s*,\s*[A-Za-z0-9._-]{1,32}){0,3}$/.test(value) ? value : 'given';
}

/** The 415 message for `unsupportedContentEncoding`. */
export function contentEncodingMessage(encoding: string): string {
  return `Content-Encoding ${encoding} is not supported: send the request body uncompressed (identity).`;
}
