// Admin API latency (sequential requests, one administrator): list, search by name, search by client ID,
// generate and revoke. Skipped when the server has no admin API yet.
import { basicAuth, type TokenRequest } from './load.js';

export interface LatencyStats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** The five slowest samples, in ms, as [sample number, ms], to see whether outliers cluster. */
  slowest: [number, number][];
  failures: number;
}

export interface AdminResult {
  available: boolean;
  note?: string;
  list?: LatencyStats;
  search_name?: LatencyStats;
  search_client_id?: LatencyStats;
  generate?: LatencyStats;
  revoke?: LatencyStats;
  /** After a revoke, the revoked credential's next token request (expected 401 invalid_client). */
  exchange_after_revoke_status?: number;
}

function stats(samples: number[], failures: number): LatencyStats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => (s.length ? (s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number) : NaN);
  const r = (x: number) => Math.round(x * 100) / 100;
  const slowest = samples
    .map((ms, i) => [i + 1, r(ms)] as [number, number])
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5);
  return { n: s.length, p50: r(at(50)), p90: r(at(90)), p99: r(at(99)), max: r(s.length ? (s[s.length - 1] as number) : NaN), slowest, failures };
}

async function timed(fn: () => Promise<Response>): Promise<{ ms: number; res: Response; body: unknown }> {
  const t = performance.now();
  const res = await fn();
  const text = await res.text();
  const ms = performance.now() - t;
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { ms, res, body };
}

async function sample(n: number, fn: () => Promise<Response>, ok: (status: number) => boolean = (s) => s === 200) {
  const ms: number[] = [];
  let failures = 0;
  let first: unknown;
  for (let i = 0; i < n; i++) {
    const r = await timed(fn);
    if (!ok(r.res.status)) {
      failures++;
      first ??= { status: r.res.status, body: r.body };
    } else ms.push(r.ms);
  }
  return { stats: stats(ms, failures), firstFailure: first };
}

/**
 * `samples` requests of each read, then `revocations` tokens generated and revoked one by one. The server must run
 * with an active-token limit above its organisation's count plus `revocations` (index.ts sets MAX_ACTIVE_TOKENS).
 */
export async function measureAdmin(
  url: string,
  admin: { email: string; password: string },
  searchName: string,
  searchClientId: string,
  samples: number,
  revocations: number,
  log: (line: string) => void,
): Promise<AdminResult> {
  const login = await fetch(`${url}/admin/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: admin.email, password: admin.password }),
  });
  if (login.status === 404 || login.status === 405) {
    await login.body?.cancel();
    return { available: false, note: `POST /admin/api/login answered ${login.status}: no admin API in this build` };
  }
  const loginBody = (await login.json().catch(() => ({}))) as { token?: string };
  if (login.status !== 200 || !loginBody.token) {
    return { available: false, note: `login failed: ${login.status} ${JSON.stringify(loginBody)}` };
  }
  const auth = { authorization: `Bearer ${loginBody.token}` };
  const get = (path: string) => () => fetch(`${url}${path}`, { headers: auth });
  const failures: string[] = [];
  const note = (what: string, f: unknown) => {
    if (f) failures.push(`${what}: ${JSON.stringify(f).slice(0, 300)}`);
  };

  for (let i = 0; i < 20; i++) await (await fetch(`${url}/admin/api/tokens`, { headers: auth })).text(); // warm-up

  const list = await sample(samples, get('/admin/api/tokens'));
  note('list', list.firstFailure);
  const byName = await sample(samples, get(`/admin/api/tokens?q=${encodeURIComponent(searchName)}`));
  note('search by name', byName.firstFailure);
  const byClient = await sample(samples, get(`/admin/api/tokens?q=${encodeURIComponent(searchClientId)}`));
  note('search by client id', byClient.firstFailure);

  // Generate, then revoke: fresh tokens, so the credentials the load runs use stay valid.
  const expires = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10);
  const created: { id: string; client_id: string; client_secret: string }[] = [];
  const genMs: number[] = [];
  let genFailures = 0;
  const tag = Math.random().toString(36).slice(2, 8);
  for (let i = 0; i < revocations; i++) {
    const r = await timed(() =>
      fetch(`${url}/admin/api/tokens`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `revoke-me ${tag} ${i + 1}`, expires_at: expires, services: ['jobs'] }),
      }),
    );
    if (r.res.status === 201 || r.res.status === 200) {
      genMs.push(r.ms);
      created.push(r.body as { id: string; client_id: string; client_secret: string });
    } else {
      genFailures++;
      note('generate', { status: r.res.status, body: r.body });
    }
  }
  const revMs: number[] = [];
  let revFailures = 0;
  for (const t of created) {
    const r = await timed(() => fetch(`${url}/admin/api/tokens/${t.id}/revoke`, { method: 'POST', headers: auth }));
    if (r.res.status === 200) revMs.push(r.ms);
    else {
      revFailures++;
      note('revoke', { status: r.res.status, body: r.body });
    }
  }
  let after: number | undefined;
  const last = created[created.length - 1];
  if (last && revMs.length) {
    const res = await fetch(`${url}/token`, {
      method: 'POST',
      headers: { authorization: basicAuth(last as TokenRequest), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    await res.text();
    after = res.status;
  }
  for (const f of new Set(failures)) log(`  admin API failure: ${f}`);
  return {
    available: true,
    list: list.stats,
    search_name: byName.stats,
    search_client_id: byClient.stats,
    generate: stats(genMs, genFailures),
    revoke: stats(revMs, revFailures),
    ...(after !== undefined ? { exchange_after_revoke_status: after } : {}),
  };
}
