// The client of /admin/api. The session lives only in the HttpOnly cookie; the CSRF token lives only in
// memory (session.csrf) and goes out as X-CSRF-Token on every request.
import { dateTimeFormat } from './dom.js';

/**
 * An answer other than 2xx, in the API's error shape: {error, message, details?}. status 0 = no answer.
 * `retryAfterSeconds`: the answer's Retry-After (a 429 or 503), else null; the message then says how long to wait.
 */
export class ApiError extends Error {
  constructor(status, code, message, details, retryAfterSeconds = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = Array.isArray(details) ? details : [];
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Retry-After as seconds from now (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function retryAfterSeconds(header, now = Date.now()) {
  const value = String(header ?? '').trim();
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

const clockFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** "Try again in 15 minutes (at 16:45)." for a wait of `seconds`. */
export function waitSentence(seconds, now = Date.now()) {
  if (seconds <= 5) return 'Try again in a moment.';
  if (seconds < 90) return `Try again in ${seconds} seconds.`;
  const minutes = Math.ceil(seconds / 60);
  const span = minutes < 90 ? `${minutes} minutes` : `${Math.ceil(minutes / 60)} hours`;
  return `Try again in ${span} (at ${clockFormat.format(new Date(now + seconds * 1000))}).`;
}

/**
 * The API's message as the page shows it: instants (2026-12-01T16:24:18.821Z) as a readable local date and time,
 * and a vague "Try again later." replaced by how long Retry-After says to wait.
 */
export function readableMessage(message, waitSeconds = null) {
  let text = String(message ?? '').replace(/\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})/g, (iso) => {
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? iso : dateTimeFormat.format(new Date(ms));
  });
  if (waitSeconds !== null) {
    text = text.replace(/\s*Try again (later|in a moment)\.?\s*$/i, '').trim();
    text = `${text}${/[.!?]$/.test(text) || !text ? '' : '.'} ${waitSentence(waitSeconds)}`.trim();
  }
  return text;
}

/** Memory-only session state shared by the screens. */
export const session = {
  /** From /me or login; sent as X-CSRF-Token on every request (the server checks it when sent). */
  csrf: '',
};

/**
 * ISSUER's path ('' at the root), from the page's <meta>: every call goes to it + `path`, so that behind a proxy
 * forwarding only that path the calls still reach the server.
 */
const basePath = document.querySelector('meta[name="sat-base-path"]')?.content ?? '';

/** Calls the admin API with a JSON body; resolves to the parsed answer (null when empty), throws ApiError. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  // On every request, reads too: the server checks it when sent, so a read whose cookie now belongs to a session begun
  // in another tab is refused (csrf_failed: the sign-in form) instead of showing that session's data here.
  if (session.csrf) headers['x-csrf-token'] = session.csrf;
  let res;
  try {
    res = await fetch(basePath + path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network_error', 'The server could not be reached. Check your connection and try again.');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const wait = retryAfterSeconds(res.headers.get('retry-after'));
    throw new ApiError(
      res.status,
      data?.error ?? 'http_error',
      readableMessage(data?.message ?? `The server answered ${res.status}. Try again.`, wait),
      data?.details,
      wait,
    );
  }
  return data;
}

let sessionEnded = () => {};

/** Registers what happens when the session ends under the page (the sign-in screen registers itself). */
export function onSessionEnd(handler) {
  sessionEnded = handler;
}

/**
 * A 401 anywhere but sign-in means the session ended (expired, signed out elsewhere); a csrf_failed means this
 * browser's session cookie now belongs to another session (a sign-in or an accepted invitation in another tab), which
 * this page's CSRF token does not fit: that page's session is over too. True when handled.
 */
export function handleSessionEnd(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionEnded('Your session has ended. Sign in again to continue.');
    return true;
  }
  if (err instanceof ApiError && err.code === 'csrf_failed') {
    sessionEnded('This browser signed in again in another tab, so this page’s session is over. Sign in again to continue.');
    return true;
  }
  return false;
}
