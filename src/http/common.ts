import { isIP } from 'node:net';
import { randomUUID } from 'node:crypto';
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { issuerPath } from '../config/index.js';

/** Tags each request with an id (kept from a sane X-Request-Id header, else new) and echoes it back. */
export const requestId: Middleware = async (ctx, next) => {
  const given = ctx.get('x-request-id');
  ctx.state.requestId = /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
  ctx.set('X-Request-Id', ctx.state.requestId as string);
  await next();
};

const IPV4_MAPPED = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;
const IPV4_WITH_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/;
const BRACKETED_IPV6 = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/;

/**
 * The client address in one spelling, so the audit log, sessions, mails, the access log and every per-address check
 * (sign-in throttle, allowlists, rate limits) see one address once: IPv4 for an IPv4-mapped IPv6 address
 * (`::ffff:203.0.113.7`, what a dual-stack socket reports with HOST=::, or a forwarded address in that form), and
 * without the port some load balancers write into X-Forwarded-For (`203.0.113.7:51234`, `[2001:db8::7]:443`; Azure
 * Application Gateway does), which would otherwise make every connection a new address. Runs first: everything
 * after reads `ctx.ip`. A forwarded entry that is not an IP address is replaced by the peer's address.
 */
export const unmapClientAddress: Middleware = (ctx, next) => {
  const ip = ctx.ip;
  let unmapped = unmappedAddress(ip);
  // TRUST_PROXY with an X-Forwarded-For entry that is no address (a proxy that appends instead of overwriting, and a
  // client that wrote text there): the peer's address instead, so no such text is stored or counted as an address.
  if (unmapped !== '' && isIP(unmapped) === 0) unmapped = unmappedAddress(ctx.req.socket.remoteAddress ?? '');
  if (unmapped !== ip) ctx.request.ip = unmapped;
  return next();
};

/**
 * `::ffff:a.b.c.d` and `a.b.c.d:port` → `a.b.c.d`; `[v6]` and `[v6]:port` → `v6` (unmapped too); any other text as
 * given (the common cases, a bare IPv4 or IPv6 address, without running a pattern).
 */
export function unmappedAddress(ip: string): string {
  const first = ip.charCodeAt(0);
  if (first === 91 /* '[' */) {
    const inner = BRACKETED_IPV6.exec(ip)?.[1];
    return inner === undefined ? ip : unmappedAddress(inner);
  }
  if (first !== 58 /* ':' */) {
    const colon = ip.indexOf(':');
    return colon > 6 && ip.lastIndexOf(':') === colon && ip.indexOf('.') < colon ? (IPV4_WITH_PORT.exec(ip)?.[1] ?? ip) : ip;
  }
  if (ip.length < 14) return ip;
  return IPV4_MAPPED.exec(ip)?.[1] ?? ip;
}

/**
 * Serves every endpoint also under ISSUER's path, for an ISSUER with one (`https://example.com/sat`): discovery
 * advertises `ISSUER/token`, `ISSUER/jwks`, `ISSUER/.well-known/openid-configuration` (OpenID Connect Discovery
 * §4), console links in mails are `ISSUER/admin`, and a proxy that forwards `/sat/...` without stripping the prefix
 * reaches them; RFC 8414 §3.1's path-inserted `/.well-known/oauth-authorization-server/sat` is served too. The
 * root paths keep working (a proxy that strips the prefix). A request under the prefix is routed as the same path
 * without it; `ctx.originalUrl` keeps what was asked. An ISSUER without a path: undefined (no middleware).
 */
export function servedUnderIssuerPath(issuer: string): Middleware | undefined {
  const prefix = issuerPath(issuer);
  if (prefix === '') return undefined; // nothing to route: no middleware on every request
  const insertedWellKnown = `${OAUTH_METADATA_PATH}${prefix}`;
  return async (ctx, next) => {
    const requested = ctx.path;
    if (requested === prefix || requested.startsWith(`${prefix}/`)) {
      ctx.path = requested.slice(prefix.length) || '/';
      // As a mounting router does: oidc-provider builds the URL a request was sent to (a DPoP proof's expected `htu`,
      // a client assertion's `aud`) from `req.baseUrl` and the route, so `/sat/token` stays `/sat/token`, not `/token`.
      (ctx.req as typeof ctx.req & { baseUrl?: string }).baseUrl = prefix;
    } else if (requested === insertedWellKnown) ctx.path = OAUTH_METADATA_PATH;
    await next();
  };
}

/** RFC 8414's well-known path of the authorization server metadata. */
const OAUTH_METADATA_PATH = '/.well-known/oauth-authorization-server';

/**
 * While the server drains (SIGTERM), every response says `Connection: close`: Node closes the keep-alive
 * connection once that response is written, so no connection is cut in the middle of a request. Set before and
 * after the handlers, for requests that were already running when the drain began.
 */
export function closeWhenDraining(lifecycle: { readonly draining: boolean }): Middleware {
  return async (ctx, next) => {
    if (lifecycle.draining) ctx.set('Connection', 'close');
    try {
      await next();
    } finally {
      if (lifecycle.draining && !ctx.headerSent) ctx.set('Connection', 'close');
    }
  };
}

/**
 * A request target Node passes on but that cannot be parsed (an absolute-form target with a bad authority,
 * `GET http://[::1/token HTTP/1.1`: Node's `url.parse` throws, and Koa's `ctx.path` with it, which ended in a bare
 * 500 with no access-log line): the raw target is kept in `ctx.state.invalidTarget` for the access log and
 * `checkRequestHead`'s 400, and the request is routed nowhere ('/'). Behind a trusted load balancer
 * (`app.proxy`), an `X-Forwarded-Proto` or `X-Forwarded-Host` list is read from the right, the value our first proxy
 * added (`app.maxIpsCount`, TRUST_PROXY_HOPS, entries from the right), as `X-Forwarded-For` is (Koa would take the
 * left-most, which the client wrote). Runs first: everything after may read `ctx.path`, `ctx.protocol` and `ctx.host`.
 */
export const guardRequestTarget: Middleware = (ctx, next) => {
  const target = ctx.req.url ?? '';
  // Origin-form ('/…', nearly every request) goes straight on; another form is checked with the WHATWG parser
  // first, so Node's legacy one never sees it invalid (it would also print a DEP0170 warning, not a JSON line).
  let invalid = target.charCodeAt(0) !== 47 /* '/' */ && target !== '*' && !URL.canParse(target);
  if (!invalid) {
    try {
      void ctx.path;
    } catch {
      invalid = true;
    }
  }
  if (invalid) {
    ctx.state.invalidTarget = target;
    ctx.req.url = '/';
  }
  if (ctx.app.proxy) {
    const { headers } = ctx.req;
    const hops = ctx.app.maxIpsCount || 1; // TRUST_PROXY_HOPS: the entry our first proxy added, as for the address
    for (const name of ['x-forwarded-proto', 'x-forwarded-host']) {
      const value = headers[name];
      if (typeof value === 'string' && value.includes(',')) {
        const entries = value.split(',');
        headers[name] = entries[Math.max(0, entries.length - hops)]!.trim();
      }
    }
  }
  return next();
};

/**
 * RFC 9110 §7.2 `Host = uri-host [ ":" port ]`: an IP literal in brackets (IPv6, with a zone id as Node's own client
 * writes it, `[fe80::1%eth0]`, or RFC 6874's `%25eth0`; or RFC 3986's IPvFuture `[v1.x]`), or a reg-name, then digits.
 */
const HOST_VALUE =
  /^(?:\[(?:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9\-._~%]+)?|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::\d*)?$/;

/** What is wrong with a request's head, as the status, error code and message of its refusal; undefined when nothing. */
export interface HeadProblem {
  status: number;
  error: string;
  message: string;
}

/**
 * The checks of `checkRequestHead`, on Node's request: an unparsable target (`invalidTarget`, guardRequestTarget),
 * HTTP/1.1 without Host, more than one Host, Authorization or Content-Type field line (RFC 9112 §3.2 for Host;
 * singleton fields, RFC 9110 §5.3: Node keeps the first and drops the others, so a proxy reading another copy would
 * disagree about who is calling), a Host that is not `host[:port]`, `Transfer-Encoding` on an HTTP/1.0 request (400),
 * and transfer codings before `chunked` (400, where RFC 9112 §6.1 suggests 501: SPEC Part 2 allows no 5xx for bad
 * input; Node decodes `gzip, chunked` as plain chunked; a list that does not end in `chunked` Node refuses itself with
 * 400).
 */
export function requestHeadProblem(
  req: { httpVersionMajor: number; httpVersionMinor: number; headers: Record<string, string | string[] | undefined>; rawHeaders: string[] },
  invalidTarget: unknown,
): HeadProblem | undefined {
  if (typeof invalidTarget === 'string') return { status: 400, error: 'bad_request', message: 'The request target is not a valid URL.' };
  const host = req.headers.host;
  if (host === undefined) {
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      return { status: 400, error: 'bad_request', message: 'The request is not valid HTTP/1.1: it has no Host header.' };
    }
  } else if (typeof host !== 'string' || !HOST_VALUE.test(host)) {
    return { status: 400, error: 'bad_request', message: 'The Host header is not a valid host name and port.' };
  }
  let hosts = 0;
  let authorizations = 0;
  let contentTypes = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // By length first: most field names are none of the three.
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    else if (name.length === 13 && name.toLowerCase() === 'authorization') authorizations++;
    else if (name.length === 12 && name.toLowerCase() === 'content-type') contentTypes++;
  }
  const twice = hosts > 1 ? 'Host' : authorizations > 1 ? 'Authorization' : contentTypes > 1 ? 'Content-Type' : undefined;
  if (twice) return { status: 400, error: 'bad_request', message: `The request has more than one ${twice} header.` };
  const coding = req.headers['transfer-encoding'];
  if (coding !== undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 0) {
    // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; such a message's framing is faulty (a proxy that passes it on
    // may end it elsewhere than Node does). Refused, and the connection closed.
    return { status: 400, error: 'bad_request', message: 'Transfer-Encoding is not part of HTTP/1.0: send a Content-Length.' };
  }
  if (coding !== undefined && (typeof coding !== 'string' || coding.trim().toLowerCase() !== 'chunked')) {
    // RFC 9112 §6.1 suggests 501; SPEC Part 2 ("bad input never gives 5xx") wants a 4xx, and a 5xx anyone can send
    // would feed the alert on 5xx answers (docs/operations.md).
    return { status: 400, error: 'bad_request', message: 'The only transfer coding this server accepts is chunked.' };
  }
  return undefined;
}

/**
 * Refuses a request whose head is wrong (`requestHeadProblem`) in the endpoint's error shape (`refuse`), with its
 * access-log line and `Connection: close` (the body, if any, is not read), instead of by Node with an empty 400 and
 * no line (main.ts turns Node's `requireHostHeader` off) or not at all. HTTP/1.0 needs no Host.
 */
export function checkRequestHead(isOAuthEndpoint: (path: string) => boolean = () => false): Middleware {
  return async (ctx, next) => {
    const problem = requestHeadProblem(ctx.req, ctx.state.invalidTarget);
    if (problem) {
      ctx.set('Connection', 'close');
      refuse(ctx, isOAuthEndpoint, problem.status, problem.error, problem.message);
      return;
    }
    await next();
  };
}

/**
 * A refusal in the shape of the endpoint asked: RFC 6749 §5.2 `{error: "invalid_request", error_description}` at
 * the OAuth endpoints (`isOAuthEndpoint` of the path as asked, ISSUER's path included), SPEC's `{error, message}`
 * elsewhere.
 */
function refuse(ctx: Context, isOAuthEndpoint: (path: string) => boolean, status: number, error: string, message: string): void {
  ctx.status = status;
  const asked = typeof ctx.state.invalidTarget === 'string' ? '/' : new URL(ctx.originalUrl, 'http://x').pathname;
  if (isOAuthEndpoint(asked) || isOAuthEndpoint(ctx.path)) {
    ctx.set('Cache-Control', 'no-store'); // as every other answer of these endpoints (RFC 6749 §5.1)
    ctx.set('Pragma', 'no-cache');
    ctx.body = { error: 'invalid_request', error_description: message };
  } else {
    ctx.body = { error, message };
  }
}

/** Node's own test for an expectation it fulfils itself (it sends `100 Continue` unless told otherwise). */
const CONTINUE_EXPECTATION = /(?:^|\W)100-continue(?:$|\W)/i;

/**
 * An `Expect` other than `100-continue` (RFC 9110 §10.1.1: 417): Node hands such requests to main.ts's
 * 'checkExpectation' listener, the app, instead of answering an empty 417 with no log line; this answers them in
 * the endpoint's error shape (`refuse`).
 */
export function refuseExpectations(isOAuthEndpoint: (path: string) => boolean = () => false): Middleware {
  return async (ctx, next) => {
    const expectation = ctx.get('expect');
    if (expectation !== '' && !CONTINUE_EXPECTATION.test(expectation)) {
      ctx.set('Connection', 'close'); // the body, if any, is not read
      refuse(ctx, isOAuthEndpoint, 417, 'expectation_failed', 'Only Expect: 100-continue is supported: send the request without the Expect header.');
      return;
    }
    await next();
  };
}

/**
 * Headers every response carries; the console adds its own Content-Security-Policy. A response to a request that
 * came over HTTPS (directly, or through a trusted proxy: ctx.secure) also says `Strict-Transport-Security:
 * max-age=hstsMaxAgeSeconds` (RFC 6797; none when 0): the browser then never reaches this host over plain HTTP, where
 * a network attacker could read or plant the session cookie. Browsers ignore the header over HTTP, so it is not sent.
 */
export function securityHeaders(hstsMaxAgeSeconds: number): Middleware {
  return async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    if (hstsMaxAgeSeconds > 0 && ctx.secure) ctx.set('Strict-Transport-Security', `max-age=${hstsMaxAgeSeconds}`);
    await next();
  };
}

/**
 * JSON 404 for anything no route answered. The message names the method only, never the path: a path may carry a
 * secret pasted into a URL (SPEC "no secret in any response").
 */
export const notFound: Middleware = async (ctx) => {
  ctx.status = 404;
  ctx.body = { error: 'not_found', message: `Nothing here answers ${ctx.method}: check the path.` };
};

/**
 * @koa/router's allowedMethods for `router`, with SPEC's error shape: a path the router knows, asked with a method
 * it has no route for, is 405 `{"error":"method_not_allowed","message"}` with `Allow` (RFC 9110 §15.5.6), and
 * OPTIONS is 204 with `Allow` (RFC 9110 §9.3.7). A method the router does not implement at all (PROPFIND) is the same 405 on a known
 * path and stays whatever answered downstream (404) on an unknown one. Only what the router itself set is rewritten:
 * a 405 from downstream (the OAuth endpoints' own RFC 6749 ones) passes unchanged.
 */
export function allowedMethods(router: Router): Middleware {
  const inner = router.allowedMethods() as unknown as Middleware;
  return async (ctx, next) => {
    let downstream = 404;
    await inner(ctx, async () => {
      await next();
      downstream = ctx.status;
    });
    if (ctx.method === 'OPTIONS' && ctx.status === 200 && downstream === 404 && ctx.response.get('Allow')) {
      // The router's answer to OPTIONS: nothing but `Allow`, so 204 with no body (it was a 200 with an empty body
      // labelled JSON), as the discovery documents' OPTIONS answers.
      ctx.status = 204;
      ctx.body = null;
      return;
    }
    if (ctx.status === downstream || (ctx.status !== 405 && ctx.status !== 501)) return;
    const allow = ctx.response.get('Allow');
    if (!allow) {
      ctx.remove('Allow');
      ctx.status = downstream;
      return;
    }
    ctx.status = 405;
    ctx.body = { error: 'method_not_allowed', message: `${ctx.method} is not allowed here. Allowed: ${allow}.` };
  };
}

/**
 * Whether to answer `Expect: 100-continue` with "100 Continue" (RFC 9110 §10.1.1) before the application reads
 * `req`'s body: not when its head is refused anyway (requestHeadProblem: a second Host, a transfer coding other than
 * chunked, …), nor when its `Content-Length` is over what the endpoint of its path reads (`limitFor`, in bytes), so a
 * client is never invited to send a body only to have it refused (413, 400). main.ts's 'checkContinue' listener.
 */
export function invitesBody(
  req: { url?: string; httpVersionMajor: number; httpVersionMinor: number; headers: Record<string, string | string[] | undefined>; rawHeaders: string[] },
  limitFor: (path: string) => number,
): boolean {
  if (requestHeadProblem(req, undefined)) return false;
  let path: string;
  try {
    path = new URL(req.url ?? '/', 'http://target.invalid').pathname;
  } catch {
    return false; // an unparsable target: refused with 400 before any body is read
  }
  return !(Number(req.headers['content-length']) > limitFor(path));
}
