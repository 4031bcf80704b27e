import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
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
  const fd = openSync(file, 'a+', 0o600);
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
