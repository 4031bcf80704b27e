import { closeSync, constants, existsSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import fsExt from 'fs-native-extensions';

const { tryLock, unlock } = fsExt;

/**
 * The embedded database is single-process: PGlite opened twice on one directory corrupts it. The guard is an
 * advisory lock held by the kernel on DATA_DIR/sat.lock (open file description locks on Linux, flock on macOS)
 * for as long as the server's file descriptor is open. The kernel drops it when the process ends in any way —
 * kill -9, an OOM kill, a container whose node is PID 1 — so an unclean exit never blocks the next start, and a
 * pid written in the file (only informative) can never be mistaken for a live holder. The file itself is never
 * deleted: removing a lock file while others may be waiting on it lets two processes hold "the" lock.
 */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number | undefined,
  ) {
    super(
      `the embedded database in ${dataDir} is in use by ${pid ? `process ${pid}` : 'another process'}. ` +
        'It can be opened by one process at a time: stop that process, or run `sat` commands, which reach a running server through its local socket.',
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  release(): void;
}

/** The data-directory lock file: DATA_DIR/sat.lock. */
export function lockPath(dataDir: string): string {
  return path.join(dataDir, 'sat.lock');
}

function recordedPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a live process holds DATA_DIR: its recorded pid (or 0 when the file says none), or undefined when
 * nobody does. Probes with a shared lock on a read-only descriptor, let go at once: it never creates the file
 * (a `sat` run by another user must not leave a lock file the server cannot open) and needs no write access.
 */
export function readLockHolder(dataDir: string): number | undefined {
  const file = lockPath(dataDir);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // no server ever ran here
    throw err;
  }
  try {
    if (tryLock(fd, { shared: true })) {
      unlock(fd);
      return undefined;
    }
    return recordedPid(file) ?? 0;
  } finally {
    closeSync(fd);
  }
}

/** Takes the lock on DATA_DIR for this process, or throws DataDirLockedError naming the holder. */
export function acquireDataDirLock(dataDir: string): DataDirLock {
  const file = lockPath(dataDir);
  // 'a+' without following a link (a planted `sat.lock` link would have the server truncate the file it names).
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
  let granted = false;
  try {
    // A `sat` command probing the lock (readLockHolder) holds it for microseconds: try again briefly before
    // calling it taken, so such a probe never makes a starting server give up.
    for (const waitMs of [0, 20, 50, 100]) {
      if (waitMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, waitMs);
      granted = tryLock(fd);
      if (granted) break;
    }
  } finally {
    if (!granted) closeSync(fd);
  }
  if (!granted) throw new DataDirLockedError(dataDir, recordedPid(file));
  // Informative only (for the refusal message above): the kernel lock, not this pid, says who holds DATA_DIR.
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        ftruncateSync(fd, 0);
        unlock(fd);
      } finally {
        closeSync(fd); // closing the descriptor alone would release the lock too
      }
    },
  };
}

/**
 * A server of a version from before this lock runs on DATA_DIR: it held the directory with a pid file only, so the
 * kernel lock is free although the database is open (the first release and those up to the kernel lock).
 */
export class OlderServerRunningError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number | undefined,
  ) {
    super(
      `a server of an older version is running on ${dataDir}${pid ? ` (process ${pid})` : ''}: stop it, then ` +
        'start this version or run this `sat` (docs/operations.md#upgrades). It holds the embedded database without ' +
        'the lock this version looks for, and two processes on one embedded database corrupt it.',
    );
    this.name = 'OlderServerRunningError';
  }
}

/** Whether something accepts connections on DATA_DIR/sat.sock (the control socket, control/index.ts). */
function controlSocketAnswers(dataDir: string): Promise<boolean> {
  const file = path.join(dataDir, 'sat.sock');
  if (!existsSync(file)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = net.createConnection(file);
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false)); // ECONNREFUSED: a socket file left by a process that died
  });
}

/**
 * Throws OlderServerRunningError when a server of an older version runs on DATA_DIR: its control socket answers
 * while nobody holds the kernel lock (this version listens there only while holding it). Call before taking the
 * lock, which would overwrite the older server's pid file. A server of this version starting meanwhile holds the
 * lock by the time its socket answers: then nothing is thrown and taking the lock says it is in use.
 */
export async function refuseOlderServer(dataDir: string): Promise<void> {
  if (readLockHolder(dataDir) !== undefined) return;
  const pid = recordedPid(lockPath(dataDir));
  if (!(await controlSocketAnswers(dataDir))) return;
  if (readLockHolder(dataDir) !== undefined) return;
  throw new OlderServerRunningError(dataDir, pid);
}

/** What an attempt given to waitForDataDir returns to be called again 200 ms later. */
export const TRY_AGAIN: unique symbol = Symbol('try again');

/**
 * The one polling loop of the DATA_DIR waits (a server waiting for a `sat` command, a command waiting for a server
 * that is starting): calls `attempt(lastTry)` until it returns something other than TRY_AGAIN (resolved with it) or
 * throws (rejected with that), every 200 ms for up to `waitMs` milliseconds, calling `onWait` once before the first
 * wait. `lastTry` is true once the deadline has passed: the attempt should then throw its own error, which names
 * what stood in the way; if it returns TRY_AGAIN anyway, waitForDataDir throws a plain timeout Error.
 */
export async function waitForDataDir<T>(waitMs: number, onWait: () => void, attempt: (lastTry: boolean) => Promise<T | typeof TRY_AGAIN>): Promise<T> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const lastTry = Date.now() >= deadline;
    const result = await attempt(lastTry);
    if (result !== TRY_AGAIN) return result;
    if (lastTry) throw new Error(`DATA_DIR still in use after ${Math.round(waitMs / 1000)} s`);
    if (!told) {
      onWait();
      told = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * acquireDataDirLock for `sat serve`, which waits for a `sat` command instead of failing: a command holds DATA_DIR
 * for the seconds it runs (a cron job's `sat backup`, a script's `sat token list`), and a restart that overlaps one
 * would otherwise exit 1 ("in use by process N", the command's pid). While the holder does not answer on the
 * control socket (a command; or a server still starting), tries again every 200 ms for up to `waitMs`, calling
 * `onWait` once. A holder that answers there is a running server: DataDirLockedError at once, as before the wait.
 */
export async function acquireDataDirLockWaiting(dataDir: string, waitMs: number, onWait: () => void): Promise<DataDirLock> {
  return waitForDataDir(waitMs, onWait, async (lastTry) => {
    try {
      return acquireDataDirLock(dataDir);
    } catch (err) {
      if (!(err instanceof DataDirLockedError) || lastTry || (await controlSocketAnswers(dataDir))) throw err;
      return TRY_AGAIN;
    }
  });
}
