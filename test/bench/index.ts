// `npm run bench`: the token endpoint under load, against a bare oidc-provider baseline, optionally at a million
// credentials. Not a test (nothing here matches jest's **/*.test.ts). See docs/performance.md.
//
// Environment (all optional):
//   DATABASE_URL         PostgreSQL server to use (a fresh database per target is created and dropped);
//                        without it, the embedded database in a temporary DATA_DIR
//   BENCH_DURATION       seconds per measured run (10)          BENCH_WARMUP   seconds of warm-up before each (3)
//   BENCH_CONNECTIONS    concurrencies, comma-separated (1,8,32,128)
//   BENCH_CLIENTS        distinct credentials the load cycles through (100)
//   BENCH_SCALE          also run against a database of this many credentials (e.g. 1000000), same known clients
//   BENCH_ORGS           organisations the scale rows spread over (40000)
//   BENCH_BASELINE       0 to skip the bare oidc-provider baseline (1)
//   SIGNING_ALG          ES256 (default) or RS256, for our server and the baseline alike
//   BENCH_PROFILE        ours | baseline | all: CPU-profile each measured run of those servers (profile-hook.ts)
//   BENCH_ADMIN_SAMPLES  requests per admin API read measurement (200)   BENCH_REVOCATIONS  tokens revoked (200)
//   DATABASE_POOL_MAX    passed to our server        BENCH_SERVER_ENV   more of it: NAME=value,NAME=value
//   BENCH_PHASES         0 to skip issue 17's phases (phases.ts)   BENCH_PHASE_CONNECTIONS  their concurrency (32)
//   BENCH_PHASE_ROUNDS   slices the phases compared with each other alternate in (3)
//   BENCH_NODE_FLAGS     more Node/V8 flags for our server, space-separated (after npm start's)
//   BENCH_STORM_RATE     wrong sign-ins a second in the sign-in storm, 0 skips it (32)   BENCH_STORM_CONNECTIONS  token load beside it (8)
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { decodeProtectedHeader } from 'jose';
import pg from 'pg';
import { loadConfig, packageRoot } from '../../src/config/index.js';
import { migrateLatest, openDb } from '../../src/db/index.js';
import type { Deps } from '../../src/deps.js';
import { createLogger } from '../../src/log.js';
import { UsageRecorder } from '../../src/tokens/index.js';
import { CLIENT_LOOKUP_SQL, INTROSPECTION_LOOKUP_SQL } from '../../src/tokens/queries.js';
import { measureAdmin, type AdminResult } from './admin.js';
import { explainDomainCall, explainStatement, scanCounters, type PlannedQuery } from './explain.js';
import { basicAuth, cpuSeconds, measure, measureRequests, peakRssMiB, type RunResult } from './load.js';
import { detectPart2Features, printTargets, runPhases, type Part2Features, type PhasesResult } from './phases.js';
import { printProfile, summariseProfile, type ProfileSummary } from './profile.js';
import { signInStorm } from './storm.js';
import { seedBulk, seedKnown, type BulkResult, type Credential, type KnownSeed } from './seed.js';
import { measureSender, seedSender, type SenderRun, type SenderSeed } from './sender.js';

const env = process.env;
const int = (v: string | undefined, d: number) => (v === undefined || v.trim() === '' ? d : Number.parseInt(v, 10));
const opts = {
  duration: int(env.BENCH_DURATION, 10),
  warmup: int(env.BENCH_WARMUP, 3),
  connections: (env.BENCH_CONNECTIONS ?? '1,8,32,128').split(',').map((s) => Number.parseInt(s, 10)).filter((n) => n > 0),
  clients: int(env.BENCH_CLIENTS, 100),
  scale: int(env.BENCH_SCALE, 0),
  orgs: int(env.BENCH_ORGS, 40_000),
  baseline: env.BENCH_BASELINE !== '0',
  alg: env.SIGNING_ALG === 'RS256' ? 'RS256' : 'ES256',
  profile: env.BENCH_PROFILE ?? '',
  adminSamples: int(env.BENCH_ADMIN_SAMPLES, 200),
  revocations: int(env.BENCH_REVOCATIONS, 200),
  /** Sign-in storm phase: wrong sign-ins per second beside the token load (0: skip), and its connections. */
  stormRate: int(env.BENCH_STORM_RATE, 32),
  stormConnections: int(env.BENCH_STORM_CONNECTIONS, 8),
  databaseUrl: env.DATABASE_URL?.trim() || undefined,
  poolMax: env.DATABASE_POOL_MAX,
  phases: env.BENCH_PHASES !== '0',
  phaseConnections: int(env.BENCH_PHASE_CONNECTIONS, 32),
  phaseRounds: int(env.BENCH_PHASE_ROUNDS, 3),
  /** Extra environment for our server, `NAME=value,NAME=value` (experiments). */
  serverEnv: Object.fromEntries(
    (env.BENCH_SERVER_ENV ?? '')
      .split(',')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')).trim(), kv.slice(kv.indexOf('=') + 1)]),
  ) as Record<string, string>,
} as const;
const PER_ORG = 25; // the default active-token limit: known credentials fill their organisations like real ones

const root = packageRoot();
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const resultsDir = path.join(root, 'test', 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
const workDir = mkdtempSync(path.join(os.tmpdir(), 'sat-bench-'));
const out = (line = '') => process.stdout.write(line + '\n');
const uptime = () => {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// Databases

interface BenchDb {
  kind: 'postgresql' | 'embedded';
  label: string;
  /** What our server (and the seeding code) needs in its environment. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

async function createDb(label: string): Promise<BenchDb> {
  const dataDir = mkdtempSync(path.join(workDir, `${label}-`));
  if (!opts.databaseUrl) {
    return { kind: 'embedded', label, env: { DATA_DIR: dataDir }, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const name = `sat_bench_${randomBytes(4).toString('hex')}_${label}`;
  const admin = new pg.Client({ connectionString: opts.databaseUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const u = new URL(opts.databaseUrl);
  u.pathname = `/${name}`;
  return {
    kind: 'postgresql',
    label,
    // PostgreSQL mode needs a key-encryption key for the signing keys (docs/keys.md).
    env: { DATABASE_URL: u.toString(), DATA_DIR: dataDir, KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') },
    drop: async () => {
      const c = new pg.Client({ connectionString: opts.databaseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function depsFor(db: BenchDb, knexDb: Awaited<ReturnType<typeof openDb>>): Deps {
  // MAX_ACTIVE_TOKENS matches what the server gets (see startOurs): the admin measurement generates extra tokens.
  const config = loadConfig({ ...db.env, LOG_LEVEL: 'warn', MAX_ACTIVE_TOKENS: '100000' });
  return { config, db: knexDb, log: createLogger('warn'), clock: () => new Date() };
}

interface Seeded {
  known: KnownSeed;
  /** A resource server of the platform (introspection phase), when this build has them. */
  resourceServer?: { client_id: string; client_secret: string };
  features: Part2Features;
  /** private_key_jwt and DPoP clients (sender.ts). */
  sender?: SenderSeed;
  bulk?: BulkResult;
  seed_seconds: number;
  explain: PlannedQuery[];
}

/** Migrates, seeds the known credentials (and bulk rows up to `size`), and EXPLAINs the hot queries. */
async function seed(db: BenchDb, size: number): Promise<Seeded> {
  const started = performance.now();
  const config = loadConfig({ ...db.env, LOG_LEVEL: 'warn', MAX_ACTIVE_TOKENS: '100000' });
  const database = await openDb(config);
  try {
    const deps = depsFor(db, database);
    await migrateLatest(database.knex);
    const known = await seedKnown({ ...deps, config: loadConfig({ ...db.env, LOG_LEVEL: 'warn' }) }, opts.clients, PER_ORG);
    out(`  ${db.label}: ${known.credentials.length} known credentials in ${known.organisations} organisations (generateToken)`);
    const sender = await seedSender(deps);
    let bulk: BulkResult | undefined;
    if (size > known.credentials.length) {
      bulk = await seedBulk(database.knex, size, opts.orgs, (l) => out(`  ${db.label}:${l}`));
      out(`  ${db.label}: bulk seed ${bulk.tokens.toLocaleString('en')} tokens, ${bulk.organisations.toLocaleString('en')} organisations in ${bulk.seconds.toFixed(1)} s`);
    } else {
      await database.knex.raw('analyze');
    }
    const explain = await explainHotQueries(deps, known);
    const tokensModule = (await import('../../src/tokens/index.js')) as Record<string, unknown>;
    let resourceServer: Seeded['resourceServer'];
    if (typeof tokensModule.addResourceServer === 'function') {
      const rs = (await tokensModule.addResourceServer(deps, 'bench resource server')) as { client_id: string; client_secret: string };
      resourceServer = { client_id: rs.client_id, client_secret: rs.client_secret };
    }
    const tables = (await database.knex('information_schema.tables').select('table_name').whereRaw('table_schema = current_schema()')) as { table_name: string }[];
    const columns = (await database.knex('information_schema.columns')
      .select('column_name')
      .whereRaw('table_schema = current_schema()')
      .andWhere({ table_name: 'tokens' })) as { column_name: string }[];
    const features = detectPart2Features(
      tables.map((t) => t.table_name),
      columns.map((c) => c.column_name),
    );
    return {
      known,
      ...(resourceServer ? { resourceServer } : {}),
      features,
      sender,
      ...(bulk ? { bulk } : {}),
      seed_seconds: (performance.now() - started) / 1000,
      explain,
    };
  } finally {
    await database.close();
  }
}

/** The statements whose cost must not grow with the table: the client lookup, the usage flush, the admin reads. */
async function explainHotQueries(deps: Deps, known: KnownSeed): Promise<PlannedQuery[]> {
  const knex = deps.db.knex;
  const c = known.credentials[0] as Credential;
  const plans: PlannedQuery[] = [];
  // The lookup as the token endpoint runs it (a prepared statement, outside knex), for one client and for a batch.
  const ids = known.credentials.map((k) => k.client_id);
  plans.push(await explainStatement(knex, 'token endpoint: client lookup', CLIENT_LOOKUP_SQL, [[c.client_id]]));
  plans.push(await explainStatement(knex, 'token endpoint: 32 lookups at once', CLIENT_LOOKUP_SQL, [ids.slice(0, 32)]));
  // Introspection's one statement: caller and subject rows, and the revocation of the subject's jti.
  plans.push(await explainStatement(knex, 'introspection: one request', INTROSPECTION_LOOKUP_SQL, [ids.slice(0, 2), [randomBytes(16).toString('hex')]]));
  plans.push(
    await explainStatement(knex, 'introspection: 16 requests at once', INTROSPECTION_LOOKUP_SQL, [ids.slice(0, 32), ids.slice(0, 16).map(() => randomBytes(16).toString('hex'))]),
  );
  plans.push(
    ...(await explainDomainCall(knex, 'last_used_at flush (100 tokens)', async (trx) => {
      const usage = new UsageRecorder(0);
      for (const k of known.credentials) usage.record(k.token_id, new Date());
      await usage.flush(trx);
    })),
  );
  // The admin service, when this build has it (another part of the project): list, search, revoke.
  const tokens = (await import('../../src/tokens/index.js')) as Record<string, unknown>;
  const actor = { id: known.admin.id, email: known.admin.email, organisation_id: known.admin.organisation_id };
  const call = async (label: string, name: string, ...args: unknown[]) => {
    const fn = tokens[name];
    if (typeof fn !== 'function') return;
    try {
      plans.push(...(await explainDomainCall(knex, label, (trx) => fn({ ...deps, db: { ...deps.db, knex: trx } }, actor, ...args))));
    } catch (err) {
      out(`  (could not explain ${label}: ${(err as Error).message})`);
    }
  };
  await call('admin: list tokens', 'listTokens', {});
  await call('admin: search by name', 'listTokens', { q: 'bench token 1' });
  await call('admin: search by client ID', 'listTokens', { q: c.client_id.slice(0, 12) });
  await call('admin: revoke', 'revokeToken', c.token_id, {});
  return plans;
}

// ---------------------------------------------------------------------------------------------------------------
// Server processes

interface Server {
  name: string;
  kind: 'ours' | 'baseline';
  size: number;
  url: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  profileDir?: string;
  credentials: Credential[];
  db?: BenchDb;
  seeded?: Seeded;
  runs: RunResult[];
  admin?: AdminResult;
  phases?: PhasesResult;
  admin_scans?: { seq_scan: number; idx_scan: number; seq_tup_read: number };
  storm?: { rate: number; quiet: RunResult; stormy: RunResult; signins_sent: number; signin_statuses: Record<string, number> };
  startRssMiB?: number;
  /** Per measured run (by connections), when profiled. */
  profiles: Record<number, ProfileSummary>;
  profileCount: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function wantsProfile(kind: 'ours' | 'baseline'): boolean {
  return opts.profile === 'all' || opts.profile === kind;
}

async function spawnServer(name: string, kind: 'ours' | 'baseline', script: string[], extraEnv: Record<string, string>) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = path.join(workDir, `${name}.log`);
  const log = createWriteStream(logFile);
  await new Promise((r) => log.once('open', r));
  const profileDir = wantsProfile(kind) ? path.join(resultsDir, `${stamp}-profiles`, name) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const hook = path.join(root, 'dist', 'test', 'bench', 'profile-hook.js');
  const args = [...(profileDir ? ['--import', pathToFileURL(hook).href] : []), ...script];
  const proc = spawn(process.execPath, args, {
    cwd: root,
    env: {
      PATH: env.PATH ?? '/usr/bin:/bin',
      HOME: env.HOME ?? os.tmpdir(),
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: url,
      LOG_LEVEL: 'warn',
      SIGNING_ALG: opts.alg,
      ...(profileDir ? { BENCH_PROFILE_DIR: profileDir } : {}),
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  return { port, url, proc, logFile, ...(profileDir ? { profileDir } : {}) };
}

async function waitReady(url: string, proc: ChildProcess, logFile: string, pathname: string): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited (${proc.exitCode}); see ${logFile}`);
    try {
      const res = await fetch(url + pathname);
      await res.text();
      if (res.status === 200) return;
    } catch {
      /* not yet */
    }
    await sleep(200);
  }
  throw new Error(`server at ${url} not ready after 180 s; see ${logFile}`);
}

async function startOurs(db: BenchDb, size: number, seeded: Seeded): Promise<Server> {
  const name = size > opts.clients ? `ours-${size}` : 'ours';
  // The same command as `npm start` and the Docker image (their heap flags keep peak RSS under 200 MB), plus
  // BENCH_NODE_FLAGS for experiments with other Node/V8 flags (NODE_OPTIONS refuses most V8 flags).
  const flags = ['--max-semi-space-size=4', '--heap-growing-percent=100', ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)];
  const s = await spawnServer(name, 'ours', [...flags, 'dist/src/cli/index.js', 'serve'], {
    ...db.env,
    MAX_ACTIVE_TOKENS: '100000', // the admin measurement generates tokens beyond the default limit of 25
    TRUST_PROXY: 'true', // the sign-in storm comes from many addresses (X-Forwarded-For)
    ...(opts.poolMax ? { DATABASE_POOL_MAX: opts.poolMax } : {}),
    ...opts.serverEnv,
  });
  await waitReady(s.url, s.proc, s.logFile, '/readyz');
  return { name, kind: 'ours', size, ...s, pid: s.proc.pid as number, credentials: seeded.known.credentials, db, seeded, runs: [], profiles: {}, profileCount: 0 };
}

async function startBaseline(credentials: Credential[]): Promise<Server> {
  const file = path.join(workDir, 'baseline-clients.json');
  writeFileSync(file, JSON.stringify(credentials.map(({ client_id, client_secret }) => ({ client_id, client_secret }))));
  const s = await spawnServer('baseline', 'baseline', ['dist/test/bench/baseline.js'], { BENCH_CLIENTS_FILE: file });
  await waitReady(s.url, s.proc, s.logFile, '/jwks');
  return { name: 'baseline', kind: 'baseline', size: credentials.length, ...s, pid: s.proc.pid as number, credentials, runs: [], profiles: {}, profileCount: 0 };
}

type Around = { before(): Promise<void>; after(): Promise<void> };
function combine(...hooks: (Around | undefined)[]): Around {
  const list = hooks.filter((h): h is Around => h !== undefined);
  return {
    async before() {
      for (const h of list) await h.before();
    },
    async after() {
      for (const h of list.reverse()) await h.after();
    },
  };
}

/** CPU time of the PostgreSQL backends serving one database (read from /proc; the server runs on this machine). */
function backendCpu(db: BenchDb) {
  const name = new URL(db.env.DATABASE_URL as string).pathname.slice(1);
  let pids: number[] = [];
  let start = 0;
  let used = 0;
  const sum = () => pids.reduce((acc, pid) => acc + (existsSync(`/proc/${pid}/stat`) ? cpuSeconds(pid) : 0), 0);
  return {
    async before() {
      const c = new pg.Client({ connectionString: opts.databaseUrl });
      await c.connect();
      const res = await c.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [name]);
      await c.end();
      pids = res.rows.map((r) => r.pid);
      start = sum();
    },
    async after() {
      used = sum() - start;
    },
    seconds: () => used,
  };
}

/** Brackets a measured run with SIGUSR2 (profile-hook.ts): start, then stop and wait for the written profile. */
function profiler(s: Server) {
  return {
    async before() {
      process.kill(s.pid, 'SIGUSR2');
      await sleep(100);
    },
    async after() {
      process.kill(s.pid, 'SIGUSR2');
      s.profileCount += 1;
      const file = path.join(s.profileDir as string, `${s.profileCount}.cpuprofile`);
      const deadline = Date.now() + 30_000;
      while (!existsSync(file)) {
        if (Date.now() > deadline) throw new Error(`${s.name}: no profile written to ${file}`);
        await sleep(100);
      }
    },
  };
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode !== null) return;
  const exited = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill('SIGTERM');
  const timer = setTimeout(() => s.proc.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/** One request, checked: 200 and a JWT signed with the expected algorithm. */
async function sanityCheck(s: Server): Promise<string> {
  const res = await fetch(`${s.url}/token`, {
    method: 'POST',
    headers: { authorization: basicAuth(s.credentials[0] as Credential), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`${s.name}: token request failed: ${res.status} ${JSON.stringify(body)}`);
  const header = decodeProtectedHeader(body.access_token);
  if (header.alg !== opts.alg) throw new Error(`${s.name}: token signed with ${header.alg}, expected ${opts.alg}`);
  return `${header.alg} ${header.typ}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Output

const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? Math.round((a / b) * 100) / 100 : NaN);

function runLine(s: Server, r: RunResult, base?: RunResult): string {
  const cols = [
    s.name.padEnd(14),
    `c=${r.connections}`.padEnd(6),
    `${fmt(r.tokens_per_s).padStart(6)} tok/s`,
    `p50 ${fmt(r.latency_ms.p50, 2).padStart(6)}`,
    `p90 ${fmt(r.latency_ms.p90, 2).padStart(6)}`,
    `p99 ${fmt(r.latency_ms.p99, 2).padStart(6)} ms`,
    `non2xx ${r.non2xx}`,
    `err ${r.errors}`,
    `cpu ${fmt(r.cpu_us_per_token).padStart(5)} µs/tok (${r.cpu_cores.toFixed(2)} cores)`,
    ...(r.db_cpu_us_per_token !== undefined ? [`db ${fmt(r.db_cpu_us_per_token)} µs/tok`] : []),
    `rss ${r.peak_rss_mib} MiB`,
    `load ${r.load1.toFixed(2)}`,
  ];
  if (base) {
    cols.push(
      `| ×${ratio(r.tokens_per_s, base.tokens_per_s).toFixed(2)} tok/s, ×${ratio(r.cpu_us_per_token, base.cpu_us_per_token).toFixed(2)} cpu, ×${ratio(r.latency_ms.p99, base.latency_ms.p99).toFixed(2)} p99`,
    );
  }
  return cols.join('  ');
}

function adminLine(label: string, a?: { p50: number; p99: number; n: number; failures: number; slowest: [number, number][] }): string {
  if (!a) return '';
  const slow = a.slowest.map(([i, ms]) => `#${i} ${fmt(ms, 1)}`).join(', ');
  return `    ${label.padEnd(22)} p50 ${fmt(a.p50, 2).padStart(6)} ms  p99 ${fmt(a.p99, 2).padStart(6)} ms  (n=${a.n}, failures ${a.failures}; slowest ms: ${slow})`;
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const dbKind = opts.databaseUrl ? 'postgresql' : 'embedded';
  const startedAt = new Date();
  const uptimeBefore = uptime();
  out(`sat bench ${startedAt.toISOString()}  node ${process.version}  ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}`);
  out(`database ${dbKind}  alg ${opts.alg}  clients ${opts.clients}  connections ${opts.connections.join(',')}  ${opts.warmup} s warm-up + ${opts.duration} s per run${opts.scale ? `  scale ${opts.scale.toLocaleString('en')}` : ''}`);
  out(`uptime: ${uptimeBefore}`);
  // The targets compare runs taken minutes apart: other work on the machine moves the baseline by a third or more
  // (seen: 2,088 to 3,410 tokens/s for the same baseline), so a busy start is said loudly, not found out afterwards.
  const [load1 = 0] = os.loadavg();
  if (load1 > 1) {
    out(`WARNING: the 1-minute load average is ${load1.toFixed(2)} before the bench starts: other work is running, and the`);
    out('         comparisons below may fail for it. Run the bench on an idle machine (docs/performance.md).');
  }
  out();

  const servers: Server[] = [];
  const dbs: BenchDb[] = [];
  const senderRuns: SenderRun[] = [];
  const cleanup = async () => {
    for (const s of servers) await stopServer(s).catch(() => undefined);
    for (const d of dbs) await d.drop().catch((err) => out(`could not drop ${d.label}: ${(err as Error).message}`));
  };
  process.once('SIGINT', () => {
    void cleanup().finally(() => process.exit(130));
  });

  try {
    out('seeding');
    const small = await createDb('small');
    dbs.push(small);
    const smallSeed = await seed(small, opts.clients);
    let large: { db: BenchDb; seeded: Seeded } | undefined;
    if (opts.scale > opts.clients) {
      const db = await createDb('large');
      dbs.push(db);
      large = { db, seeded: await seed(db, opts.scale) };
    }
    for (const [label, s] of [['small', smallSeed], ['large', large?.seeded]] as const) {
      if (!s) continue;
      out(`  query plans (${label} database):`);
      for (const p of s.explain) {
        const ms = Number.isFinite(p.execution_ms) ? `${p.execution_ms} ms` : 'planned, not run';
        out(`    ${p.label.padEnd(34)} ${p.plan}  (${ms})${p.seq_scans.length ? '  SEQ SCAN ON ' + p.seq_scans.join(',') : ''}`);
      }
    }
    out();

    out('starting servers');
    if (opts.baseline) servers.push(await startBaseline(smallSeed.known.credentials));
    servers.push(await startOurs(small, opts.clients, smallSeed));
    if (large) servers.push(await startOurs(large.db, opts.scale, large.seeded));
    for (const s of servers) {
      const check = await sanityCheck(s);
      s.startRssMiB = Math.round(peakRssMiB(s.pid));
      out(`  ${s.name.padEnd(14)} pid ${s.pid}  ${s.url}  ${check}  peak RSS after start ${s.startRssMiB} MiB`);
    }
    out();

    out(`runs (uptime: ${uptime()})`);
    const base = (c: number) => servers.find((s) => s.kind === 'baseline')?.runs.find((r) => r.connections === c);
    for (const c of opts.connections) {
      for (const s of servers) {
        await sleep(500);
        const dbCpu = s.db?.kind === 'postgresql' ? backendCpu(s.db) : undefined;
        const r = await measure(
          s.url,
          s.pid,
          s.credentials,
          c,
          opts.duration,
          opts.warmup,
          () => os.loadavg()[0] as number,
          combine(s.profileDir ? profiler(s) : undefined, dbCpu),
        );
        if (dbCpu) r.db_cpu_us_per_token = Math.round((dbCpu.seconds() / r.tokens) * 1e6);
        s.runs.push(r);
        out(runLine(s, r, s.kind === 'ours' ? base(c) : undefined));
        if (s.profileDir) {
          const file = path.join(s.profileDir, `${s.profileCount}.cpuprofile`);
          s.profiles[c] = summariseProfile(file, 30, r.tokens);
        }
      }
    }
    out();

    const oursSmall = servers.find((x) => x.kind === 'ours' && x.size === opts.clients);
    if (opts.phases && oursSmall) {
      const seeded = oursSmall.seeded as Seeded;
      const baselineServer = servers.find((x) => x.kind === 'baseline');
      const bySide = (p: { url: string; pid: number }) => servers.find((x) => x.pid === p.pid) as Server;
      oursSmall.phases = await runPhases({
        ours: oursSmall,
        ...(baselineServer ? { baseline: baselineServer } : {}),
        credentials: seeded.known.credentials,
        limitedCredentials: seeded.known.limited,
        ...(seeded.resourceServer ? { resourceServer: seeded.resourceServer } : {}),
        admin: { email: seeded.known.admin.email, password: seeded.known.admin.password },
        features: seeded.features,
        database: dbKind,
        connections: opts.phaseConnections,
        seconds: opts.duration,
        warmup: opts.warmup,
        rounds: opts.phaseRounds,
        out,
        line: (name, r) => runLine({ ...oursSmall, name: name.slice(0, 34).padEnd(34) }, r),
        async run(p, requests, options) {
          const s = bySide(p);
          const prof = s.profileDir ? profiler(s) : undefined;
          await sleep(500);
          const dbCpu = s.db?.kind === 'postgresql' ? backendCpu(s.db) : undefined;
          const resetPeak = options?.resetPeakRss
            ? {
                // Linux: writing 5 to clear_refs resets VmHWM, so the peak is this run's.
                async before() {
                  try {
                    writeFileSync(`/proc/${s.pid}/clear_refs`, '5');
                  } catch {
                    /* not Linux: the peak is the process's */
                  }
                },
                async after() {},
              }
            : undefined;
          const r = await measureRequests(
            s.url,
            s.pid,
            requests,
            opts.phaseConnections,
            options.seconds,
            options.warmup,
            () => os.loadavg()[0] as number,
            combine(prof, resetPeak, dbCpu),
            options.sink,
          );
          if (dbCpu) r.db_cpu_us_per_token = Math.round((dbCpu.seconds() / r.tokens) * 1e6);
          if (prof) {
            const file = path.join(s.profileDir as string, `${s.profileCount}.cpuprofile`);
            const summary = summariseProfile(file, 30, r.tokens);
            out(`  profile of ${s.name}, ${options.label}: ${path.relative(process.cwd(), file)}`);
            printProfile(summary, out);
          }
          return r;
        },
      });
      out();
    }

    if (opts.stormRate > 0) {
      // SPEC Part 2: token p99 with a storm of wrong sign-ins from many addresses stays within 2x of p99 without.
      out(`token endpoint under a sign-in storm (${opts.stormRate} wrong sign-ins/s, ${opts.stormConnections} connections)`);
      for (const s of servers.filter((x) => x.kind === 'ours')) {
        await sleep(500);
        const quiet = await measure(s.url, s.pid, s.credentials, opts.stormConnections, opts.duration, opts.warmup, () => os.loadavg()[0] as number);
        await sleep(500);
        const storm = signInStorm(s.url, opts.stormRate);
        const stormy = await measure(s.url, s.pid, s.credentials, opts.stormConnections, opts.duration, opts.warmup, () => os.loadavg()[0] as number);
        const { sent, statuses } = await storm.stop();
        const answers = Object.entries(statuses).map(([k, v]) => `${k}: ${v}`).join(', ');
        out(`  ${s.name.padEnd(14)} p99 ${fmt(quiet.latency_ms.p99, 2)} ms without, ${fmt(stormy.latency_ms.p99, 2)} ms with (x${ratio(stormy.latency_ms.p99, quiet.latency_ms.p99)}); ` +
          `${fmt(quiet.tokens_per_s)} → ${fmt(stormy.tokens_per_s)} tokens/s; sign-ins sent ${sent} (${answers})`);
        s.storm = { rate: opts.stormRate, quiet, stormy, signins_sent: sent, signin_statuses: statuses };
      }
      out();
    }

    // Issue 13: private_key_jwt and DPoP beside the secret-based request (a figure to watch, no target).
    const sender = oursSmall?.seeded?.sender;
    if (oursSmall && sender) {
      out('sender-constrained and secretless token requests (closed loop; the load generator signs a fresh JWT per request)');
      for (const c of opts.connections.filter((n) => n <= 32)) {
        for (const r of await measureSender(oursSmall.url, sender, c, opts.duration)) {
          senderRuns.push(r);
          out(`  ${r.kind.padEnd(24)} c=${String(c).padEnd(4)} ${fmt(r.tokens_per_s).padStart(6)} tok/s  p50 ${fmt(r.p50_ms, 2).padStart(6)}  p99 ${fmt(r.p99_ms, 2).padStart(6)} ms  failures ${r.failures}`);
        }
      }
      out();
    }

    for (const s of servers.filter((x) => x.kind === 'ours')) {
      out(`admin API (${s.name}, ${s.size.toLocaleString('en')} credentials)`);
      const known = (s.seeded as Seeded).known;
      const counterKnex = s.db?.kind === 'postgresql' ? await openCounterKnex(s.db) : undefined;
      await sleep(counterKnex ? 11_000 : 0); // let the server's backends flush their statistics first
      const before = counterKnex ? await scanCounters(counterKnex, 'tokens') : undefined;
      s.admin = await measureAdmin(
        s.url,
        { email: known.admin.email, password: known.admin.password },
        'bench token 1',
        (known.credentials[0] as Credential).client_id.slice(0, 12),
        opts.adminSamples,
        opts.revocations,
        out,
      );
      if (counterKnex && before) {
        await sleep(11_000);
        const after = await scanCounters(counterKnex, 'tokens');
        s.admin_scans = {
          seq_scan: after.seq_scan - before.seq_scan,
          idx_scan: after.idx_scan - before.idx_scan,
          seq_tup_read: after.seq_tup_read - before.seq_tup_read,
        };
        await counterKnex.destroy();
      }
      if (!s.admin.available) out(`    skipped: ${s.admin.note}`);
      else {
        for (const [label, a] of [
          ['list', s.admin.list],
          ['search by name', s.admin.search_name],
          ['search by client ID', s.admin.search_client_id],
          ['generate', s.admin.generate],
          ['revoke', s.admin.revoke],
        ] as const) {
          out(adminLine(label, a));
        }
        out(`    token request after revoke: ${s.admin.exchange_after_revoke_status ?? '-'}`);
      }
      if (s.admin_scans) {
        out(`    tokens table during the admin phase: ${s.admin_scans.seq_scan} sequential scans (${s.admin_scans.seq_tup_read} rows read), ${s.admin_scans.idx_scan} index scans`);
      }
    }
    out();
  } finally {
    for (const s of servers) await stopServer(s).catch(() => undefined);
    for (const s of servers) {
      for (const [c, p] of Object.entries(s.profiles)) {
        out(`profile of ${s.name} at c=${c} (${path.relative(process.cwd(), s.profileDir as string)})`);
        printProfile(p, out);
        out();
      }
    }
    for (const d of dbs) await d.drop().catch((err) => out(`could not drop ${d.label}: ${(err as Error).message}`));
  }

  // Verdict against issue 6.
  const ours = servers.find((s) => s.kind === 'ours' && s.size === opts.clients);
  const large = servers.find((s) => s.kind === 'ours' && s.size > opts.clients);
  const baseline = servers.find((s) => s.kind === 'baseline');
  const checks: Record<string, unknown> = {};
  const at = (s: Server | undefined, c: number) => s?.runs.find((r) => r.connections === c);
  const o32 = at(ours, 32);
  const b32 = at(baseline, 32);
  if (o32) {
    const need = dbKind === 'postgresql' ? 0.9 : 0.7;
    const r = b32 ? ratio(o32.tokens_per_s, b32.tokens_per_s) : NaN;
    checks.c32 = {
      tokens_per_s: o32.tokens_per_s,
      baseline_tokens_per_s: b32?.tokens_per_s,
      ratio: r,
      ratio_required: need,
      p99_ms: o32.latency_ms.p99,
      errors: o32.errors + o32.non2xx + o32.timeouts,
      peak_rss_mib: o32.peak_rss_mib,
      // Issue 6: on PostgreSQL ratio, p99, errors and peak RSS; on the embedded database the ratio (RSS is reported).
      pass:
        dbKind === 'postgresql'
          ? r >= need && o32.latency_ms.p99 < 50 && o32.errors + o32.non2xx + o32.timeouts === 0 && o32.peak_rss_mib < 200
          : r >= need && o32.errors + o32.non2xx + o32.timeouts === 0,
    };
  }
  if (ours && large) {
    checks.scale = opts.connections.map((c) => {
      const a = at(ours, c);
      const b = at(large, c);
      return { connections: c, small: a?.tokens_per_s, large: b?.tokens_per_s, ratio: a && b ? ratio(b.tokens_per_s, a.tokens_per_s) : NaN };
    });
    const a = large.admin;
    if (a?.available) {
      const p99s = [a.list, a.search_name, a.search_client_id, a.revoke].map((x) => x?.p99 ?? NaN);
      checks.admin_at_scale = { max_p99_ms: Math.max(...p99s), pass: Math.max(...p99s) < 20 };
    }
  }
  const uptimeAfter = uptime();
  out('summary');
  if (checks.c32) out(`  c=32 vs baseline: ${JSON.stringify(checks.c32)}`);
  if (checks.scale) for (const s of checks.scale as object[]) out(`  scale ${JSON.stringify(s)}`);
  if (checks.admin_at_scale) out(`  admin at scale: ${JSON.stringify(checks.admin_at_scale)}`);
  const phases = ours?.phases;
  if (phases) printTargets(phases.targets, out, dbKind);
  out(`uptime: ${uptimeAfter}`);

  const file = path.join(resultsDir, `${stamp}.json`);
  const result = {
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    machine: { node: process.version, cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, uptime_before: uptimeBefore, uptime_after: uptimeAfter },
    options: { ...opts, database: dbKind, databaseUrl: opts.databaseUrl ? '(set)' : undefined },
    servers: servers.map((s) => ({
      name: s.name,
      kind: s.kind,
      credentials: s.size,
      peak_rss_after_start_mib: s.startRssMiB,
      runs: s.runs,
      ...(s.seeded
        ? {
            seeding: { seconds: Math.round(s.seeded.seed_seconds * 10) / 10, bulk: s.seeded.bulk, organisations_known: s.seeded.known.organisations },
            query_plans: s.seeded.explain,
          }
        : {}),
      ...(s.admin ? { admin: s.admin } : {}),
      ...(s.phases ? { phases: s.phases } : {}),
      ...(s.admin_scans ? { admin_scans: s.admin_scans } : {}),
      ...(Object.keys(s.profiles).length ? { profiles: s.profiles } : {}),
    })),
    checks,
    ...(phases ? { targets: phases.targets } : {}),
    sender_constrained: senderRuns,
  };
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  out(`results: ${path.relative(process.cwd(), file)}`);
  rmSync(workDir, { recursive: true, force: true });
}

async function openCounterKnex(db: BenchDb) {
  const { default: knexFactory } = await import('knex');
  return knexFactory({ client: 'pg', connection: db.env.DATABASE_URL as string, pool: { min: 0, max: 1 } });
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
