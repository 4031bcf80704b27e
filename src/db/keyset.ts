/**
 * Keyset paging on (created_at desc, id desc): the opaque cursor is base64url(JSON [created_at, id]) of the last
 * item of a page. The time is carried with PostgreSQL's microsecond precision (JS Dates keep milliseconds only),
 * so rows created within one millisecond are neither skipped nor repeated.
 */
export interface PageKey {
  at: string;
  id: string;
}

/** SQL for a row's cursor time: UTC, microseconds. Select it `as cursor_at`. */
export const cursorTimeSql = (column: string): string =>
  `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const timePattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
/** A UUID in its 8-4-4-4-12 hex form, any case, no version check; no regex flag, so it reads the same as a JSON Schema `pattern`. */
export const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const uuidPattern = UUID_PATTERN;

/**
 * True when `at` (already shaped like timePattern) names a real instant: a calendar date that exists (no
 * February 30th), hours 0-23, minutes and seconds 0-59, a year from 1 to 9999. Date.parse alone is not enough:
 * V8 rolls 2026-02-30 over into March, which PostgreSQL refuses with an error.
 */
function isRealInstant(at: string): boolean {
  const [y, mo, d, h, mi, s] = [0, 5, 8, 11, 14, 17].map((i, k) => Number(at.slice(i, k === 0 ? 4 : i + 2))) as number[];
  if (y! < 1 || h! > 23 || mi! > 59 || s! > 59) return false;
  const t = new Date(Date.UTC(2000, mo! - 1, d!));
  t.setUTCFullYear(y!);
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo! - 1 && t.getUTCDate() === d;
}

/** The opaque cursor for `key`: base64url of the JSON `[at, id]` (decodeCursor reads it back). Pure. */
export function encodeCursor(key: PageKey): string {
  return Buffer.from(JSON.stringify([key.at, key.id]), 'utf8').toString('base64url');
}

/** The key inside a cursor this server issued, or undefined for anything else. */
export function decodeCursor(cursor: string): PageKey | undefined {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [at, id] = value as unknown[];
  if (typeof at !== 'string' || typeof id !== 'string' || !timePattern.test(at) || !uuidPattern.test(id)) return undefined;
  if (!isRealInstant(at)) return undefined;
  return { at, id: id.toLowerCase() };
}

/** Whether `value` is a UUID in its 8-4-4-4-12 hex form, any case (no version check). Pure. */
export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}

/** `%`, `_` and `\` taken literally in a LIKE pattern (used with ESCAPE '\'). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => '\\' + c);
}
