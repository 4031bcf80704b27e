// Structured JSON logging with redaction: no secret, password, cookie or Authorization value is ever written.
import type { LogLevel } from './config/index.js';

export type LogFields = Record<string, unknown>;
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const levels: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };
const sensitiveKey = /secret|password|passwd|authorization|cookie|session_token|private|^token$|^d$/i;
// Client secrets (sats_…), session tokens (sas_…) and Basic/Bearer credentials inside free text.
const sensitiveText = /\b(sats_[A-Za-z0-9]+|sas_[A-Za-z0-9_-]+)|((?:Basic|Bearer)\s+)[A-Za-z0-9._~+/=-]+/g;

export function redactText(text: string): string {
  return text.replace(sensitiveText, (_m, secret: string | undefined, scheme: string | undefined) =>
    secret ? '[REDACTED]' : `${scheme ?? ''}[REDACTED]`,
  );
}

/** Deep-copies `value`, replacing sensitive keys and secrets in strings by "[REDACTED]". */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[…]';
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message), stack: value.stack ? redactText(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = sensitiveKey.test(k) ? '[REDACTED]' : redact(v, depth + 1);
    return out;
  }
  return value;
}

export function createLogger(
  level: LogLevel = 'info',
  base: LogFields = {},
  write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
): Logger {
  const min = levels[level];
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields) => {
    if (levels[lvl] < min) return;
    const entry = { time: new Date().toISOString(), level: lvl, msg: redactText(msg), ...(redact({ ...base, ...fields }) as LogFields) };
    write(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}
