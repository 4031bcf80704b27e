import querystring from 'node:querystring';
import type { Context } from 'koa';
import { errors } from 'oidc-provider';
import { BodyReadError, readRawBody, unsupportedContentEncoding } from '../http/body.js';

/** The largest urlencoded body the OAuth endpoints read (oidc-provider's own limit is 56 KiB). */
export const MAX_FORM_BYTES = 56 * 1024;
const FORM = 'application/x-www-form-urlencoded';

/** An `application/x-www-form-urlencoded` request body, read once for every OAuth endpoint. */
export interface OAuthForm {
  /**
   * The parameters that have a value (RFC 6749 §3.2: "parameters sent without a value MUST be treated as if they
   * were omitted"); a repeated parameter as an array of its values.
   */
  readonly params: Readonly<Record<string, string | string[]>>;
  /** A parameter that may appear at most once: undefined when omitted, `invalid_request` when repeated. */
  single(name: string): string | undefined;
  /** The first parameter sent more than once, if any. */
  repeated(): string | undefined;
  /** The body as received (handed on to oidc-provider, which parses it again by its own rules). */
  readonly raw: Buffer;
}

function toForm(raw: Buffer, text: string): OAuthForm {
  const parsed = querystring.parse(text);
  const params: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (value === undefined) continue;
    const values = (Array.isArray(value) ? value : [value]).filter((v) => v !== '');
    if (values.length === 1) params[key] = values[0]!;
    else if (values.length > 1) params[key] = values;
  }
  return {
    params,
    single(name) {
      const value = params[name];
      if (Array.isArray(value)) throw new errors.InvalidRequest(`'${name}' parameter must not be provided twice`);
      return value;
    },
    repeated: () => Object.keys(params).find((key) => Array.isArray(params[key])),
    raw,
  };
}

/**
 * Reads the body of a POST to /token, /token/introspection or /token/revocation with the server's one body reader
 * (http/body.ts: declared length checked, at most MAX_FORM_BYTES), decoded in the declared charset. No content
 * type means no parameters (as oidc-provider has it); another content type, or a Content-Encoding other than
 * identity (nothing is decompressed), is `invalid_request`; too large is 413 `invalid_request` (connection closed).
 */
export async function readForm(ctx: Context): Promise<OAuthForm> {
  const encoding = unsupportedContentEncoding(ctx);
  if (encoding !== undefined) {
    throw new errors.InvalidRequest(`Content-Encoding ${encoding} is not supported: send the form body uncompressed (identity)`);
  }
  // No content type, or an empty body (ctx.is() is null without a body, whatever the type): no parameters.
  if (!ctx.get('content-type') || (!ctx.request.length && !ctx.get('transfer-encoding'))) return toForm(Buffer.alloc(0), '');
  if (!ctx.is(FORM)) throw new errors.InvalidRequest(`only ${FORM} content-type bodies are supported on ${ctx.method} ${ctx.path}`);
  let raw: Buffer;
  try {
    raw = await readRawBody(ctx, MAX_FORM_BYTES);
  } catch (err) {
    if (err instanceof BodyReadError && err.reason === 'too_large') throw new errors.InvalidRequest('the request body is too large', 413);
    throw new errors.InvalidRequest('failed to parse the request body', undefined, { cause: err });
  }
  try {
    return toForm(raw, new TextDecoder(ctx.request.charset || 'utf-8', { fatal: true }).decode(raw));
  } catch (err) {
    throw new errors.InvalidRequest('failed to parse the request body', undefined, { cause: err });
  }
}
