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
 * The one body reader of the server (raw-body), used by the JSON reader (admin API, secret scanning, public
 * revocation) and the OAuth form reader, each with its own limit and error shape. Checks the declared Content-Length
 * against `limit` before reading and the bytes while reading. On `too_large` the rest of the body is read and thrown
 * away (a lingering close, as nginx's): a client still sending it then reads the 413, where closing at once reset
 * its connection (Node's fetch saw EPIPE, not the answer, for most bodies of 2 MB and more). Node's request timeout
 * (REQUEST_TIMEOUT_SECONDS) bounds how long that takes; the connection stays usable afterwards.
 */
export async function readRawBody(ctx: Context, limit: number): Promise<Buffer> {
  try {
    return await getRawBody(ctx.req, { length: ctx.get('content-length') || undefined, limit });
  } catch (err) {
    if ((err as { type?: unknown }).type === 'entity.too.large') {
      ctx.req.resume(); // raw-body paused it: read the rest and throw it away
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
