// Password hashing off the libuv thread pool: scrypt runs on its own worker threads, with a bounded queue.
import { Worker } from 'node:worker_threads';
import { RateLimitedError } from '../errors.js';

/**
 * The worker: scryptSync, one job at a time. Inline (eval) so the same code runs from dist/ and under ts-jest.
 * It runs on its own thread, so the libuv pool stays free for what the token endpoint needs (signing), and at the
 * lowest CPU priority where the OS allows it.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
// Linux: this thread alone runs at a low CPU priority (nice 19 by default; setpriority on a thread id), so under load
// the event loop (the token endpoint) gets the cores first and hashing takes what is left.
try {
  const nice = require('node:worker_threads').workerData.nice;
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  if (tid > 0 && nice > 0) require('node:os').setPriority(tid, nice);
} catch {}
parentPort.on('message', (job) => {
  try {
    const key = scryptSync(job.password, Buffer.from(job.salt), job.keylen, job.options);
    parentPort.postMessage({ id: job.id, key });
  } catch (err) {
    parentPort.postMessage({ id: job.id, error: String((err && err.message) || err) });
  }
});
`;

/**
 * Thrown when `maxQueue` hashes are already waiting: 429 with Retry-After 1 (SPEC Part 2), wherever a password is
 * hashed or checked (sign-in, password change, invitation, reset), not only where the caller expects it.
 */
export class PasswordQueueFullError extends RateLimitedError {
  constructor() {
    super('Too many password checks at once. Try again in a moment.', 1);
    this.name = 'PasswordQueueFullError';
  }
}

export interface PasswordPoolSettings {
  /** Worker threads hashing at once. */
  threads: number;
  /** Hashes allowed to wait for a thread; one more is refused. */
  maxQueue: number;
  /** Linux nice value of the hashing threads (0 to 19; default 19, the lowest priority). */
  nice?: number;
}

interface Job {
  id: number;
  password: string;
  salt: Uint8Array;
  keylen: number;
  options: { N: number; r: number; p: number; maxmem: number };
  resolve(key: Buffer): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
}

/**
 * At most `threads` worker threads computing scrypt, and a FIFO queue of at most `maxQueue` waiting jobs
 * (SPEC Part 2 "Admin sign-in cannot starve token issuance": bounded concurrency, away from the signing).
 * A thread starts when a job finds none idle; an idle thread never keeps the process alive; `release()` stops them.
 */
export class PasswordPool {
  #slots: Slot[] = [];
  #queue: Job[] = [];
  #next = 1;
  /** Set by `release()`: a thread stops once it has no work; the next hash clears it. */
  #releasing = false;
  constructor(readonly settings: PasswordPoolSettings) {}

  scrypt(password: string, salt: Buffer, keylen: number, options: Job['options']): Promise<Buffer> {
    this.#releasing = false;
    let idle = this.#slots.find((s) => s.job === undefined);
    if (!idle && this.#slots.length < this.settings.threads) {
      idle = this.#spawn();
      this.#slots.push(idle);
    }
    if (!idle && this.#queue.length >= this.settings.maxQueue) return Promise.reject(new PasswordQueueFullError());
    return new Promise((resolve, reject) => {
      const job: Job = { id: this.#next++, password, salt: new Uint8Array(salt), keylen, options, resolve, reject };
      if (idle) this.#run(idle, job);
      else this.#queue.push(job);
    });
  }

  /** True when one more hash would be accepted now (a thread idle or yet to start, or room in the queue). */
  hasRoom(): boolean {
    return this.#slots.length < this.settings.threads || this.#slots.some((s) => s.job === undefined) || this.#queue.length < this.settings.maxQueue;
  }

  /** Threads running now (started on demand, at most `threads`). */
  liveThreads(): number {
    return this.#slots.length;
  }

  /**
   * Lets the threads go once they have no work: an idle thread stops now, a busy one when its job and the queue are
   * done; the next hash starts one again. Jobs are never cut. For a server's shutdown (serve's close), so a process
   * that outlives its server keeps no idle thread: each holds a V8 isolate (~9 MB), and the test workers, which start
   * a server per file, gathered one per file.
   */
  release(): void {
    this.#releasing = true;
    for (const slot of this.#slots.filter((s) => s.job === undefined)) this.#retire(slot);
  }

  /** Stops the threads now: the jobs running and waiting fail (a terminated thread answers nothing). */
  async close(): Promise<void> {
    const slots = this.#slots;
    this.#slots = [];
    const stopped = () => new Error('password hashing stopped');
    for (const job of this.#queue.splice(0)) job.reject(stopped());
    for (const slot of slots) {
      slot.job?.reject(stopped());
      slot.job = undefined;
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  #retire(slot: Slot): void {
    const i = this.#slots.indexOf(slot);
    if (i !== -1) this.#slots.splice(i, 1);
    void slot.worker.terminate();
  }

  #spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER_SOURCE, { eval: true, workerData: { nice: this.settings.nice ?? 19 } }), job: undefined };
    slot.worker.on('message', (msg: { id: number; key?: Uint8Array; error?: string }) => {
      const job = slot.job;
      slot.job = undefined;
      if (job && job.id === msg.id) {
        if (msg.key) job.resolve(Buffer.from(msg.key));
        else job.reject(new Error(msg.error ?? 'scrypt failed'));
      }
      const next = this.#queue.shift();
      if (next) this.#run(slot, next);
      else if (this.#releasing) this.#retire(slot);
      else slot.worker.unref();
    });
    slot.worker.on('error', (err) => {
      // A dead thread: its job fails; a new thread takes the queue's next job, if any (else one starts on demand).
      slot.job?.reject(err);
      slot.job = undefined;
      const i = this.#slots.indexOf(slot);
      if (i === -1) return; // closed or retired
      const next = this.#queue.shift();
      if (next) {
        const fresh = this.#spawn();
        this.#slots[i] = fresh;
        this.#run(fresh, next);
      } else this.#slots.splice(i, 1);
    });
    slot.worker.unref(); // idle threads never keep the process alive; #run refs a busy one
    return slot;
  }

  #run(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref();
    slot.worker.postMessage({ id: job.id, password: job.password, salt: job.salt, keylen: job.keylen, options: job.options });
  }
}
