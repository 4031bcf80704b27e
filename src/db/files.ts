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

/**
 * The entries the server and `sat` write or read directly in DATA_DIR, by how the server runs: the lock, the control
 * socket, the generated key-encryption key and the database for the embedded database; the first administrator's
 * password always; the mail folder when mail goes to files (no SMTP_URL).
 */
const DATA_DIR_ENTRIES = {
  embedded: ['sat.lock', 'sat.sock', 'initial-admin-password', 'key-encryption-key', 'mail', 'pgdata'],
  'postgres-mail-files': ['initial-admin-password', 'mail'],
  postgres: ['initial-admin-password'],
} as const;

/** DATA_DIR holds one of its own entries as a symbolic link or owned by an untrusted user: the process must not use it. */
export class UnsafeDataDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeDataDirError';
  }
}

/**
 * Refuses (UnsafeDataDirError) a DATA_DIR whose own entries (those `mode` uses) are symbolic links or belong to a user
 * it does not trust (SPEC Part 2 "Nothing readable by other OS users"). Where another user could write to DATA_DIR
 * before the first start (a `chmod 777` folder), they could plant `initial-admin-password` or `sat.lock` as a link
 * to a file of ours (which the server would overwrite or truncate), a `mail` link to a folder they read, their own
 * `key-encryption-key` (whose key they know) or `sat.sock` (to which `sat` would send passwords). Trusted: this
 * process's user, and the owner of DATA_DIR when no one else may write to it (so `sudo sat …` still talks to the
 * server that user runs). Missing entries are fine. Call after makeOwnerOnly, which closes DATA_DIR to others when it
 * is ours. DATA_DIR itself may be a link.
 */
export function checkDataDirEntries(dataDir: string, mode: keyof typeof DATA_DIR_ENTRIES): void {
  const ownUid = process.getuid?.();
  if (ownUid === undefined) return; // no owners to compare (Windows)
  const trusted = new Set([ownUid]);
  try {
    const dir = statSync(dataDir);
    if ((dir.mode & 0o022) === 0) trusted.add(dir.uid);
  } catch {
    return; // no DATA_DIR: no entries
  }
  for (const name of DATA_DIR_ENTRIES[mode]) {
    const entry = path.join(dataDir, name);
    let st;
    try {
      st = lstatSync(entry);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
      throw err;
    }
    if (st.isSymbolicLink()) {
      throw new UnsafeDataDirError(`${entry} is a symbolic link: the server writes and reads its own files in DATA_DIR and follows no link there; remove it (to keep the data elsewhere, point DATA_DIR itself there)`);
    }
    if (!trusted.has(st.uid)) {
      throw new UnsafeDataDirError(
        `${entry} belongs to user ${st.uid}, neither this process's user (${ownUid}) nor the owner of a DATA_DIR that only its owner may write to: another user may have put it there. Run the server and sat as the user that owns DATA_DIR, and remove the entry if you did not make it`,
      );
    }
  }
}
