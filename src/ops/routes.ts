import { createHash, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import { pingDb } from '../db/index.js';
import type { Deps } from '../deps.js';
import { registry } from '../metrics.js';

/** GET /healthz (alive), /readyz (database reachable, 503 otherwise), /metrics (Prometheus text). */
export function opsRouter(deps: Deps): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const disk = deps.db.diskSpace?.();
    if (disk?.low) {
      // Checked first: a query on an embedded database with a full disk may never return.
      ctx.status = 503;
      ctx.body = { status: 'unavailable', database: 'ok', disk: 'low', free_mb: Math.floor(disk.freeBytes / 1048576) };
      return;
    }
    const ok = await pingDb(deps.db.knex);
    ctx.status = ok ? 200 : 503;
    ctx.body = ok ? { status: 'ready', database: 'ok' } : { status: 'unavailable', database: 'unreachable' };
  });
  const expected = deps.config.metricsToken ? createHash('sha256').update(deps.config.metricsToken).digest() : undefined;
  router.get('/metrics', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (expected) {
      // METRICS_TOKEN: `Authorization: Bearer <token>`, compared in constant time (over SHA-256s of equal length).
      const presented = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'))?.[1] ?? '';
      if (!timingSafeEqual(createHash('sha256').update(presented).digest(), expected)) {
        ctx.status = 401;
        ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
        ctx.body = { error: 'unauthorized', message: 'GET /metrics needs the bearer token set in METRICS_TOKEN.' };
        return;
      }
    }
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  return router;
}
