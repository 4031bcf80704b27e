import { createHash, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import { briefDatabaseError, pingDb } from '../db/index.js';
import type { Deps } from '../deps.js';
import { listSigningKeys, signingKeySchedule } from '../keys/index.js';
import { mailQueueStats } from '../mail/index.js';
import { mailFailedMessages, mailQueueDepth, mailQueueOldestAge, registry, setOrOmit, signingKeyAge, signingKeyNextRotation, signingKeysUnopened } from '../metrics.js';

/**
 * GET /healthz (alive), /readyz (database reachable and not shutting down, 503 otherwise), /metrics (Prometheus
 * text). `lifecycle.draining` turns /readyz to 503 at once on SIGTERM (SPEC "Operations"). `signing.keyHealth`
 * (the OAuth edge's KeyHealth): /readyz is 503 once this instance's signing key leaves the JWKS before a token it
 * signs now would expire, and `sat_signing_keys_unopened` counts the published keys it cannot open.
 */
export function opsRouter(
  deps: Deps,
  lifecycle: { readonly draining: boolean } = { draining: false },
  signing: { readonly keyHealth: { unopened: readonly string[]; signerUsableUntil?: Date } } = { keyHealth: { unopened: [] } },
): Router {
  const router = new Router({ sensitive: true, strict: true }); // exact paths, as the admin API's
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
    const usableUntil = signing.keyHealth.signerUsableUntil;
    if (database === 'ok' && usableUntil && deps.clock().getTime() >= usableUntil.getTime()) {
      // A key added after `sat keys rewrap` signs everywhere else and this instance cannot open it (docs/keys.md).
      ctx.status = 503;
      ctx.body = { status: 'unavailable', database, signing_key: 'unpublished' };
      return;
    }
    ctx.status = database === 'ok' ? 200 : 503;
    ctx.body = { status: database === 'ok' ? 'ready' : 'unavailable', database };
  });
  // One short line a minute at most for what a scrape could not read (every 15 s during an outage otherwise), with
  // the driver's message only: no statement (knex puts it first), no stack.
  const warnedAt = new Map<string, number>();
  const unreadable = (what: string, err: unknown) => {
    const now = Date.now();
    if (now - (warnedAt.get(what) ?? -Infinity) < 60_000) return;
    warnedAt.set(what, now);
    deps.log.warn(`metrics: could not read ${what}; its gauges are left out`, briefDatabaseError(err));
  };
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
    // A gauge the database could not give this time is left out of the scrape (not 0, which would read as "no
    // backlog" or "rotation due" and silence or fire the alerts of docs/operations.md); the other metrics answer.
    try {
      const mail = await mailQueueStats(deps.db.knex);
      setOrOmit('sat_mail_queue_depth', mailQueueDepth, mail.pending);
      setOrOmit(
        'sat_mail_queue_oldest_age_seconds',
        mailQueueOldestAge,
        mail.oldestPendingAt ? Math.max(0, (deps.clock().getTime() - mail.oldestPendingAt.getTime()) / 1000) : 0,
      );
      setOrOmit('sat_mail_failed_messages', mailFailedMessages, mail.failed);
    } catch (err) {
      for (const [name, gauge] of [['sat_mail_queue_depth', mailQueueDepth], ['sat_mail_queue_oldest_age_seconds', mailQueueOldestAge], ['sat_mail_failed_messages', mailFailedMessages]] as const) {
        setOrOmit(name, gauge, null);
      }
      unreadable('the mail outbox', err);
    }
    try {
      const { config } = deps;
      const schedule = signingKeySchedule(await listSigningKeys(deps.db.knex), deps.clock(), config.keyRotationDays, config.keyPublishAheadSeconds);
      setOrOmit('sat_signing_key_age_seconds', signingKeyAge, schedule.ageSeconds);
      setOrOmit('sat_signing_key_next_rotation_seconds', signingKeyNextRotation, schedule.nextRotationSeconds);
    } catch (err) {
      setOrOmit('sat_signing_key_age_seconds', signingKeyAge, null);
      setOrOmit('sat_signing_key_next_rotation_seconds', signingKeyNextRotation, null);
      unreadable('the signing keys', err);
    }
    signingKeysUnopened.set(signing.keyHealth.unopened.length); // this instance's, not the database's
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  return router;
}
