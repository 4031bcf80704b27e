// The Koa application: middleware order and mounts. Never listens (main.ts and tests do).
import Koa from 'koa';
import type { Deps } from './deps.js';
import { errorHandler } from './http/error-handler.js';
import { notFound, requestId, securityHeaders } from './http/common.js';
import { adminApi } from './admin/router.js';
import { createOAuth, type OAuth } from './oauth/index.js';
import { consoleRouter } from './console/routes.js';
import { opsRouter } from './ops/routes.js';
import { scanningRouter } from './scanning/routes.js';

export interface Server {
  app: Koa;
  oauth: OAuth;
}

export async function createServer(deps: Deps): Promise<Server> {
  const app = new Koa();
  app.proxy = deps.config.trustProxy; // X-Forwarded-* only behind a trusted load balancer (README)
  app.maxIpsCount = 1; // ctx.ip = the address our load balancer saw (the right-most X-Forwarded-For), not a client-written one
  app.silent = true; // errors are logged by errorHandler, redacted
  const oauth = await createOAuth(deps);
  const ops = opsRouter(deps);
  const scanning = scanningRouter(deps); // throws at start when SECRET_SCANNING_KEYS_FILE is set but unusable

  app.use(requestId); // X-Request-Id in and out
  app.use(securityHeaders); // nosniff, no referrer, no framing
  app.use(errorHandler(deps.log)); // AppError and unknown errors → {error, message, details?}
  app.use(ops.routes()); // /healthz /readyz /metrics
  app.use(ops.allowedMethods());
  app.use(adminApi(deps)); // /admin/api: JSON admin API with its own body reader (never on the OAuth paths)
  app.use(consoleRouter(deps).routes()); // /admin: the console page and its assets, strict CSP
  app.use(scanning.routes()); // POST /secret-scanning/verify (signed partner alerts), POST /credentials/revoke (public)
  app.use(oauth.middleware); // OAuth endpoints (oidc-provider), last before 404: keeps its own RFC 6749 errors
  app.use(notFound); // JSON 404
  return { app, oauth };
}
