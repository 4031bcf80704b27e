// The only scheduler: periodic background tasks, never overlapping themselves, stopped cleanly.
import { isDatabaseUnavailable, noteDatabaseOutage } from './db/index.js';
import type { Logger } from './log.js';

export interface Job {
  name: string;
  intervalMs: number;
  run(): Promise<unknown>;
  /**
   * A job that must not wait a whole interval after each start (firstRunDelayMs: 30 to 60 s): key rotation and
   * pruning, sent-mail pruning, expiry reminders. An instance restarted more often than the interval would never
   * run it otherwise.
   */
  soonAfterStart?: boolean;
  /**
   * Like soonAfterStart, but the first run comes `firstRunAfterMs` to twice that after a start: dormant-token
   * revocation waits 10 to 20 minutes, so that after a restore or an outage the clients still in use are seen (their
   * `last_used_at` written) before tokens are judged dormant.
   */
  firstRunAfterMs?: number;
}

export interface Jobs {
  /** Stops the timers and waits for runs in progress. */
  stop(): Promise<void>;
  /**
   * Runs the named job once now and resolves with its result (after a run already in progress, never two at
   * once). Errors propagate to the caller (the timer's runs log them instead). Tests and operations use it.
   */
  run(name: string): Promise<unknown>;
  /** The names of the jobs, in registration order. */
  readonly names: string[];
  /**
   * When each job first runs after the start and how often after that, in ms (with timers off: when it would). For
   * operators' docs and the tests that hold main.ts to them.
   */
  readonly schedule: ReadonlyMap<string, { firstRunMs: number; intervalMs: number }>;
}

export interface JobsOptions {
  /** `false`: no timers; jobs run only when `run(name)` is called (tests drive them). Default true. */
  timers?: boolean;
  /** Random in [0, 1), for the first run's spread (tests pass a fixed one). Default Math.random. */
  random?: () => number;
  /** `false`: every job first runs after its interval, `soonAfterStart` or not (the test servers). Default true. */
  soonAfterStart?: boolean;
}

/**
 * When a `soonAfterStart` job first runs after the start, in ms: after its interval when that is short, but at most
 * 30-60 s (`baseMs` to twice that, spread at random, so instances started together do not run it together) for the
 * hourly ones. An instance restarted more often than a job's interval (frequent deploys, autoscaling) would otherwise
 * never run it: superseded signing keys never pruned, key rotation put off after every restart, sent mail never
 * pruned, no expiry reminder sent. `random` in [0, 1).
 */
export function firstRunDelayMs(intervalMs: number, random: number, baseMs = FIRST_RUN_MS): number {
  return Math.min(intervalMs, baseMs + Math.floor(random * baseMs));
}
const FIRST_RUN_MS = 30_000;

/**
 * Schedules each job every `intervalMs` (first run after firstRunDelayMs when `soonAfterStart` or `firstRunAfterMs`,
 * else one interval),
 * never two runs of one job at once; failures are logged (a database outage once, via noteDatabaseOutage), never
 * thrown. Timers are unref'd. Returns the Jobs handle: `run(name)` throws for an unknown name or after `stop()`.
 */
export function startJobs(jobs: Job[], log: Logger, options: JobsOptions = {}): Jobs {
  const useTimers = options.timers ?? true;
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<unknown>>();
  let stopped = false;
  const current = new Map<string, Promise<unknown>>(); // the run in progress of each job
  const launch = (job: Job): Promise<unknown> => {
    const p = job.run().finally(() => {
      current.delete(job.name);
      running.delete(p);
    });
    current.set(job.name, p);
    running.add(p);
    return p;
  };
  const firstDelay = (job: Job): number => {
    if (options.soonAfterStart === false || (!job.soonAfterStart && job.firstRunAfterMs === undefined)) return job.intervalMs;
    return firstRunDelayMs(job.intervalMs, (options.random ?? Math.random)(), job.firstRunAfterMs ?? FIRST_RUN_MS);
  };
  const schedule = new Map(jobs.map((job) => [job.name, { firstRunMs: firstDelay(job), intervalMs: job.intervalMs }]));
  for (const job of jobs) {
    if (!useTimers) continue;
    const tick = () => {
      if (current.has(job.name) || stopped) return;
      launch(job).catch((err) =>
        // A database outage is logged once for everyone (db/outage.ts), not by every job on every tick.
        isDatabaseUnavailable(err) ? noteDatabaseOutage(log, err, `job ${job.name}`) : log.warn(`job ${job.name} failed`, { err }),
      );
    };
    const first = setTimeout(() => {
      tick();
      const t = setInterval(tick, job.intervalMs);
      t.unref();
      timers.push(t);
    }, schedule.get(job.name)!.firstRunMs);
    first.unref();
    timers.push(first);
  }
  const byName = new Map(jobs.map((j) => [j.name, j]));
  return {
    names: jobs.map((j) => j.name),
    schedule,
    async run(name) {
      const job = byName.get(name);
      if (!job) throw new Error(`no job named ${name}; jobs: ${[...byName.keys()].join(', ')}`);
      if (stopped) throw new Error('jobs are stopped');
      // Never two runs of one job at once: wait for the one in progress, then run afresh.
      for (let p = current.get(name); p; p = current.get(name)) await p.catch(() => undefined);
      return launch(job);
    },
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t); // the first-run timeouts and the intervals alike
      await Promise.allSettled([...running]);
    },
  };
}
