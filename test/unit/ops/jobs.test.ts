// The scheduler (src/jobs.ts): an hourly job runs within a minute of the start, not an hour later, so instances
// restarted more often than hourly still run it (reviewer: superseded keys were never pruned).
import { jest } from '@jest/globals';
import { firstRunDelayMs, startJobs } from '../../../src/jobs.js';
import { createLogger } from '../../../src/log.js';

describe('firstRunDelayMs', () => {
  it('is the interval for frequent jobs and 30 to 60 s for the others', () => {
    expect(firstRunDelayMs(5_000, 0.5)).toBe(5_000);
    expect(firstRunDelayMs(60_000, 0.99)).toBe(59_700);
    expect(firstRunDelayMs(3_600_000, 0)).toBe(30_000);
    expect(firstRunDelayMs(3_600_000, 0.999)).toBe(59_970);
    expect(firstRunDelayMs(600_000, 0.5)).toBe(45_000);
  });
});

describe('startJobs', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('runs an hourly job 30 s after the start, then every hour; a 5 s job every 5 s', async () => {
    const runs: { hourly: number[]; often: number[] } = { hourly: [], often: [] };
    const start = Date.now();
    const job = (name: 'hourly' | 'often', intervalMs: number) => ({
      name,
      intervalMs,
      soonAfterStart: true,
      run: async () => void runs[name].push(Date.now() - start),
    });
    const jobs = startJobs([job('hourly', 3_600_000), job('often', 5_000)], createLogger('silent'), { random: () => 0 });
    try {
      await jest.advanceTimersByTimeAsync(29_999);
      expect(runs.hourly).toEqual([]);
      expect(runs.often).toHaveLength(5);
      await jest.advanceTimersByTimeAsync(1);
      expect(runs.hourly).toEqual([30_000]);
      await jest.advanceTimersByTimeAsync(3_600_000);
      expect(runs.hourly).toEqual([30_000, 3_630_000]);
      expect(runs.often[0]).toBe(5_000);
    } finally {
      await jobs.stop();
    }
    const after = runs.often.length;
    await jest.advanceTimersByTimeAsync(60_000);
    expect(runs.often).toHaveLength(after); // stopped: no timer left
  });

  it('runs a job that acts on tokens (not soonAfterStart) first after its interval, and none early when told so', async () => {
    const runs: number[] = [];
    const start = Date.now();
    const record = async () => void runs.push(Date.now() - start);
    const jobs = startJobs([{ name: 'revoke-dormant', intervalMs: 3_600_000, run: record }], createLogger('silent'), { random: () => 0 });
    const quiet = startJobs([{ name: 'prune-keys', intervalMs: 3_600_000, soonAfterStart: true, run: record }], createLogger('silent'), {
      random: () => 0,
      soonAfterStart: false,
    });
    try {
      await jest.advanceTimersByTimeAsync(3_599_999);
      expect(runs).toEqual([]);
      await jest.advanceTimersByTimeAsync(1);
      expect(runs).toEqual([3_600_000, 3_600_000]);
    } finally {
      await jobs.stop();
      await quiet.stop();
    }
  });

  it('runs a job with firstRunAfterMs that long (to twice that) after the start, or after its interval when shorter', async () => {
    const runs: Record<string, number[]> = { hourly: [], short: [] };
    const start = Date.now();
    const job = (name: string, intervalMs: number) => ({ name, intervalMs, firstRunAfterMs: 600_000, run: async () => void runs[name]!.push(Date.now() - start) });
    const jobs = startJobs([job('hourly', 3_600_000), job('short', 300_000)], createLogger('silent'), { random: () => 0.5 });
    try {
      expect(jobs.schedule.get('hourly')).toEqual({ firstRunMs: 900_000, intervalMs: 3_600_000 });
      expect(jobs.schedule.get('short')).toEqual({ firstRunMs: 300_000, intervalMs: 300_000 });
      await jest.advanceTimersByTimeAsync(899_999);
      expect(runs.hourly).toEqual([]);
      await jest.advanceTimersByTimeAsync(1);
      expect(runs.hourly).toEqual([900_000]);
      expect(runs.short).toEqual([300_000, 600_000, 900_000]);
    } finally {
      await jobs.stop();
    }
  });

  it('stop() before the first run leaves no timer', async () => {
    let ran = 0;
    const jobs = startJobs([{ name: 'hourly', intervalMs: 3_600_000, soonAfterStart: true, run: async () => void ran++ }], createLogger('silent'), { random: () => 0 });
    await jobs.stop();
    await jest.advanceTimersByTimeAsync(7_200_000);
    expect(ran).toBe(0);
  });
});
