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
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
  if (Number.isNaN(Date.parse(at))) return undefined;
  return { at, id: id.toLowerCase() };
}

export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}

/** `%`, `_` and `\` taken literally in a LIKE pattern (used with ESCAPE '\'). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => '\\' + c);
}
