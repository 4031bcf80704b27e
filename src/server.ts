// The Koa application: middleware order and mounts. Never listens (main.ts and tests do).
import Koa from 'koa';
import type { Deps } from './deps.js';
import { accessLog } from './http/access-log.js';
import { errorHandler } from './http/error-handler.js';
import {
  allowedMethods,
  closeWhenDraining,
  notFound,
  refuseExpectations,
  requestId,
  checkRequestHead,
  guardRequestTarget,
  securityHeaders,
  servedUnderIssuerPath,
  unmapClientAddress,
} from './http/common.js';
import { sessionCookieName } from './admin/auth.js';
import { adminApi } from './admin/router.js';
import { createOAuth, oauthEndpointMatcher, type OAuth } from './oauth/index.js';
import { consoleRouter } from './console/routes.js';
import { responseMetrics } from './ops/response-metrics.js';
import { opsRouter } from './ops/routes.js';
import { scanningRouter } from './scanning/routes.js';
import type { ScanningKeys } from './scanning/keys.js';
import type { KeyRing } from './keys/index.js';

/** What `serve` resolved from the configuration before opening the database (main.ts `checkStartConfig`). */
export interface Prepared {
  keyRing?: KeyRing;
  scanningKeys?: ScanningKeys;
}

export interface Server {
  app: Koa;
  oauth: OAuth;
  /**
   * Graceful shutdown, first step (SPEC "Operations"): from now on /readyz answers 503 and every response
   * carries `Connection: close`, so load balancers stop routing here and keep-alive clients reconnect elsewhere.
   */
  beginDrain(): void;
}

/** The longest an admin call on tokens waits for freshLastUse's write. */
const FRESH_LAST_USE_WAIT_MS = 1_000;

/**
 * Before an admin call on tokens: writes this instance's pending `last_used_at` bookkeeping (tokens/usage.ts,
 * otherwise flushed every 5 s), so a token used here a moment ago does not show `last_used_at: null` (SPEC "Token
 * resource"). Nothing pending: no database work. A failed write is left to the next flush; the call goes on.
 */
function freshLastUse(oauth: OAuth): Koa.Middleware {
  // One write at a time, and at most one more queued behind it for the calls that came meanwhile: a flood of
  // (even unauthenticated) calls on these paths costs the database one statement at a time, not one per call.
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const flush = (): Promise<void> => {
    if (running) {
      queued ??= running.then(() => {
        queued = undefined;
        return flush();
      });
      return queued;
    }
    // Not logged: the uses stay pending for the 5 s job, which reports a database outage once (db/outage.ts).
    running = oauth
      .flushUsage()
      .then(() => undefined, () => undefined)
      .finally(() => (running = undefined));
    return running;
  };
  return async (ctx, next) => {
    if (ctx.path.startsWith('/admin/api/tokens')) {
      // Waited for at most FRESH_LAST_USE_WAIT_MS, so a stalled database does not double the call's own wait.
      const flushed = flush();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([flushed, new Promise<void>((resolve) => (timer = setTimeout(resolve, FRESH_LAST_USE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    await next();
  };
}

/** The Koa application on `deps`; `prepared` parts are used as given, the others are opened here. */
export async function createServer(deps: Deps, prepared: Prepared = {}): Promise<Server> {
  const app = new Koa();
  app.proxy = deps.config.trustProxy; // X-Forwarded-* only behind a trusted load balancer (README)
  // ctx.ip = the address our first proxy saw (the TRUST_PROXY_HOPS-th X-Forwarded-For entry from the right: 1, the
  // right-most, for one load balancer), never one a client wrote further left.
  app.maxIpsCount = deps.config.trustProxyHops;
  app.silent = true; // errors are logged by errorHandler, redacted
  const oauth = await createOAuth(deps, prepared.keyRing);
  const lifecycle = { draining: false };
  const ops = opsRouter(deps, lifecycle, oauth); // /readyz and the metrics see its key health
  const scanning = scanningRouter(deps, prepared.scanningKeys); // throws at start when SECRET_SCANNING_KEYS_FILE is set but unusable

  app.use(guardRequestTarget); // an unparsable request target: kept for the 400 below, routed nowhere; X-Forwarded-* right-most
  app.use(unmapClientAddress); // ::ffff:a.b.c.d → a.b.c.d, before anything reads ctx.ip
  app.use(requestId); // X-Request-Id in and out
  app.use(accessLog(deps.log)); // one JSON line per request, when its response is done
  const underIssuerPath = servedUnderIssuerPath(deps.config.issuer);
  if (underIssuerPath) app.use(underIssuerPath); // ISSUER=https://host/sat: /sat/token is /token (logged as asked)
  app.use(responseMetrics); // responses by status class, 429s, refused sign-ins
  app.use(closeWhenDraining(lifecycle)); // shutting down: `Connection: close` on every response
  app.use(securityHeaders(deps.config.hstsMaxAgeSeconds)); // nosniff, no referrer, no framing, HSTS over HTTPS
  const isOAuthEndpoint = oauthEndpointMatcher(deps.config.issuer); // their refusals in the RFC 6749 shape
  app.use(checkRequestHead(isOAuthEndpoint)); // bad target, no/two/invalid Host, two Authorization, a transfer coding: 400
  app.use(refuseExpectations(isOAuthEndpoint)); // Expect other than 100-continue: 417 expectation_failed
  app.use(errorHandler(deps.log)); // AppError and unknown errors → {error, message, details?}
  app.use(ops.routes()); // /healthz /readyz /metrics
  app.use(allowedMethods(ops)); // 405 method_not_allowed with Allow, SPEC error shape
  app.use(freshLastUse(oauth)); // token resources show uses of this instance not yet flushed
  app.use(adminApi(deps)); // /admin/api: JSON admin API with its own body reader (never on the OAuth paths)
  const consolePages = consoleRouter(deps, (ctx) => sessionCookieName(ctx, deps)); // the admin API's cookie: the page asks /me only with it
  app.use(consolePages.routes()); // /admin: the console page and its assets, strict CSP
  app.use(allowedMethods(consolePages));
  app.use(scanning.routes()); // POST /secret-scanning/verify (signed partner alerts), POST /credentials/revoke (public)
  app.use(allowedMethods(scanning));
  app.use(oauth.middleware); // OAuth endpoints (oidc-provider), last before 404: keeps its own RFC 6749 errors
  app.use(notFound); // JSON 404
  return {
    app,
    oauth,
    beginDrain() {
      lifecycle.draining = true;
    },
  };
}
