// Free space under DATA_DIR for the embedded database (issue 10 item 13): the engine cannot cope with a full disk
// (it spins inside the write-ahead log), so writes are refused before the disk is full.
import { statfsSync } from 'node:fs';

export interface DiskSpace {
  freeBytes: number;
  /** True when fewer than the configured minimum bytes are free: writes are refused (507), /readyz says 503. */
  low: boolean;
}

/**
 * A cached probe of the free space of the file system holding `dir` (statfs, at most once per `everyMs`).
 * `onChange(low)` is called when the verdict changes (for one log line each way).
 */
export function diskSpaceProbe(dir: string, minFreeBytes: number, onChange?: (space: DiskSpace) => void, everyMs = 1_000): () => DiskSpace {
  let last: DiskSpace = { freeBytes: Number.POSITIVE_INFINITY, low: false };
  let at = 0;
  return () => {
    const now = Date.now();
    if (now - at < everyMs) return last;
    at = now;
    let next: DiskSpace;
    try {
      const s = statfsSync(dir);
      const freeBytes = Number(s.bavail) * Number(s.bsize);
      next = { freeBytes, low: freeBytes < minFreeBytes };
    } catch {
      next = last; // the directory is briefly unreadable: keep the last verdict
    }
    if (next.low !== last.low) onChange?.(next);
    last = next;
    return last;
  };
}
