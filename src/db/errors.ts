/**
 * A foreign-key violation (SQLSTATE 23503): a row refers to one that is gone,
 * e.g. an administrator removed while their own call was writing.
 */
export function isForeignKeyViolation(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === '23503';
}

/** True when `err` is a unique violation (SQLSTATE 23505), optionally of the named constraint. Same code on both engines. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: string; constraint?: string; message?: string } | undefined;
  if (e?.code !== '23505') return false;
  if (!constraint) return true;
  return e.constraint === constraint || (e.message ?? '').includes(constraint);
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', '57P01', '57P02', '57P03', '57014', '25006']);
const UNAVAILABLE_TEXT = /^timeout expired$|Connection terminated|Connection ended unexpectedly|timeout exceeded when trying to connect|Query read timeout|Knex: Timeout acquiring a connection|Client has encountered a connection error|connection is closed|canceling statement due to statement timeout|does not support SSL connections/i;

/**
 * True when `err` says the database is out of reach rather than that the request was wrong: refused or dropped
 * connections, connection-class SQLSTATEs (08xxx), shutdown (57P0x), statement timeout (57014), insufficient
 * resources (class 53: a full disk, out of memory, too many connections), a read-only transaction (25006: a standby
 * after a failover, or `default_transaction_read_only`), pool or query timeouts, and a new connection that the server turns down (a database closed
 * to connections for maintenance, a rotated password, a dropped database: isConnectionRefusedByDatabase), and a
 * database without the server's tables (42P01, undefined_table). The edges
 * answer those 503 with Retry-After (issue 10 item 12).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.message === 'aborted') return false; // a client that went away mid-request (Node's ECONNRESET on the request)
  if (typeof e.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || /^(08|53)[0-9A-Z]{3}$/.test(e.code))) return true;
  if (isConnectionRefusedByDatabase(err)) return true;
  // ALTER DATABASE … ALLOW_CONNECTIONS false: SQLSTATE 55000, which also names unrelated statement errors.
  if (e.code === '55000' && typeof e.message === 'string' && /is not currently accepting connections/.test(e.message)) return true;
  if (e.name === 'KnexTimeoutError') return true;
  // 42P01 undefined_table: the database answers without the server's tables (dropped and created again empty under
  // a running server, a restore half-way): /readyz says schema_missing, and the requests that need them wait as for
  // an outage rather than failing with SQL in the log.
  if (e.code === '42P01') return true;
  return typeof e.message === 'string' && UNAVAILABLE_TEXT.test(e.message);
}

/**
 * True when PostgreSQL turned the connection itself down: bad credentials or no such role (SQLSTATE class 28), no
 * such database (3D000). The configuration is wrong, not the request; callers say so instead of logging a stack.
 */
export function isConnectionRefusedByDatabase(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && (/^28[0-9A-Z]{3}$/.test(code) || code === '3D000');
}

/**
 * A database error for a log line: its SQLSTATE (when there is one) and the driver's own message, at most 200
 * characters, without the statement knex puts before it ("select … - relation … does not exist") and never a stack
 * (SPEC "no stack traces, no SQL … in any log line").
 */
export function briefDatabaseError(err: unknown): { code: string | undefined; error: string } {
  const e = err as { code?: unknown; message?: unknown } | null | undefined;
  const message = typeof e?.message === 'string' ? e.message.split(' - ').pop()! : String(err);
  return { code: typeof e?.code === 'string' ? e.code : undefined, error: message.slice(0, 200) };
}
