// Logging a database outage once, then a summary, instead of once per refused request (issue 10 item 12).
import type { Logger } from '../log.js';
import { briefDatabaseError } from './errors.js';

/** Seconds a client is asked to wait (Retry-After) when the database is out of reach. */
export const OUTAGE_RETRY_AFTER_SECONDS = 5;
const SUMMARY_MS = 10_000;

interface OutageState {
  refused: number;
  since: number;
  timer: NodeJS.Timeout | undefined;
}
const states = new WeakMap<Logger, OutageState>();

/**
 * Notes one request refused because the database is unavailable. The first of an outage is logged at `error`
 * (with the error's code and message, no stack); after that one `warn` summary every 10 s while refusals go on;
 * 10 s without one ends the outage, and the next refusal is logged in full again.
 */
export function noteDatabaseOutage(log: Logger, err: unknown, where: string): void {
  let state = states.get(log);
  if (!state) {
    state = { refused: 0, since: Date.now(), timer: undefined };
    states.set(log, state);
  }
  if (state.timer === undefined) {
    log.error('database unavailable: answering 503 until it is back', { where, ...briefDatabaseError(err) });
    state.since = Date.now();
    state.refused = 0;
    const s = state;
    s.timer = setInterval(() => {
      if (s.refused === 0) {
        clearInterval(s.timer);
        s.timer = undefined;
        log.info('no request refused for database reasons in the last 10 s', { outage_seconds: Math.round((Date.now() - s.since) / 1000) });
        return;
      }
      log.warn('database still unavailable', { refused_last_10s: s.refused, outage_seconds: Math.round((Date.now() - s.since) / 1000) });
      s.refused = 0;
    }, SUMMARY_MS);
    s.timer.unref();
    return;
  }
  state.refused++;
}
