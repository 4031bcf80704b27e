import querystring from 'node:querystring';
import type { Context } from 'koa';
import { errors } from 'oidc-provider';
import { BodyReadError, readRawBody, unsupportedContentEncoding } from '../http/body.js';

/** The largest urlencoded body the OAuth endpoints read (oidc-provider's own limit is 56 KiB). */
export const MAX_FORM_BYTES = 56 * 1024;
/**
 * The most `&`-separated fields a form body may have: node:querystring's default `maxKeys`, with which oidc-provider
 * parses the body again (lib/shared/selective_body.js). Past it querystring silently drops the rest, so a body with
 * more is refused rather than read in part (a `scope` after the 1000th field would be lost, and a token widened).
 */
export const MAX_FORM_PARAMS = 1000;
/** The media type of every OAuth request body. */
export const FORM = 'application/x-www-form-urlencoded';

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
  /**
   * The body as decoded here (declared charset, a leading BOM dropped), undefined when none was read (no content
   * type, or empty). oidc-provider is handed this text as UTF-8 with a plain `application/x-www-form-urlencoded`
   * content type (token-endpoint.ts), so that it parses exactly the parameters read here: one decoding on both paths.
   */
  readonly text: string | undefined;
}

/** How many `&`-separated fields `text` has (what querystring counts against `maxKeys`, empty ones included). */
function fieldCount(text: string): number {
  let fields = 1;
  for (let i = text.indexOf('&'); i !== -1; i = text.indexOf('&', i + 1)) fields++;
  return fields;
}

function toForm(text: string | undefined): OAuthForm {
  // RFC 6749 §5.2 invalid_request: never a body read in part (see MAX_FORM_PARAMS).
  if (text !== undefined && fieldCount(text) > MAX_FORM_PARAMS) {
    throw new errors.InvalidRequest(`too many parameters: a request body may have at most ${MAX_FORM_PARAMS}`);
  }
  const parsed = querystring.parse(text ?? '', '&', '=', { maxKeys: MAX_FORM_PARAMS });
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
    text,
  };
}

/**
 * Reads the body of a POST to /token, /token/introspection or /token/revocation with the server's one body reader
 * (http/body.ts: declared length checked, at most MAX_FORM_BYTES), decoded in the declared charset (UTF-8 by
 * default; a leading BOM is dropped). No content type means no parameters (as oidc-provider has it); another content
 * type, or a Content-Encoding other than identity (nothing is decompressed), is `invalid_request`; too large is 413
 * `invalid_request` (connection closed); more than MAX_FORM_PARAMS fields is `invalid_request` (RFC 6749 §5.2).
 */
export async function readForm(ctx: Context): Promise<OAuthForm> {
  const encoding = unsupportedContentEncoding(ctx);
  if (encoding !== undefined) {
    throw new errors.InvalidRequest(`Content-Encoding ${encoding} is not supported: send the form body uncompressed (identity)`);
  }
  // No content type, or an empty body (ctx.is() is null without a body, whatever the type): no parameters.
  if (!ctx.get('content-type') || (!ctx.request.length && !ctx.get('transfer-encoding'))) return toForm(undefined);
  if (!ctx.is(FORM)) throw new errors.InvalidRequest(`only ${FORM} content-type bodies are supported on ${ctx.method} ${ctx.path}`);
  let raw: Buffer;
  try {
    raw = await readRawBody(ctx, MAX_FORM_BYTES);
  } catch (err) {
    if (err instanceof BodyReadError && err.reason === 'too_large') throw new errors.InvalidRequest('the request body is too large', 413);
    throw new errors.InvalidRequest('failed to parse the request body', undefined, { cause: err });
  }
  let text: string;
  try {
    text = new TextDecoder(ctx.request.charset || 'utf-8', { fatal: true }).decode(raw);
  } catch (err) {
    throw new errors.InvalidRequest('failed to parse the request body', undefined, { cause: err });
  }
  return toForm(text);
}
