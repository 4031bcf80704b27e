// Owner-only files (SPEC Part 2 "Nothing readable by other OS users"): DATA_DIR and everything in it.
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
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
 * Creates `dir` (0700) when `create` and it is missing, then makes it and everything below it owner-only:
 * folders 0700, files and sockets 0600, symbolic links left alone (never followed). Fixes installs made before
 * this rule and folders created beforehand (a Dockerfile's `mkdir -p /data`, a bind mount). Returns how many
 * entries had their mode changed. Entries owned by another user are skipped (chmod would fail; reported by count).
 */
export function makeOwnerOnly(dir: string, create = true): { changed: number; skipped: number } {
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  let changed = 0;
  let skipped = 0;
  const visit = (p: string, depth: number) => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return; // gone meanwhile, or never there
    }
    if (st.isSymbolicLink()) return;
    const wanted = st.isDirectory() ? 0o700 : 0o600;
    if ((st.mode & 0o777) !== wanted) {
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
