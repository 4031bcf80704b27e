// One load run: autocannon against POST /token, with the server process's CPU time and peak RSS read from /proc.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

export interface TokenRequest {
  client_id: string;
  client_secret: string;
}

export interface RunResult {
  connections: number;
  seconds: number;
  tokens: number;
  tokens_per_s: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Server CPU (user + system, all threads) per issued token, in microseconds. */
  cpu_us_per_token: number;
  /** Server CPU used during the run, as a share of one core. */
  cpu_cores: number;
  /** PostgreSQL: CPU of the server's database backends per token (they share this machine's cores). */
  db_cpu_us_per_token?: number;
  /** CPU of the load generator (this process) during the run, as a share of one core. */
  loadgen_cpu_cores: number;
  /** VmHWM of the server process after the run, in MiB (monotonic over the process's life). */
  peak_rss_mib: number;
  /** 1-minute load average right after the run. */
  load1: number;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process (every thread), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** VmHWM (peak resident set size), in MiB. */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

export function basicAuth(c: TokenRequest): string {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString('base64');
}

/** One prebuilt request per client; every connection cycles through them (no per-request rebuilding). */
function tokenRequests(clients: TokenRequest[]): autocannon.Request[] {
  return clients.map((c) => ({
    method: 'POST',
    path: '/token',
    headers: { authorization: basicAuth(c), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  }));
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

interface Counts {
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

function driveOne(
  url: string,
  requests: autocannon.Request[],
  connections: number,
  seconds: number,
  onLatency?: (ms: number, status: number) => void,
) {
  return new Promise<Counts>((resolve, reject) => {
    const instance = autocannon(
      { url, connections, duration: seconds, requests, timeout: 10 },
      (err: Error | null, result: autocannon.Result) => (err ? reject(err) : resolve(result)),
    );
    if (onLatency) {
      instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) =>
        onLatency(responseTime, statusCode),
      );
    }
  });
}

/**
 * `connections` connections, in up to 16 autocannon instances whose request lists start at different clients, so
 * concurrent requests are for different clients as in real traffic (one list would start every connection on
 * the same client, in step).
 */
async function drive(url: string, all: autocannon.Request[], connections: number, seconds: number, onLatency?: (ms: number, status: number) => void) {
  const k = Math.min(connections, 16);
  const runs: Promise<Counts>[] = [];
  for (let i = 0; i < k; i++) {
    const offset = Math.floor((i * all.length) / k);
    const share = Math.floor(connections / k) + (i < connections % k ? 1 : 0);
    runs.push(driveOne(url, [...all.slice(offset), ...all.slice(0, offset)], share, seconds, onLatency));
  }
  const results = await Promise.all(runs);
  return results.reduce(
    (sum, r) => ({ '2xx': sum['2xx'] + r['2xx'], non2xx: sum.non2xx + r.non2xx, errors: sum.errors + r.errors, timeouts: sum.timeouts + r.timeouts }),
    { '2xx': 0, non2xx: 0, errors: 0, timeouts: 0 },
  );
}

/**
 * Warm-up (discarded), then the measured run. Latencies are kept per response (microsecond precision; autocannon's
 * own histogram rounds to whole milliseconds) for 2xx responses only.
 */
export function measure(
  url: string,
  pid: number,
  clients: TokenRequest[],
  connections: number,
  seconds: number,
  warmupSeconds: number,
  loadavg: () => number,
  around?: { before(): Promise<void>; after(): Promise<void> },
): Promise<RunResult> {
  return measureRequests(url, pid, tokenRequests(clients), connections, seconds, warmupSeconds, loadavg, around);
}

/**
 * measure() for any list of prebuilt requests (introspection, a mixed load): every connection cycles through
 * `requests`, the instances starting at different offsets. "tokens" in the result counts 2xx responses.
 */
export async function measureRequests(
  url: string,
  pid: number,
  requests: autocannon.Request[],
  connections: number,
  seconds: number,
  warmupSeconds: number,
  loadavg: () => number,
  around?: { before(): Promise<void>; after(): Promise<void> },
  /** Receives every 2xx latency of the measured run (ms), to merge runs. */
  sink?: number[],
): Promise<RunResult> {
  if (warmupSeconds > 0) await drive(url, requests, connections, warmupSeconds);
  await around?.before();
  const latencies: number[] = [];
  const cpuBefore = cpuSeconds(pid);
  const benchCpuBefore = process.cpuUsage();
  const started = performance.now();
  const result = await drive(url, requests, connections, seconds, (ms, status) => {
    if (status >= 200 && status < 300) {
      latencies.push(ms);
      sink?.push(ms);
    }
  });
  const wall = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(pid) - cpuBefore;
  const benchCpu = process.cpuUsage(benchCpuBefore);
  await around?.after();
  const sorted = Float64Array.from(latencies).sort();
  const tokens = result['2xx'];
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    connections,
    seconds: r2(wall),
    tokens,
    tokens_per_s: Math.round(tokens / wall),
    latency_ms: {
      p50: r2(percentile(sorted, 50)),
      p90: r2(percentile(sorted, 90)),
      p99: r2(percentile(sorted, 99)),
      max: r2(sorted.length ? (sorted[sorted.length - 1] as number) : NaN),
    },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    cpu_us_per_token: tokens ? Math.round((cpu / tokens) * 1e6) : NaN,
    cpu_cores: r2(cpu / wall),
    loadgen_cpu_cores: r2((benchCpu.user + benchCpu.system) / 1e6 / wall),
    peak_rss_mib: Math.round(peakRssMiB(pid)),
    load1: r2(loadavg()),
  };
}
