// Prometheus metrics (prom-client): one registry per process, created on first use.
import client from 'prom-client';

/** The process's Prometheus registry (GET /metrics), with prom-client's default process metrics. */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

/**
 * sat_token_requests_total: token endpoint requests by `outcome` (ok or the OAuth error code) and `path` (fast,
 * provider).
 */
export const tokenRequests = new client.Counter({
  name: 'sat_token_requests_total',
  help: 'Token endpoint requests by outcome (ok, or the OAuth error code) and by the path that answered (fast, provider).',
  labelNames: ['outcome', 'path'] as const,
  registers: [registry],
});

/**
 * sat_token_request_duration_seconds: token endpoint latency in seconds, by `outcome` and `path` (1 ms to 1 s
 * buckets).
 */
export const tokenRequestDuration = new client.Histogram({
  name: 'sat_token_request_duration_seconds',
  help: 'Token endpoint latency, by outcome and by the path that answered (fast, provider).',
  labelNames: ['outcome', 'path'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  registers: [registry],
});

/** sat_mail_deliveries_total: outbox delivery attempts by `outcome` (sent, retried, failed) and mail `kind`. */
export const mailDeliveries = new client.Counter({
  name: 'sat_mail_deliveries_total',
  help: 'Mail delivery attempts from the outbox by outcome: sent, retried (will try again), failed (gave up).',
  labelNames: ['outcome', 'kind'] as const,
  registers: [registry],
});

/**
 * sat_token_fast_path_fallbacks_total: requests the fast path took but handed to oidc-provider after an error inside
 * it.
 */
export const tokenFastPathFallbacks = new client.Counter({
  name: 'sat_token_fast_path_fallbacks_total',
  help: 'Token requests the fast path took but could not answer (an error inside it); oidc-provider answered them.',
  registers: [registry],
});

/** sat_token_fast_path_enabled: 1 when the token endpoint fast path is on (TOKEN_FAST_PATH, self-check), else 0. */
export const tokenFastPathEnabled = new client.Gauge({
  name: 'sat_token_fast_path_enabled',
  help: '1 when the token endpoint fast path is on (TOKEN_FAST_PATH and its startup self-check), else 0.',
  registers: [registry],
});

/**
 * sat_mail_queue_depth: messages waiting in the outbox. Read at scrape time (GET /metrics) from the shared outbox:
 * the same on every instance.
 */
export const mailQueueDepth = new client.Gauge({
  name: 'sat_mail_queue_depth',
  help: 'Mail messages waiting in the outbox (all instances).',
  registers: [registry],
});

/**
 * sat_mail_queue_oldest_age_seconds: age in seconds of the oldest waiting outbox message, 0 when none waits; read at
 * scrape time, left out when the outbox cannot be read.
 */
export const mailQueueOldestAge = new client.Gauge({
  name: 'sat_mail_queue_oldest_age_seconds',
  help: 'Age of the oldest mail message waiting in the outbox; 0 when none waits.',
  registers: [registry],
});

/**
 * sat_mail_failed_messages: outbox messages delivery gave up on (all instances); read at scrape time, left out when
 * the outbox cannot be read.
 */
export const mailFailedMessages = new client.Gauge({
  name: 'sat_mail_failed_messages',
  help: 'Mail messages in the outbox that delivery gave up on (all instances).',
  registers: [registry],
});

/** sat_sign_in_failures_total: refused admin sign-ins by `reason` (invalid_credentials, rate_limited). */
export const signInFailures = new client.Counter({
  name: 'sat_sign_in_failures_total',
  help: 'Refused admin sign-ins: invalid_credentials (wrong email or password) or rate_limited (throttled).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

/** sat_rate_limited_requests_total: requests answered 429 rate_limited, by `endpoint`. */
export const rateLimitedRequests = new client.Counter({
  name: 'sat_rate_limited_requests_total',
  help: 'Requests answered 429, by endpoint.',
  labelNames: ['endpoint'] as const,
  registers: [registry],
});

/** sat_password_resets_throttled_total: reset requests past their limits, answered 202 with nothing mailed. */
export const passwordResetsNotSent = new client.Counter({
  name: 'sat_password_resets_throttled_total',
  help: 'Password reset requests past their limits (per client address, or reset mails per administrator): answered 202 like any other, nothing mailed.',
  registers: [registry],
});

/** sat_http_responses_total: HTTP responses by `status_class` (2xx, 3xx, 4xx, 5xx). */
export const httpResponses = new client.Counter({
  name: 'sat_http_responses_total',
  help: 'HTTP responses by status class (2xx, 3xx, 4xx, 5xx).',
  labelNames: ['status_class'] as const,
  registers: [registry],
});

/**
 * sat_signing_key_age_seconds: how long the signing key in use has signed. Read at scrape time (GET /metrics) from
 * the signing_keys table: the same on every instance.
 */
export const signingKeyAge = new client.Gauge({
  name: 'sat_signing_key_age_seconds',
  help: 'How long the signing key in use has signed.',
  registers: [registry],
});

/**
 * sat_signing_key_next_rotation_seconds: seconds until the next automatic key rotation (0: due); left out with
 * KEY_ROTATION_DAYS=0 (setOrOmit).
 */
export const signingKeyNextRotation = new client.Gauge({
  name: 'sat_signing_key_next_rotation_seconds',
  help: 'Seconds until the next automatic key rotation publishes a new key (0: due); absent when KEY_ROTATION_DAYS is 0.',
  registers: [registry],
});

/**
 * sat_signing_keys_unopened: published signing keys this instance cannot open (sealed under a key-encryption key it
 * does not have, e.g. added after `sat keys rewrap` before this instance was given the new key). Per instance.
 */
export const signingKeysUnopened = new client.Gauge({
  name: 'sat_signing_keys_unopened',
  help: 'Published signing keys this instance cannot open with its key-encryption key (0 when it holds them all).',
  registers: [registry],
});

/**
 * Sets the unlabelled gauge `gauge` (registered in `registry` as `name`) to `value`, or leaves it out of the scrape
 * while `value` is null. prom-client's reset() would print an unlabelled gauge as 0, and "0" means something (for
 * sat_signing_key_next_rotation_seconds: a rotation is due, which operators alert on; docs/operations.md says the
 * metric is absent with KEY_ROTATION_DAYS=0).
 */
export function setOrOmit(name: string, gauge: client.Gauge, value: number | null): void {
  if (value === null) {
    if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
    return;
  }
  if (!registry.getSingleMetric(name)) registry.registerMetric(gauge);
  gauge.set(value);
}
