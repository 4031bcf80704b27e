// The only scheduler: periodic background tasks, never overlapping themselves, stopped cleanly.
import { isDatabaseUnavailable, noteDatabaseOutage } from './db/index.js';
import type { Logger } from './log.js';

export interface Job {
  name: string;
  intervalMs: number;
  run(): Promise<unknown>;
}

export interface Jobs {
  /** Stops the timers and waits for runs in progress. */
  stop(): Promise<void>;
}

export function startJobs(jobs: Job[], log: Logger): Jobs {
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<unknown>>();
  let stopped = false;
  for (const job of jobs) {
    let busy = false;
    const tick = () => {
      if (busy || stopped) return;
      busy = true;
      const p = job
        .run()
        .catch((err) =>
          // A database outage is logged once for everyone (db/outage.ts), not by every job on every tick.
          isDatabaseUnavailable(err) ? noteDatabaseOutage(log, err, `job ${job.name}`) : log.warn(`job ${job.name} failed`, { err }),
        )
        .finally(() => {
          busy = false;
          running.delete(p);
        });
      running.add(p);
    };
    const t = setInterval(tick, job.intervalMs);
    t.unref();
    timers.push(t);
  }
  return {
    async stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...running]);
    },
  };
}
