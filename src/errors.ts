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

export class AppError extends Error {
  readonly status: number;
  readonly expose = true;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
    this.status = statusOf[code];
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

export const validationFailed = (path: string, message: string): AppError =>
  new AppError('validation_failed', 'The request is not valid.', [{ path, message }]);
