// The admin API's closed set of error codes (SPEC "Admin API") and the one error class that carries them.

export type ErrorCode =
  | 'validation_failed'
  | 'invalid_json'
  | 'invalid_credentials'
  | 'unauthorized'
  | 'forbidden'
  | 'csrf_failed'
  | 'not_found'
  | 'method_not_allowed'
  | 'name_taken'
  | 'token_limit_reached'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'conflict'
  | 'admin_exists'
  | 'last_admin'
  | 'service_unavailable'
  | 'insufficient_storage'
  | 'rotation_in_progress'
  | 'last_secret'
  | 'internal_error';

const statusOf: Record<ErrorCode, number> = {
  validation_failed: 400,
  invalid_json: 400,
  invalid_credentials: 401,
  unauthorized: 401,
  forbidden: 403,
  csrf_failed: 403,
  not_found: 404,
  method_not_allowed: 405,
  name_taken: 409,
  token_limit_reached: 409,
  conflict: 409,
  admin_exists: 409,
  last_admin: 409,
  rotation_in_progress: 409,
  last_secret: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  service_unavailable: 503,
  insufficient_storage: 507,
};

export interface ErrorDetail {
  path: string;
  message: string;
}

/**
 * The most details one error answer lists: past it, the last says how many more there were. A body of 60,000
 * unknown fields is answered in a few milliseconds with a short body, not with 60,000 details (SPEC Part 2 "Bad
 * input never gives 5xx"; a request that costs seconds of CPU would starve token issuance).
 */
export const MAX_ERROR_DETAILS = 50;

/** `details` without repeats (same path and message), in order, and at most MAX_ERROR_DETAILS of them. Linear. */
export function boundedDetails(details: readonly ErrorDetail[]): ErrorDetail[] {
  const seen = new Set<string>();
  const unique: ErrorDetail[] = [];
  for (const d of details) {
    const key = `${d.path}\u0000${d.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(d);
  }
  if (unique.length <= MAX_ERROR_DETAILS) return unique;
  const shown = unique.slice(0, MAX_ERROR_DETAILS - 1);
  return [...shown, { path: 'body', message: `and ${unique.length - shown.length} more problems` }];
}

/**
 * An admin API error (SPEC "Admin API"): `code` from the closed ErrorCode set, its HTTP status from one table,
 * `details` as `{path, message}` (duplicates dropped, at most MAX_ERROR_DETAILS), extra response `headers`.
 * `expose` follows Koa's convention; http/error-handler.ts renders it as `{error, message, details?}`.
 */
export class AppError extends Error {
  readonly status: number;
  readonly expose = true;
  readonly details?: ErrorDetail[];
  constructor(
    readonly code: ErrorCode,
    message: string,
    details?: ErrorDetail[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
    this.status = statusOf[code];
    this.details = details === undefined ? undefined : boundedDetails(details);
  }
}

/**
 * 429 rate_limited with the seconds until the caller may try again. The domain says how long; the HTTP edge
 * (http/error-handler.ts) turns it into `Retry-After` (RFC 9110 §10.2.3).
 */
export class RateLimitedError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('rate_limited', message);
    this.name = 'RateLimitedError';
  }
}

const INVALID_REQUEST = 'The request is not valid.';

/** 400 validation_failed with one detail (`path`, `message`) and the generic message "The request is not valid.". */
export const validationFailed = (path: string, message: string): AppError =>
  new AppError('validation_failed', INVALID_REQUEST, [{ path, message }]);

/** Whether `err` is a 400 validation_failed naming `path` in its details (a wrong current password, a bad link). */
export function isValidationFailureAt(err: unknown, path: string): boolean {
  return err instanceof AppError && err.code === 'validation_failed' && (err.details ?? []).some((d) => d.path === path);
}

/**
 * The validation problems of one request, gathered so that one 400 `validation_failed` names them all (SPEC
 * "Admin API": one `{path, message}` per problem) instead of the first check that fails.
 */
export class Problems {
  readonly details: ErrorDetail[] = [];
  private readonly messages = new Set<string>();
  private readonly seen = new Set<string>();

  /** Records one problem; `summary` is the message of the 400 it belongs to. */
  add(path: string, message: string, summary = INVALID_REQUEST): void {
    this.messages.add(summary);
    const key = `${path}\u0000${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.details.push({ path, message });
  }

  /** Records every detail of a `validation_failed` error, with its message; rethrows any other error. */
  addError(err: unknown): void {
    if (!(err instanceof AppError) || err.code !== 'validation_failed') throw err;
    for (const d of err.details ?? []) this.add(d.path, d.message, err.message);
  }

  /** Runs `check`: its value, or undefined when it threw `validation_failed` (recorded). */
  collect<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (err) {
      this.addError(err);
      return undefined;
    }
  }

  get size(): number {
    return this.details.length;
  }

  /**
   * Throws one `validation_failed` with every problem recorded, if any. Its message is that of the errors recorded
   * when they all said the same ("The request breaks the organisation's policy."), else "The request is not valid.".
   */
  throwIfAny(): void {
    if (this.details.length === 0) return;
    const message = this.messages.size === 1 ? [...this.messages][0]! : INVALID_REQUEST;
    throw new AppError('validation_failed', message, this.details);
  }
}
