import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { AppError, boundedDetails, type ErrorDetail } from '../errors.js';
import { BodyReadError, contentEncodingMessage, discardRest, readRawBody, unsupportedContentEncoding } from './body.js';

/** SPEC "Admin API": request bodies over 1 MB get 413. */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;

function hasBody(ctx: Context): boolean {
  if (ctx.get('transfer-encoding')) return true;
  const length = ctx.get('content-length');
  return length !== '' && length !== '0';
}

/**
 * 415 `unsupported_media_type` for a body with a Content-Encoding other than identity (RFC 9110 §15.5.16): the
 * server decodes none, and reading compressed bytes as JSON would be wrong either way. Says `Accept-Encoding: identity`.
 */
export function refuseContentEncoding(ctx: Context): void {
  const encoding = unsupportedContentEncoding(ctx);
  if (encoding === undefined) return;
  throw new AppError('unsupported_media_type', contentEncodingMessage(encoding), undefined, { 'Accept-Encoding': 'identity' });
}

/** 413 payload_too_large naming `limit`. The body's rest is thrown away (discardRest) so the client sees it. */
function tooLarge(limit: number): AppError {
  const size = limit % (1024 * 1024) === 0 ? `${limit / (1024 * 1024)} MB` : limit % 1024 === 0 ? `${limit / 1024} KB` : `${limit} bytes`;
  return new AppError('payload_too_large', `The request body is larger than ${size}.`);
}

/**
 * The request body's bytes, at most `limit` (http/body.ts readRawBody): 413 `payload_too_large` when larger (from
 * Content-Length before reading, or while reading; the connection then closes), 400 `invalid_json` when it cannot be
 * read (cut short, not matching its Content-Length). For a JSON endpoint that needs the raw bytes (a signature over
 * them) before parsing them with parseJsonBody.
 */
export async function readJsonBodyBytes(ctx: Context, limit: number): Promise<Buffer> {
  if (Number(ctx.get('content-length') || 0) > limit) {
    discardRest(ctx); // not read at all
    throw tooLarge(limit);
  }
  try {
    return await readRawBody(ctx, limit);
  } catch (err) {
    if (err instanceof BodyReadError && err.reason === 'too_large') throw tooLarge(limit); // readRawBody discards the rest
    throw new AppError('invalid_json', 'The request body could not be read.');
  }
}

/** A JSON body's bytes (strict UTF-8, RFC 8259 §8.1) as a value; 400 `invalid_json` when they are not. */
export function parseJsonBody(raw: Buffer): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch {
    throw new AppError('invalid_json', 'The request body is not valid JSON.');
  }
}

/**
 * 415 `unsupported_media_type` unless the body is declared `application/json` (or `+json`) in UTF-8 (no charset, or
 * `utf-8`): the admin API's JSON bodies, POST /credentials/revoke and POST /secret-scanning/verify
 * (docs/admin-api.md "Errors").
 */
export function refuseNonJsonBody(ctx: Context): void {
  const charset = /;\s*charset=("?)([^";]+)\1/i.exec(ctx.get('content-type'))?.[2]?.toLowerCase();
  if (!ctx.is('application/json', '+json') || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
    throw new AppError('unsupported_media_type', 'Send the request body as application/json (UTF-8).');
  }
}

/**
 * Reads a JSON request body into `ctx.state.body` (undefined when the request has none). Strict: a body must be
 * sent uncompressed (any Content-Encoding but identity is 415, with `Accept-Encoding: identity`),
 * `application/json` (or `+json`) in UTF-8 (else 415), at most `limit` bytes (else 413, checked against
 * Content-Length first and while reading), and valid JSON (else 400 invalid_json).
 */
export function jsonBody(limit = MAX_JSON_BODY_BYTES): Middleware {
  return async (ctx, next) => {
    ctx.state.body = undefined;
    if (!hasBody(ctx)) return next();
    refuseContentEncoding(ctx);
    refuseNonJsonBody(ctx);
    ctx.state.body = parseJsonBody(await readJsonBodyBytes(ctx, limit));
    await next();
  };
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let v = input;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** zod issues as SPEC details: one `{path, message}` per problem, the path naming the field (`services.1`). */
export function issuesToDetails(error: z.ZodError, input: unknown, root = 'body'): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  for (const issue of error.issues) {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) details.push({ path: path ? `${path}.${key}` : key, message: 'is not a known field' });
      continue;
    }
    if (issue.path.length > 0 && issue.code === 'invalid_type' && valueAt(input, issue.path) === undefined) {
      details.push({ path, message: 'is required' });
      continue;
    }
    if (issue.path.length === 0 && issue.code === 'invalid_type') {
      const shape = issue.expected === 'array' ? 'array' : 'object';
      details.push({ path: root, message: root === 'body' ? `must be a JSON ${shape}` : issue.message });
      continue;
    }
    details.push({ path: path || root, message: issue.message });
  }
  // One entry per problem: two rules failing with the same message (1e308 is neither whole nor ≤ 720) say it once;
  // at most MAX_ERROR_DETAILS of them (linear: a body of 60,000 unknown fields costs milliseconds).
  return boundedDetails(details);
}

// NUL (PostgreSQL text cannot hold it) and UTF-16 surrogates that are not a pair (no UTF-8 spelling).
const unsafeText = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The first place in `input` (keys included, at most `depth` levels down) where a string holds a NUL character or a
 * lone surrogate, as a SPEC detail path; undefined when there is none. SPEC Part 2 "Bad input never gives 5xx":
 * such text never reaches the database or a parser.
 */
export function findUnsafeText(input: unknown, path: string, depth = 0): string | undefined {
  if (typeof input === 'string') return unsafeText.test(input) ? path : undefined;
  if (input === null || typeof input !== 'object' || depth > 32) return undefined;
  for (const [key, value] of Object.entries(input)) {
    const at = path ? `${path}.${key}` : key;
    if (unsafeText.test(key)) return at;
    const found = findUnsafeText(value, at, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** 400 validation_failed naming the first string of `input` with a NUL or a lone surrogate (findUnsafeText), if any. */
export function refuseUnsafeText(input: unknown, root = 'body'): void {
  const unsafe = findUnsafeText(input, '');
  if (unsafe !== undefined) {
    throw new AppError('validation_failed', 'The request is not valid.', [
      { path: unsafe || root, message: 'must not contain NUL characters or unpaired surrogates' },
    ]);
  }
}

function parseWith<T extends z.ZodType>(schema: T, input: unknown, root: string): z.output<T> {
  refuseUnsafeText(input, root);
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new AppError('validation_failed', 'The request is not valid.', issuesToDetails(result.error, input, root));
}

/** The JSON body read by `jsonBody`, validated; `validation_failed` names every bad or unknown field. */
export function parseBody<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  return parseWith(schema, ctx.state.body, 'body');
}

/**
 * parseBody for a JSON object whose rules go beyond its shape (the catalogue, the clock, the organisation policy).
 * When the shape is wrong, `rules` still sees the fields that are right on their own, and the one 400
 * `validation_failed` names the problems of both (docs/admin-api.md "Errors and limits"); a field that failed its
 * shape is not checked again (`failed` names those fields, for a rule that needs several). When the shape is right the value is returned and the service checks the rules.
 */
export async function parseBodyWithRules<T extends z.ZodObject>(
  ctx: Context,
  schema: T,
  rules: (valid: Partial<z.output<T>>, failed: ReadonlySet<string>) => Promise<ErrorDetail[]> | ErrorDetail[],
): Promise<z.output<T>> {
  return validateWithRules(schema, ctx.state.body, rules);
}

/**
 * parseBodyWithRules for an object that did not come as a request body (a `sat` command's options, shaped as the
 * admin API's body): the same one `validation_failed` naming every problem of shape and rules at once.
 */
export async function validateWithRules<T extends z.ZodObject>(
  schema: T,
  body: unknown,
  rules: (valid: Partial<z.output<T>>, failed: ReadonlySet<string>) => Promise<ErrorDetail[]> | ErrorDetail[],
): Promise<z.output<T>> {
  const unsafe = findUnsafeText(body, '');
  if (unsafe !== undefined) return parseWith(schema, body, 'body'); // refused before any rule looks at the text
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const details = issuesToDetails(result.error, body, 'body');
  const valid: Record<string, unknown> = {};
  const failed = new Set<string>();
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    for (const [key, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
      if (!Object.hasOwn(body, key)) continue;
      const one = field.safeParse((body as Record<string, unknown>)[key]);
      if (one.success && one.data !== undefined) valid[key] = one.data;
      else failed.add(key);
    }
  }
  details.push(...(await rules(valid as Partial<z.output<T>>, failed))); // repeats dropped by AppError
  throw new AppError('validation_failed', 'The request is not valid.', details);
}

/**
 * The names of the query string's parameters that are not UTF-8 once percent-decoded (`q=%FF`, an encoded lone
 * surrogate `%ED%A0%80`, an overlong `%C0%AF`), which Node's parser would turn into U+FFFD and use (SPEC Part 2
 * "Bad input never gives 5xx": a 4xx naming the parameter, as for the same bytes in a JSON body). Pure.
 */
export function malformedQueryParameters(querystring: string): string[] {
  const bad: string[] = [];
  for (const pair of querystring.split('&')) {
    if (pair === '') continue;
    const [rawKey = '', ...rest] = pair.split('=');
    const decode = (text: string): string | undefined => {
      try {
        return decodeURIComponent(text.replace(/\+/g, ' '));
      } catch {
        return undefined;
      }
    };
    const key = decode(rawKey);
    if (key === undefined) bad.push(rawKey.slice(0, 32));
    else if (decode(rest.join('=')) === undefined) bad.push(key.slice(0, 32));
  }
  return bad;
}

/**
 * The query string, validated the same way (a repeated parameter arrives as an array and fails a string rule). An
 * empty parameter the schema knows (`?q=&status=&limit=`, as forms and URL templates send) means "not given"; an
 * unknown one is refused even when empty (`?sort=`, `?foo`), as at the calls that take none (docs/admin-api.md).
 */
export function parseQuery<T extends z.ZodType>(ctx: Context, schema: T): z.output<T> {
  const known = schema instanceof z.ZodObject ? new Set(Object.keys(schema.shape)) : undefined;
  const query = Object.fromEntries(Object.entries(ctx.query).filter(([k, v]) => v !== '' || (known !== undefined && !known.has(k))));
  return parseWith(schema, query, 'query');
}

/** For endpoints that take no body: none, or an empty JSON object. */
export const emptyBody = z.object({}).strict().optional();
