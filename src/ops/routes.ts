import Router from '@koa/router';
import { pingDb } from '../db/index.js';
import type { Deps } from '../deps.js';
import { mailQueueStats } from '../mail/index.js';
import { mailFailedMessages, mailQueueDepth, mailQueueOldestAge, registry } from '../metrics.js';

/**
 * GET /healthz (alive), /readyz (database reachable and not shutting down, 503 otherwise), /metrics (Prometheus
 * text). `lifecycle.draining` turns /readyz to 503 at once on SIGTERM (SPEC "Operations").
 */
export function opsRouter(deps: Deps, lifecycle: { readonly draining: boolean } = { draining: false }): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (lifecycle.draining) {
      ctx.status = 503;
      ctx.body = { status: 'shutting_down' };
      return;
    }
    const ok = await pingDb(deps.db.knex);
    ctx.status = ok ? 200 : 503;
    ctx.body = ok ? { status: 'ready', database: 'ok' } : { status: 'unavailable', database: 'unreachable' };
  });
  router.get('/metrics', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      const mail = await mailQueueStats(deps.db.knex);
      mailQueueDepth.set(mail.pending);
      mailQueueOldestAge.set(mail.oldestPendingAt ? Math.max(0, (deps.clock().getTime() - mail.oldestPendingAt.getTime()) / 1000) : 0);
      mailFailedMessages.set(mail.failed);
    } catch (err) {
      deps.log.warn('metrics: could not read the mail outbox', { err }); // the other metrics still answer
    }
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  return router;
}
