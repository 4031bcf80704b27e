// Structured JSON logging (pino) with redaction: no secret, password, cookie or Authorization value is ever written.
import { pino, stdTimeFunctions, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { LogLevel } from './config/index.js';

export type LogFields = Record<string, unknown>;
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /** Whether a call at `level` writes anything (callers skip building fields that would be dropped). */
  enabled?(level: 'debug' | 'info' | 'warn' | 'error'): boolean;
}

const REDACTED = '[REDACTED]';
const sensitiveKey = /secret|password|passwd|authorization|cookie|session_token|private|^token$|^d$/i;
// Client secrets (sats_…), session tokens (sas_…), invitation and password-reset links' tokens (sai_…, sar_…) and
// Basic/Bearer credentials inside free text. A prefix counts after anything but a letter or digit (`a_sats_…`, where
// `\b` saw no boundary, leaked), and anywhere when 20 or more token characters follow (`xsats_…` in a path). In any
// case: `SATS_…` is no valid secret, but its random body is a secret's (a prefix typed or encoded in capitals).
const anyCase = (word: string) => [...word].map((c) => `[${c.toLowerCase()}${c.toUpperCase()}]`).join('');
const [SATS, SAS, SAI, SAR] = ['sats', 'sas', 'sai', 'sar'].map(anyCase);
const sensitiveText = new RegExp(
  `(?<![A-Za-z0-9])(?:${SATS}_[A-Za-z0-9]+|(?:${SAS}|${SAI}|${SAR})_[A-Za-z0-9_-]+)|(?:${SATS}|${SAS}|${SAI}|${SAR})_[A-Za-z0-9_-]{20,}|` +
    '((?:Basic|Bearer)\\s+)[A-Za-z0-9._~+/=-]+',
  'g',
);

/**
 * pino's own redaction (fast-redact paths), for the usual places of credentials in request-shaped objects.
 * `redact()` below covers any depth and free text as well; the two overlap on purpose.
 */
export const redactPaths = [
  'authorization',
  'cookie',
  'password',
  'client_secret',
  'secret',
  'token',
  'session_token',
  'current_password',
  'new_password',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.authorization',
  '*.cookie',
  '*.password',
  '*.client_secret',
  '*.secret',
  '*.session_token',
];

/**
 * `text` with every credential in it replaced by "[REDACTED]": client secrets (sats_…), session, invitation and reset
 * tokens (sas_…, sai_…, sar_…) in any case, and Basic/Bearer credentials (the scheme is kept). Pure.
 */
export function redactText(text: string): string {
  return text.replace(sensitiveText, (_m, scheme: string | undefined) => `${scheme ?? ''}${REDACTED}`);
}

/** A database statement knex put before an error's message ("insert into … - <the database's message>"). */
const STATEMENT = /^\s*(select|insert|update|delete|with|create|alter|drop|lock|begin|commit|rollback|set|show|truncate|explain|analyze|vacuum|copy|checkpoint)\b[\s\S]* - /i;

/**
 * An error as a log field: its name, its code when it has one, and its message, never its stack or the SQL
 * statement knex prefixes to a database error's message (SPEC Part 2: "No stack traces, no SQL … in any response
 * or log line"); the message is cut at 500 characters.
 */
export function errorField(err: Error): Record<string, unknown> {
  const code = (err as { code?: unknown }).code;
  const message = STATEMENT.test(err.message) ? err.message.slice(err.message.lastIndexOf(' - ') + 3) : err.message;
  return { name: err.name, ...(typeof code === 'string' ? { code } : {}), message: redactText(message.slice(0, 500)) };
}

/** Deep-copies `value`, replacing sensitive keys and secrets in strings by "[REDACTED]"; errors by errorField. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[…]';
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) return errorField(value);
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = sensitiveKey.test(k) ? REDACTED : redact(v, depth + 1);
    return out;
  }
  return value;
}

function wrap(p: PinoLogger): Logger {
  const emit = (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: LogFields) => {
    if (!p.isLevelEnabled(level)) return;
    if (fields) p[level](redact(fields) as object, redactText(msg));
    else p[level](redactText(msg));
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => wrap(p.child(redact(fields) as LogFields)),
    enabled: (level) => p.isLevelEnabled(level),
  };
}

/**
 * A JSON-lines logger: `{"level":"info","time":"<ISO 8601>","msg":…, …fields}`, one line per call.
 * `write` receives each line without its newline (tests capture lines this way); by default lines go to stdout
 * synchronously, so nothing is lost when the process exits right after logging.
 */
export function createLogger(level: LogLevel = 'info', base: LogFields = {}, write?: (line: string) => void): Logger {
  const destination: DestinationStream = write
    ? { write: (line: string) => write(line.endsWith('\n') ? line.slice(0, -1) : line) }
    : pino.destination({ dest: 1, sync: true });
  const p = pino(
    {
      level,
      base: redact(base) as LogFields,
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: redactPaths, censor: REDACTED },
      // Errors are already fields (errorField, through redact): not pino's `err` serializer, which adds a stack.
      serializers: { err: (value: unknown) => value },
    },
    destination,
  );
  return wrap(p);
}
