// HTTP helpers for the admin API, used the way a script or the console uses it.
import type { TestServer } from './server.js';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

export async function call<T = any>(
  server: { url: string },
  method: string,
  path: string,
  opts: { token?: string; json?: unknown; headers?: Record<string, string>; raw?: string | Buffer } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | Buffer | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.raw !== undefined) {
    body = opts.raw;
  }
  const res = await fetch(`${server.url}/admin/api${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed as T };
}

export interface SignedIn {
  token: string;
  csrf: string;
  cookie: string;
  body: any;
}

/** Signs in; `ip` goes in X-Forwarded-For (servers started with TRUST_PROXY=true take it as the client address). */
export async function signIn(server: TestServer | { url: string }, email: string, password: string, ip?: string): Promise<SignedIn> {
  const res = await call(server, 'POST', '/login', { json: { email, password }, headers: ip ? { 'x-forwarded-for': ip } : {} });
  if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${res.text}`);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const cookie = /sat_session=[^;]+/.exec(setCookie)?.[0] ?? '';
  return { token: res.body.token, csrf: res.body.csrf_token, cookie, body: res.body };
}

/** A valid token body for POST /admin/api/tokens. */
export function tokenBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const d = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
  return { name: `t-${Math.random().toString(36).slice(2, 10)}`, expires_at: d, services: ['candidates'], ...overrides };
}
