// The client of /admin/api. The session lives only in the HttpOnly cookie; the CSRF token lives only in
// memory (session.csrf) and goes out as X-CSRF-Token on every unsafe request.

/** An answer other than 2xx, in the API's error shape: {error, message, details?}. status 0 = no answer. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = Array.isArray(details) ? details : [];
  }
}

/** Memory-only session state shared by the screens. */
export const session = {
  /** From /me or login; sent as X-CSRF-Token on every unsafe request. */
  csrf: '',
};

/** Calls the admin API with a JSON body; resolves to the parsed answer (null when empty), throws ApiError. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['x-csrf-token'] = session.csrf;
  let res;
  try {
    res = await fetch(path, {
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
    throw new ApiError(
      res.status,
      data?.error ?? 'http_error',
      data?.message ?? `The server answered ${res.status}. Try again.`,
      data?.details,
    );
  }
  return data;
}

let sessionEnded = () => {};

/** Registers what happens when the session ends under the page (the sign-in screen registers itself). */
export function onSessionEnd(handler) {
  sessionEnded = handler;
}

/** A 401 anywhere but sign-in means the session ended (expired, signed out elsewhere): true when handled. */
export function handleSessionEnd(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionEnded('Your session has ended. Sign in again to continue.');
    return true;
  }
  return false;
}
