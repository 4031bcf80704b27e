// The admin API's OpenAPI 3.1 description, built from the zod schemas the routes validate with (zod 4's JSON Schema
// output). Each route file describes its routes with one `describeRoute` call beside the route; a test walks the
// router and fails for any route left undescribed.
import { z } from 'zod';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What the description says about one route. Paths are relative to /admin/api and use the router's `:param` form. */
export interface RouteDoc {
  summary: string;
  description?: string;
  /** Grouping in the document (defaults to the first path segment). */
  tag?: string;
  /** Needs a session (Bearer or cookie + X-CSRF-Token); default true. */
  auth?: boolean;
  /** The JSON request body's schema (the one the route parses); a z.optional one is described as not required. */
  body?: z.ZodType;
  /** The query string's schema: a z.object whose fields become query parameters. */
  query?: z.ZodType;
  /** Success status; default 200 (204 means no body). */
  status?: number;
  /** Schema of the success body, when there is one. */
  response?: z.ZodType;
  /** Response headers of the success answer, name to description (`Location` of a created resource). */
  successHeaders?: Record<string, string>;
  /**
   * The route's own error codes by status, beside those every route of its kind may answer (operation(): 400, 401,
   * 403, 404, 413, 415): the 409s of its rules, 429 rate_limited for the throttled ones, login's 401.
   */
  errors?: Partial<Record<400 | 401 | 404 | 409 | 429, string[]>>;
}

const docs = new Map<string, RouteDoc & { method: HttpMethod; path: string }>();

/** Registers (or replaces) the description of `METHOD path`. Call it next to the route's registration. */
export function describeRoute(method: HttpMethod, path: string, doc: RouteDoc): void {
  docs.set(`${method} ${path}`, { ...doc, method, path });
}

/** Whether `METHOD path` (path relative to /admin/api) has a description. */
export function isDescribed(method: string, path: string): boolean {
  return docs.has(`${method.toUpperCase()} ${path}`);
}

/** The description of `METHOD path` (path relative to /admin/api, `:param` form), for tests that hold real answers
 * against it. */
export function describedRoute(method: HttpMethod, path: string): RouteDoc | undefined {
  return docs.get(`${method} ${path}`);
}

/** The described routes, as `METHOD path` keys. */
export function describedRoutes(): string[] {
  return [...docs.keys()];
}

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const out = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
  delete out.$schema; // the document's jsonSchemaDialect says it once
  return out;
}

const errorSchema: JsonSchema = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string', description: 'A stable, snake_case error code.' },
    message: { type: 'string' },
    details: {
      type: 'array',
      items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
  },
};

function queryParameters(schema: z.ZodType): JsonSchema[] {
  const s = jsonSchema(schema, 'input');
  const properties = (s.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((s.required as string[] | undefined) ?? []);
  return Object.entries(properties).map(([name, p]) => ({
    name,
    in: 'query',
    required: required.has(name),
    ...(typeof p.description === 'string' ? { description: p.description } : {}),
    schema: p,
  }));
}

function operation(doc: RouteDoc & { method: HttpMethod; path: string }): JsonSchema {
  const pathParams = [...doc.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  const status = doc.status ?? 200;
  const success: JsonSchema = { description: status === 204 ? 'No content.' : 'Success.' };
  if (status !== 204 && doc.response) success.content = { 'application/json': { schema: jsonSchema(doc.response, 'output') } };
  if (doc.successHeaders) {
    success.headers = Object.fromEntries(Object.entries(doc.successHeaders).map(([name, description]) => [name, { description, schema: { type: 'string' } }]));
  }
  const auth = doc.auth ?? true;
  const unsafe = doc.method !== 'GET';
  // The error codes a route of this kind may answer, by status: a body or query the server refuses (a call that
  // takes no query refuses one too), the session (and, with the cookie, the CSRF header), an
  // unknown or another organisation's id, a body too large or not JSON; then the route's own.
  const codes: Record<string, string[]> = {
    '400': unsafe ? ['validation_failed', 'invalid_json'] : ['validation_failed'],
    ...(auth ? { '401': ['unauthorized'] } : {}),
    // Unsafe methods with the cookie need X-CSRF-Token; a read that sends one with the cookie must send the right one.
    ...(auth ? { '403': ['csrf_failed'] } : {}),
    ...(pathParams.length > 0 ? { '404': ['not_found'] } : {}),
    ...(unsafe ? { '413': ['payload_too_large'], '415': ['unsupported_media_type'] } : {}),
  };
  for (const [code, list] of Object.entries(doc.errors ?? {})) codes[code] = [...new Set([...(codes[code] ?? []), ...(list ?? [])])];
  const errorResponses = Object.fromEntries(
    Object.entries(codes)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([code, list]) => [code, { description: `Error ${list.map((c) => `\`${c}\``).join(', ')}.`, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]),
  );
  const op: JsonSchema = {
    operationId: `${doc.method.toLowerCase()}${doc.path.replace(/[:/]+([A-Za-z0-9_])/g, (_m, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '')}`,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag ?? doc.path.split('/')[1] ?? 'admin'],
    // The cookie needs the CSRF header on unsafe methods only (SPEC "Admin API"); a GET with the cookie alone is signed in.
    security: auth ? [{ bearerSession: [] }, doc.method === 'GET' ? { sessionCookie: [] } : { sessionCookie: [], csrfToken: [] }] : [],
    parameters: [...pathParams, ...(doc.query ? queryParameters(doc.query) : [])],
    responses: {
      [String(status)]: success,
      ...errorResponses,
      // Any other client error, and 503 service_unavailable / 507 insufficient_storage (the database), in the one shape.
      '4XX': { $ref: '#/components/responses/Error' },
      default: { $ref: '#/components/responses/Error' },
    },
  };
  if (doc.body) {
    const optional = doc.body instanceof z.ZodOptional;
    const schema = optional ? (doc.body as z.ZodOptional<z.ZodType>).unwrap() : doc.body;
    op.requestBody = { required: !optional, content: { 'application/json': { schema: jsonSchema(schema, 'input') } } };
  }
  return op;
}

/** The OpenAPI 3.1 document for every described route, under `prefix` (/admin/api). */
export function openApiDocument(options: { prefix: string; serverUrl: string; version: string }): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const sorted = [...docs.values()].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  for (const doc of sorted) {
    const path = options.prefix + doc.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    (paths[path] ??= {})[doc.method.toLowerCase()] = operation(doc);
  }
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'System Access Token server: admin API',
      version: options.version,
      description:
        'Administrators of an organisation manage its system access tokens. Every call is scoped to the ' +
        "caller's organisation. Errors are `{error, message, details?}`.",
    },
    servers: [{ url: options.serverUrl }],
    paths,
    components: {
      schemas: { Error: errorSchema },
      responses: {
        Error: { description: 'An error.', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
      securitySchemes: {
        bearerSession: { type: 'http', scheme: 'bearer', description: 'The session token from POST /admin/api/login.' },
        sessionCookie: { type: 'apiKey', in: 'cookie', name: 'sat_session', description: 'The session cookie set by login (named __Host-sat_session when it is Secure with Path=/: HTTPS with ISSUER at the root).' },
        csrfToken: {
          type: 'apiKey',
          in: 'header',
          name: 'X-CSRF-Token',
          description: 'With the cookie, on unsafe methods: the csrf_token from login or GET /me. Optional on reads, but checked when sent.',
        },
      },
    },
  };
}

/**
 * The routes of `router` (a @koa/router with `prefix`) that have no description, as `METHOD path` (path relative
 * to the prefix): what the completeness test asserts to be empty. HEAD (implied by GET) is not listed.
 */
export function undescribedRoutes(router: { stack: Array<{ path: string | RegExp; methods: string[] }> }, prefix: string): string[] {
  const missing: string[] = [];
  for (const layer of router.stack) {
    if (layer.methods.length === 0) continue; // router.use() middleware, not a route
    const path = String(layer.path).startsWith(prefix) ? String(layer.path).slice(prefix.length) : String(layer.path);
    for (const method of layer.methods) {
      if (method === 'HEAD') continue;
      if (!isDescribed(method, path)) missing.push(`${method} ${path}`);
    }
  }
  return missing;
}
