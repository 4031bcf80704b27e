import { createHash, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import { pingDb } from '../db/index.js';
import type { Deps } from '../deps.js';
import { listSigningKeys, signingKeySchedule } from '../keys/index.js';
import { mailQueueStats } from '../mail/index.js';
import { mailFailedMessages, mailQueueDepth, mailQueueOldestAge, registry, setOrOmit, signingKeyAge, signingKeyNextRotation } from '../metrics.js';

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
    const disk = deps.db.diskSpace?.();
    if (disk?.low) {
      // Checked first: a query on an embedded database with a full disk may never return.
      ctx.status = 503;
      ctx.body = { status: 'unavailable', database: 'ok', disk: 'low', free_mb: Math.floor(disk.freeBytes / 1048576) };
      return;
    }
    const database = await pingDb(deps.db.knex);
    ctx.status = database === 'ok' ? 200 : 503;
    ctx.body = { status: database === 'ok' ? 'ready' : 'unavailable', database };
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
    try {
      const mail = await mailQueueStats(deps.db.knex);
      mailQueueDepth.set(mail.pending);
      mailQueueOldestAge.set(mail.oldestPendingAt ? Math.max(0, (deps.clock().getTime() - mail.oldestPendingAt.getTime()) / 1000) : 0);
      mailFailedMessages.set(mail.failed);
    } catch (err) {
      deps.log.warn('metrics: could not read the mail outbox', { err }); // the other metrics still answer
    }
    try {
      const { config } = deps;
      const schedule = signingKeySchedule(await listSigningKeys(deps.db.knex), deps.clock(), config.keyRotationDays, config.keyPublishAheadSeconds);
      setOrOmit('sat_signing_key_age_seconds', signingKeyAge, schedule.ageSeconds);
      setOrOmit('sat_signing_key_next_rotation_seconds', signingKeyNextRotation, schedule.nextRotationSeconds);
    } catch (err) {
      deps.log.warn('metrics: could not read the signing keys', { err });
    }
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  return router;
}
