// Issue 17's phases of `npm run bench`, each against a target printed with its measured value and PASS / FAIL, or
// n/a when this build cannot measure it yet (a Part 2 feature not present): never a made-up number.
//
//   token            POST /token, the credentials of the run, at BENCH_PHASE_CONNECTIONS (32), ours and baseline
//   introspection    POST /token/introspection of valid JWTs by a caller of the same organisation, and by a
//                    resource-server credential; rate as a ratio to the token phase just before it
//   single           one credential for every request (as BENCH_CLIENTS=1), ours and baseline
//   part2            the token endpoint with a second live secret, an allowlist and an hourly limit on every
//                    credential: n/a until those features exist (detected from the schema)
//   mixed            tokens, introspection, admin list and admin generate at 100:100:1:0.1
//   storm            token p99 under a sign-in storm: n/a until test/bench/storm.ts exists (see below)
//   jwks             /jwks served prepared: 200 with an ETag, 304 on If-None-Match
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type autocannon from 'autocannon';
import { basicAuth, percentile, type RunResult, type TokenRequest } from './load.js';

/** One target of issue 17, as printed and written to the JSON result. */
export interface TargetResult {
  id: string;
  target: string;
  /** What was measured, in words (or "n/a (…)"). */
  measured: string;
  /** true / false, or null when not measurable in this build. */
  pass: boolean | null;
  values?: Record<string, number | string | null>;
}

/** Part 2 checks of the token endpoint, as this build's schema shows them (bench seeding reads it). */
export interface Part2Features {
  second_secret: boolean;
  allowlist: boolean;
  hourly_limit: boolean;
  /** The tables and token columns the detection looked at. */
  evidence: string[];
}

/**
 * Detects the Part 2 token-endpoint features from the migrated schema: a second secret (a secrets table, or a
 * second/previous secret hash column), an address allowlist (an allowlist / CIDR / allowed-address column or
 * table), an hourly limit (a per-hour or rate-limit column or table). Only a detection: the part2 phase stays n/a
 * until it also knows how to configure them.
 */
export function detectPart2Features(tables: string[], tokenColumns: string[]): Part2Features {
  const all = [...tables.map((t) => `table ${t}`), ...tokenColumns.map((c) => `tokens.${c}`)];
  const has = (re: RegExp) => all.filter((x) => re.test(x));
  const second = has(/table .*secrets?$|tokens\.(secret_hash_2|prev_secret|previous_secret|second_secret|next_secret)/i);
  const allow = has(/allow|cidr/i);
  const hourly = has(/hour|rate_limit|usage_counter/i);
  return { second_secret: second.length > 0, allowlist: allow.length > 0, hourly_limit: hourly.length > 0, evidence: [...second, ...allow, ...hourly] };
}

export interface PhaseServer {
  url: string;
  pid: number;
}

export interface PhaseContext {
  ours: PhaseServer;
  baseline?: PhaseServer;
  credentials: (TokenRequest & { organisation_id: string })[];
  /** As many credentials with an allowlist (holding the bench's address) and an unreached hourly limit (2c). */
  limitedCredentials?: TokenRequest[];
  resourceServer?: TokenRequest;
  admin: { email: string; password: string };
  features: Part2Features;
  /** Issue 17's targets are for PostgreSQL; on the embedded engine (in the server's process) RSS is only reported. */
  database: 'postgresql' | 'embedded';
  connections: number;
  /** Measured seconds per phase, and warm-up seconds before each slice. */
  seconds: number;
  warmup: number;
  /** The token and introspection phases alternate in this many slices, so drift on a loaded machine hits all alike. */
  rounds: number;
  /** Runs one measured load (warm-up, then measured, with the server's and database's CPU). */
  run(
    server: PhaseServer,
    requests: autocannon.Request[],
    options: { resetPeakRss?: boolean; seconds: number; warmup: number; sink?: number[]; label: string },
  ): Promise<RunResult>;
  out(line?: string): void;
  line(name: string, r: RunResult): string;
}

export interface PhasesResult {
  runs: Record<string, RunResult>;
  targets: TargetResult[];
  features: Part2Features;
}

const FORM = 'application/x-www-form-urlencoded';
const r2 = (x: number) => Math.round(x * 100) / 100;
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? r2(a / b) : NaN);
const errorsOf = (r: RunResult) => r.non2xx + r.errors + r.timeouts;

function tokenRequests(clients: TokenRequest[]): autocannon.Request[] {
  return clients.map((c) => ({ method: 'POST', path: '/token', headers: { authorization: basicAuth(c), 'content-type': FORM }, body: 'grant_type=client_credentials' }));
}

function introspectionRequest(caller: TokenRequest, jwt: string): autocannon.Request {
  return { method: 'POST', path: '/token/introspection', headers: { authorization: basicAuth(caller), 'content-type': FORM }, body: `token=${jwt}` };
}

async function accessToken(url: string, c: TokenRequest): Promise<string> {
  const res = await fetch(`${url}/token`, { method: 'POST', headers: { authorization: basicAuth(c), 'content-type': FORM }, body: 'grant_type=client_credentials' });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** One request, checked: introspection must answer active for the load to mean anything. */
async function checkActive(url: string, req: autocannon.Request): Promise<void> {
  const res = await fetch(`${url}${req.path}`, { method: 'POST', headers: req.headers as Record<string, string>, body: req.body as string });
  const body = (await res.json()) as { active?: boolean };
  if (res.status !== 200 || body.active !== true) throw new Error(`introspection check failed: ${res.status} ${JSON.stringify(body)}`);
}

/**
 * Contract for the sign-in storm (target 4), which another change adds: a module test/bench/storm.ts exporting
 * `startSignInStorm(url, { perSecond, email })` that starts wrong-password sign-ins from many addresses and returns
 * `{ stop(): Promise<{ attempts: number }> }`. Until it exists, target 4 is n/a.
 */
interface StormModule {
  startSignInStorm(url: string, options: { perSecond: number; email: string }): { stop(): Promise<{ attempts: number }> } | Promise<{ stop(): Promise<{ attempts: number }> }>;
}

async function loadStorm(): Promise<StormModule | undefined> {
  const file = path.join(path.dirname(new URL(import.meta.url).pathname), 'storm.js');
  if (!existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as Partial<StormModule>;
  return typeof mod.startSignInStorm === 'function' ? (mod as StormModule) : undefined;
}

/** Signs in to the admin API for the mixed load; undefined when this build has none. */
async function adminBearer(url: string, admin: { email: string; password: string }): Promise<string | undefined> {
  const res = await fetch(`${url}/admin/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(admin) });
  const body = (await res.json().catch(() => ({}))) as { token?: string };
  return res.status === 200 && body.token ? body.token : undefined;
}

export async function runPhases(ctx: PhaseContext): Promise<PhasesResult> {
  const { ours, baseline, credentials, out } = ctx;
  const runs: Record<string, RunResult> = {};
  const targets: TargetResult[] = [];
  const measure = async (name: string, server: PhaseServer, requests: autocannon.Request[], options?: { resetPeakRss?: boolean }) => {
    const r = await ctx.run(server, requests, { ...options, seconds: ctx.seconds, warmup: ctx.warmup, label: name });
    runs[name] = r;
    out(ctx.line(name, r));
    return r;
  };
  /** Phases measured in alternating slices (round-robin), each merged into one result. */
  const alternate = async (phases: { name: string; server: PhaseServer; requests: autocannon.Request[] }[]) => {
    const rounds = Math.max(1, ctx.rounds);
    const slices = phases.map(() => [] as RunResult[]);
    const sinks = phases.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      for (const [i, p] of phases.entries()) {
        const seconds = Math.max(1, Math.round(ctx.seconds / rounds));
        const warmup = round === 0 ? ctx.warmup : Math.min(1, ctx.warmup);
        (slices[i] as RunResult[]).push(await ctx.run(p.server, p.requests, { seconds, warmup, sink: sinks[i] as number[], label: `${p.name} ${round + 1}/${rounds}` }));
      }
    }
    return phases.map((p, i) => {
      const r = merge(slices[i] as RunResult[], sinks[i] as number[]);
      runs[p.name] = r;
      out(ctx.line(p.name, r));
      return r;
    });
  };

  // Requests: one access token per credential; a same-organisation caller introspects the next credential's token
  // in its organisation; the resource server introspects every one of them.
  const jwts: string[] = [];
  for (const c of credentials) jwts.push(await accessToken(ours.url, c));
  const sameOrg = credentials.map((caller, i) => {
    const mates = credentials.map((c, k) => ({ c, k })).filter((x) => x.c.organisation_id === caller.organisation_id);
    const at = mates.findIndex((x) => x.k === i);
    const subject = (mates[(at + 1) % mates.length] as { k: number }).k;
    return introspectionRequest(caller, jwts[subject] as string);
  });
  await checkActive(ours.url, sameOrg[0] as autocannon.Request);
  const byResourceServer = ctx.resourceServer ? jwts.map((jwt) => introspectionRequest(ctx.resourceServer as TokenRequest, jwt)) : undefined;
  if (byResourceServer) await checkActive(ours.url, byResourceServer[0] as autocannon.Request);

  out(`phases at ${ctx.connections} connections`);
  const [token, introSame, introRs] = (await alternate([
    { name: 'token', server: ours, requests: tokenRequests(credentials) },
    { name: 'introspection (same organisation)', server: ours, requests: sameOrg },
    ...(byResourceServer ? [{ name: 'introspection (resource server)', server: ours, requests: byResourceServer }] : []),
  ])) as [RunResult, RunResult, RunResult | undefined];
  const one = tokenRequests(credentials.slice(0, 1));
  const [baseToken, single, baseSingle] = baseline
    ? ((await alternate([
        { name: 'baseline token', server: baseline, requests: tokenRequests(credentials) },
        { name: 'token, 1 credential', server: ours, requests: one },
        { name: 'baseline token, 1 credential', server: baseline, requests: one },
      ])) as [RunResult, RunResult, RunResult])
    : [undefined, (await alternate([{ name: 'token, 1 credential', server: ours, requests: one }]))[0] as RunResult, undefined];
  // 2c: the same load on credentials with an allowlist and an hourly limit, alternated with the plain one again.
  const limitedCreds = ctx.features.allowlist && ctx.features.hourly_limit ? (ctx.limitedCredentials ?? []) : [];
  if (limitedCreds.length) await accessToken(ours.url, limitedCreds[0] as TokenRequest); // the allowlist lets the bench in
  const limitedRuns = limitedCreds.length
    ? ((await alternate([
        { name: 'token, allowlist + hourly limit', server: ours, requests: tokenRequests(limitedCreds) },
        { name: 'token, plain (2c reference)', server: ours, requests: tokenRequests(credentials) },
        { name: 'token, limits, 1 credential', server: ours, requests: tokenRequests(limitedCreds.slice(0, 1)) },
        { name: 'token, plain, 1 credential (2c)', server: ours, requests: one },
      ])) as [RunResult, RunResult, RunResult, RunResult])
    : undefined;

  // Mixed load, 100:100:1:0.1 in a cycle of 2,011 requests (admin generate names are unique per request).
  const bearer = await adminBearer(ours.url, ctx.admin);
  let mixed: RunResult | undefined;
  if (bearer) {
    const tag = Math.random().toString(36).slice(2, 8);
    let generated = 0;
    const expires = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10);
    const tokens = tokenRequests(credentials);
    const list: autocannon.Request = { method: 'GET', path: '/admin/api/tokens', headers: { authorization: `Bearer ${bearer}` } };
    const generate: autocannon.Request = {
      method: 'POST',
      path: '/admin/api/tokens',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: JSON.stringify({ name: `mixed ${tag} ${++generated}`, expires_at: expires, services: ['jobs'] }) }),
    };
    const cycle: autocannon.Request[] = [];
    for (let block = 0; block < 10; block++) {
      for (let i = 0; i < 100; i++) {
        const k = block * 100 + i;
        cycle.push(tokens[k % tokens.length] as autocannon.Request, sameOrg[k % sameOrg.length] as autocannon.Request);
      }
      cycle.push(list);
    }
    cycle.push(generate);
    mixed = await measure('mixed 100:100:1:0.1', ours, cycle, { resetPeakRss: true });
  }

  // Target 4: token p99 under a sign-in storm, when the storm exists.
  const storm = await loadStorm();
  let stormRun: RunResult | undefined;
  if (storm) {
    const handle = await storm.startSignInStorm(ours.url, { perSecond: 32, email: ctx.admin.email });
    try {
      stormRun = await measure('token under sign-in storm', ours, tokenRequests(credentials));
    } finally {
      await handle.stop();
    }
  }

  // Target 5: /jwks prepared once, answered from memory with a strong ETag.
  const jwks = await fetch(`${ours.url}/jwks`);
  await jwks.text();
  const etag = jwks.headers.get('etag');
  const again = etag ? await fetch(`${ours.url}/jwks`, { headers: { 'if-none-match': etag } }) : undefined;
  await again?.text();

  // Targets.
  const rateVsToken = (label: string, id: string, r: RunResult | undefined) => {
    if (!r) {
      targets.push({ id, target: `${label}: ≥ 1.0 × token rate, p99 < 20 ms, 0 errors`, measured: 'n/a (no resource server in this build)', pass: null });
      return;
    }
    const x = ratio(r.tokens_per_s, token.tokens_per_s);
    targets.push({
      id,
      target: `${label}: ≥ 1.0 × token rate in the same run, p99 < 20 ms, 0 errors (${ctx.connections} connections)`,
      measured: `${x.toFixed(2)} × (${r.tokens_per_s}/s vs ${token.tokens_per_s}/s), p99 ${r.latency_ms.p99} ms, ${errorsOf(r)} errors, ${r.cpu_us_per_token} µs CPU/request`,
      pass: x >= 1.0 && r.latency_ms.p99 < 20 && errorsOf(r) === 0,
      values: { ratio: x, per_s: r.tokens_per_s, token_per_s: token.tokens_per_s, p99_ms: r.latency_ms.p99, errors: errorsOf(r) },
    });
  };
  rateVsToken('1a introspection, same-organisation caller', '1a', introSame);
  rateVsToken('1b introspection, resource-server caller', '1b', introRs);

  const missing = [
    ...(ctx.features.second_secret ? [] : ['two secrets']),
    ...(ctx.features.allowlist ? [] : ['allowlists']),
    ...(ctx.features.hourly_limit ? [] : ['hourly limits']),
  ];
  const vsBaseline = (id: string, label: string, o: RunResult, b: RunResult | undefined) => {
    const x = b ? ratio(o.tokens_per_s, b.tokens_per_s) : NaN;
    targets.push({
      id,
      target: `${label}: ≥ 1.0 × bare oidc-provider in the same run`,
      measured: b ? `${x.toFixed(2)} × (${o.tokens_per_s}/s vs ${b.tokens_per_s}/s), p99 ${o.latency_ms.p99} ms vs ${b.latency_ms.p99} ms` : 'n/a (BENCH_BASELINE=0)',
      pass: b ? x >= 1.0 : null,
      values: { ratio: x, per_s: o.tokens_per_s, baseline_per_s: b?.tokens_per_s ?? null },
    });
  };
  vsBaseline('2a', `2a token endpoint as built (${credentials.length} credentials)`, token, baseToken);
  vsBaseline('2b', '2b token endpoint as built, single credential (BENCH_CLIENTS=1)', single, baseSingle);
  if (limitedRuns) {
    // Issue 12: with an allowlist and an hourly limit, within 15 % of the rate without them and ≥ the baseline.
    const [lim, plain, limOne, plainOne] = limitedRuns;
    const x = ratio(lim.tokens_per_s, plain.tokens_per_s);
    const xOne = ratio(limOne.tokens_per_s, plainOne.tokens_per_s);
    const vsBase = baseToken ? ratio(lim.tokens_per_s, baseToken.tokens_per_s) : undefined;
    const vsBaseOne = baseSingle ? ratio(limOne.tokens_per_s, baseSingle.tokens_per_s) : undefined;
    const pass = x >= 0.85 && xOne >= 0.85 && (vsBase === undefined || vsBase >= 1.0) && (vsBaseOne === undefined || vsBaseOne >= 1.0);
    targets.push({
      id: '2c',
      target: '2c token endpoint with every Part 2 check (a second live secret, an allowlist, an hourly limit): ≥ 0.85 × without them and ≥ 1.0 × baseline, here and with one credential',
      measured:
        `${x.toFixed(2)} × without (${lim.tokens_per_s}/s vs ${plain.tokens_per_s}/s), 1 credential ${xOne.toFixed(2)} ×` +
        (vsBase !== undefined ? `; vs baseline ${vsBase.toFixed(2)} ×, 1 credential ${vsBaseOne?.toFixed(2)} ×` : '') +
        `; p99 ${lim.latency_ms.p99} ms vs ${plain.latency_ms.p99} ms, ${errorsOf(lim)} errors` +
        (missing.length ? ` (not measured: ${missing.join(', ')})` : ''),
      pass: pass && errorsOf(lim) === 0 && errorsOf(limOne) === 0,
      values: { ratio: x, ratio_one: xOne, vs_baseline: vsBase ?? null, vs_baseline_one: vsBaseOne ?? null, evidence: ctx.features.evidence.join(', ') || null },
    });
  } else {
    targets.push({
      id: '2c',
      target: '2c token endpoint with every Part 2 check (second live secret, allowlist, hourly limit): ≥ 1.0 × baseline, here and with one credential',
      measured: missing.length
        ? `n/a (feature not present: ${missing.join(', ')})`
        : 'n/a (features present in the schema, but this bench does not configure them on its credentials yet)',
      pass: null,
      values: { evidence: ctx.features.evidence.join(', ') || null },
    });
  }

  if (mixed) {
    const embedded = ctx.database === 'embedded';
    targets.push({
      id: '3',
      target: `3 mixed 100:100:1:0.1 at ${ctx.connections} connections: p99 < 50 ms, 0 errors, peak RSS < 200 MB`,
      measured:
        `p99 ${mixed.latency_ms.p99} ms, ${errorsOf(mixed)} errors, peak RSS ${mixed.peak_rss_mib} MiB (${r2((mixed.peak_rss_mib * 1048576) / 1e6)} MB), ${mixed.tokens_per_s} requests/s` +
        (embedded ? ' (embedded database in the server process: RSS reported, not judged; the bound is for PostgreSQL)' : ''),
      pass: mixed.latency_ms.p99 < 50 && errorsOf(mixed) === 0 && (embedded || (mixed.peak_rss_mib * 1048576) / 1e6 < 200),
      values: { p99_ms: mixed.latency_ms.p99, errors: errorsOf(mixed), peak_rss_mib: mixed.peak_rss_mib, per_s: mixed.tokens_per_s },
    });
  } else {
    targets.push({ id: '3', target: '3 mixed load', measured: 'n/a (no admin API sign-in in this build)', pass: null });
  }
  targets.push(
    stormRun
      ? {
          id: '4',
          target: '4 token p99 under a sign-in storm (32 wrong passwords/s): ≤ 2 × without',
          measured: `${ratio(stormRun.latency_ms.p99, token.latency_ms.p99).toFixed(2)} × (p99 ${stormRun.latency_ms.p99} ms vs ${token.latency_ms.p99} ms)`,
          pass: ratio(stormRun.latency_ms.p99, token.latency_ms.p99) <= 2,
          values: { p99_ms: stormRun.latency_ms.p99, p99_without_ms: token.latency_ms.p99 },
        }
      : { id: '4', target: '4 token p99 under a sign-in storm: ≤ 2 × without', measured: 'n/a (feature not present: no sign-in storm driver, test/bench/storm.ts)', pass: null },
  );
  targets.push({
    id: '5',
    target: '5 /jwks and discovery served from memory, prepared once per key change',
    measured: `/jwks ${jwks.status} with ETag ${etag ?? '(none)'}, ${again?.status ?? '-'} on If-None-Match`,
    pass: jwks.status === 200 && etag !== null && again?.status === 304,
  });
  return { runs, targets, features: ctx.features };
}

/** Merges the slices of one phase: sums, request-weighted CPU, latency percentiles over every 2xx response. */
function merge(slices: RunResult[], latencies: number[]): RunResult {
  const sum = (f: (r: RunResult) => number) => slices.reduce((a, r) => a + f(r), 0);
  const tokens = sum((r) => r.tokens);
  const seconds = sum((r) => r.seconds);
  const weighted = (f: (r: RunResult) => number | undefined) => (tokens ? Math.round(sum((r) => (f(r) ?? 0) * r.tokens) / tokens) : NaN);
  const sorted = Float64Array.from(latencies).sort();
  const first = slices[0] as RunResult;
  return {
    connections: first.connections,
    seconds: r2(seconds),
    tokens,
    tokens_per_s: Math.round(tokens / seconds),
    latency_ms: {
      p50: r2(percentile(sorted, 50)),
      p90: r2(percentile(sorted, 90)),
      p99: r2(percentile(sorted, 99)),
      max: r2(sorted.length ? (sorted[sorted.length - 1] as number) : NaN),
    },
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    cpu_us_per_token: weighted((r) => r.cpu_us_per_token),
    cpu_cores: r2(sum((r) => r.cpu_cores * r.seconds) / seconds),
    ...(first.db_cpu_us_per_token !== undefined ? { db_cpu_us_per_token: weighted((r) => r.db_cpu_us_per_token) } : {}),
    loadgen_cpu_cores: r2(sum((r) => r.loadgen_cpu_cores * r.seconds) / seconds),
    peak_rss_mib: Math.max(...slices.map((r) => r.peak_rss_mib)),
    load1: r2(sum((r) => r.load1) / slices.length),
  };
}

export function printTargets(targets: TargetResult[], out: (line: string) => void, database: string): void {
  out(`issue 17 targets (${database}; the issue's figures are for PostgreSQL)`);
  for (const t of targets) {
    const verdict = t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL';
    out(`  [${verdict}] ${t.target}`);
    out(`         ${t.measured}`);
  }
}
