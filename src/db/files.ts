// Owner-only files (SPEC Part 2 "Nothing readable by other OS users"): DATA_DIR and everything in it.
import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** The process umask the server and `sat` run with: what they create is 0700 (folders) / 0600 (files). */
export const OWNER_ONLY_UMASK = 0o077;

/**
 * Sets the process umask to 077, so every file and folder this process creates from now on (the embedded
 * database's files, the lock, the control socket, `.eml` files, anything new) is owner-only whatever umask the
 * process was started with. Returns the previous umask.
 */
export function restrictUmask(): number {
  return process.umask(OWNER_ONLY_UMASK);
}

/**
 * `mkdir -p dir` with mode 0700, one level at a time from the nearest folder that exists. Node's recursive mkdirSync
 * spins for ever on a path under /proc (mkdir there fails ENOENT although the parent exists): DATA_DIR=/proc/x hung
 * `sat serve` at 100 % CPU, deaf to SIGTERM. This throws the first error instead (ENOENT, EACCES, ENOTDIR, ...).
 */
export function makeDirectories(dir: string): void {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(p).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(p) === p) throw err;
      missing.push(p);
      continue;
    }
    if (!isDirectory) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}' (${p} is a file)`), { code: 'ENOTDIR' });
    break;
  }
  for (const p of missing.reverse()) {
    try {
      mkdirSync(p, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made meanwhile (another process): fine
    }
  }
}

/**
 * Creates `dir` (0700) when `create` and it is missing, then makes it and everything below it owner-only:
 * folders 0700, files and sockets 0600, symbolic links left alone (never followed). Fixes installs made before
 * this rule and folders created beforehand (a Dockerfile's `mkdir -p /data`, a bind mount). Returns how many
 * entries had their mode changed. Entries owned by another user are left alone, also by root, and counted (`skipped`).
 */
export function makeOwnerOnly(dir: string, create = true): { changed: number; skipped: number } {
  if (create) makeDirectories(dir);
  let changed = 0;
  let skipped = 0;
  const ownUid = process.getuid?.();
  const visit = (p: string, depth: number) => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return; // gone meanwhile, or never there
    }
    if (st.isSymbolicLink()) return;
    const wanted = st.isDirectory() ? 0o700 : 0o600;
    if ((st.mode & 0o777) !== wanted && ownUid !== undefined && st.uid !== ownUid) {
      skipped++; // another user's (root may chmod it, but it is not ours to change): left alone, counted
    } else if ((st.mode & 0o777) !== wanted) {
      try {
        chmodSync(p, wanted);
        changed++;
      } catch {
        skipped++;
      }
    }
    if (st.isDirectory() && depth < 64) {
      for (const name of readdirSync(p)) visit(path.join(p, name), depth + 1);
    }
  };
  visit(dir, 0);
  return { changed, skipped };
}
