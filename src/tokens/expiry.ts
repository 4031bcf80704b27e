import { validationFailed } from '../errors.js';

const DAY_MS = 86_400_000;
const datePattern = /^(\d{4})-(\d{2})-(\d{2})$/;
const dateTimePattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;

function validDate(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

export interface ParsedExpiry {
  instant: Date;
  /** True when given as YYYY-MM-DD (valid through the end of that day, UTC). */
  dateOnly: boolean;
}

/** Parses SPEC's `expires_at`: `YYYY-MM-DD` (end of that day, UTC) or an ISO 8601 date-time with offset. */
export function parseExpiry(value: string): ParsedExpiry | undefined {
  const d = datePattern.exec(value);
  if (d) {
    const [y, m, day] = [Number(d[1]), Number(d[2]), Number(d[3])];
    if (!validDate(y, m, day)) return undefined;
    return { instant: new Date(Date.UTC(y, m - 1, day) + DAY_MS - 1), dateOnly: true };
  }
  const t = dateTimePattern.exec(value);
  if (!t) return undefined;
  const [y, m, day, hh, mm, ss] = [t[1], t[2], t[3], t[4], t[5], t[6] ?? '0'].map(Number) as number[];
  if (!validDate(y!, m!, day!) || hh! > 23 || mm! > 59 || ss! > 59) return undefined;
  const offset = t[8]!.toUpperCase();
  if (offset !== 'Z') {
    const [oh, om] = offset.slice(1).split(':').map(Number) as [number, number];
    if (oh > 23 || om > 59) return undefined;
  }
  const ms = Date.parse(value.toUpperCase());
  return Number.isNaN(ms) ? undefined : { instant: new Date(ms), dateOnly: false };
}

/**
 * True when `parsed` is no further ahead than `maxLifetimeDays`: a date may be the calendar day (UTC) that the
 * lifetime reaches, a date-time at most that instant.
 */
export function withinLifetime(parsed: ParsedExpiry, now: Date, maxLifetimeDays: number): boolean {
  const limit = now.getTime() + maxLifetimeDays * DAY_MS;
  const latest = parsed.dateOnly ? Math.floor(limit / DAY_MS) * DAY_MS + DAY_MS - 1 : limit;
  return parsed.instant.getTime() <= latest;
}

/**
 * The whole `expires_at` rule: well-formed, in the future, and no further ahead than the maximum lifetime.
 * A date may be the calendar day (UTC) that the maximum lifetime reaches; a date-time at most that instant.
 */
export function resolveExpiry(value: string, now: Date, maxLifetimeDays: number): Date {
  const parsed = parseExpiry(value);
  if (!parsed) {
    throw validationFailed('expires_at', 'must be a date (YYYY-MM-DD) or an ISO 8601 date-time with an offset');
  }
  if (parsed.instant.getTime() <= now.getTime()) throw validationFailed('expires_at', 'must be in the future');
  if (!withinLifetime(parsed, now, maxLifetimeDays)) {
    throw validationFailed('expires_at', `must be at most ${maxLifetimeDays} days ahead`);
  }
  return parsed.instant;
}

/** Seconds an access token issued at `iatSeconds` may live: the configured TTL, never past the token's expiry. */
export function accessTokenLifetime(iatSeconds: number, ttlSeconds: number, expiresAt: Date): number {
  return Math.min(ttlSeconds, Math.floor(expiresAt.getTime() / 1000) - iatSeconds);
}
