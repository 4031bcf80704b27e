import { validationFailed } from '../errors.js';
import { dayCount } from '../text.js';

const DAY_MS = 86_400_000;
const datePattern = /^(\d{4})-(\d{2})-(\d{2})$/;
/**
 * ISO 8601 extended format: date YYYY-MM-DD, 'T', time hh:mm[:ss[(.|,)fraction]], offset Z | ±hh | ±hh:mm | ±hhmm.
 * RFC 3339's date-times are the subset with seconds, a '.' fraction and ±hh:mm.
 */
const dateTimePattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * Date.UTC for every year 0000-9999: Date.UTC reads years 0 to 99 as 1900 to 1999, so those are set with
 * setUTCFullYear (0000-02-29 is a real proleptic Gregorian leap day, just long past). Milliseconds.
 */
function utc(y: number, m: number, d: number, hh = 0, mm = 0, ss = 0, ms = 0): number {
  const t = new Date(Date.UTC(2000, m - 1, d, hh, mm, ss, ms));
  t.setUTCFullYear(y, m - 1, d);
  return t.getTime();
}

function validDate(y: number, m: number, d: number): boolean {
  const t = new Date(utc(y, m, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

export interface ParsedExpiry {
  instant: Date;
  /** True when given as YYYY-MM-DD (valid through the end of that day, UTC). */
  dateOnly: boolean;
}

/**
 * Parses SPEC's `expires_at`: `YYYY-MM-DD` (end of that day, UTC) or an ISO 8601 extended-format date-time with an
 * offset (`2027-01-15T10:00Z`, `…T10:00:00.5+02:00`, `…T10:00:00,5+02`, `…T10:00:00+0200`); a fraction finer than a
 * millisecond is cut. Undefined for anything else: no offset, an impossible date or time (hour 24, second 60), other
 * ISO 8601 forms (basic format, week or ordinal dates).
 */
export function parseExpiry(value: string): ParsedExpiry | undefined {
  const d = datePattern.exec(value);
  if (d) {
    const [y, m, day] = [Number(d[1]), Number(d[2]), Number(d[3])];
    if (!validDate(y, m, day)) return undefined;
    return { instant: new Date(utc(y, m, day) + DAY_MS - 1), dateOnly: true };
  }
  const t = dateTimePattern.exec(value);
  if (!t) return undefined;
  const [y, m, day, hh, mm, ss] = [t[1], t[2], t[3], t[4], t[5], t[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  if (!validDate(y, m, day) || hh > 23 || mm > 59 || ss > 59) return undefined;
  const ms = Number((t[7] ?? '').padEnd(3, '0').slice(0, 3));
  const offset = t[8]!.toUpperCase();
  let offsetMinutes = 0;
  if (offset !== 'Z') {
    const digits = offset.slice(1).replace(':', '');
    const [oh, om] = [Number(digits.slice(0, 2)), Number(digits.slice(2) || '0')];
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (offset.startsWith('-') ? -1 : 1) * (oh * 60 + om);
  }
  const instant = utc(y, m, day, hh, mm, ss, ms) - offsetMinutes * 60_000;
  return { instant: new Date(instant), dateOnly: false };
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
    throw validationFailed('expires_at', `must be at most ${dayCount(maxLifetimeDays)} ahead`);
  }
  return parsed.instant;
}

/** Seconds an access token issued at `iatSeconds` may live: the configured TTL, never past the token's expiry. */
export function accessTokenLifetime(iatSeconds: number, ttlSeconds: number, expiresAt: Date): number {
  return Math.min(ttlSeconds, Math.floor(expiresAt.getTime() / 1000) - iatSeconds);
}
