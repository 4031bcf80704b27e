// Backups of the embedded database (`sat backup FILE`, `sat restore FILE`). PostgreSQL has pg_dump for this.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import type { Knex } from 'knex';
import { newEmbeddedEngine } from './embedded.js';
import { makeOwnerOnly } from './files.js';
import { unknownMigrations } from './migrate.js';

/** The PGlite instance behind a knex on the embedded engine (knex-pglite keeps it on its client). */
interface DumpablePglite {
  query(sql: string): Promise<unknown>;
  dumpDataDir(compression?: 'none' | 'gzip' | 'auto'): Promise<Blob>;
}

function pgliteOf(knex: Knex): DumpablePglite {
  const pglite = (knex as unknown as { client: { pglite?: DumpablePglite } }).client.pglite;
  if (!pglite) throw new Error('not the embedded database');
  return pglite;
}

/**
 * A backup target that cannot be written (missing or unwritable directory, an existing file, a full disk): the
 * message names the file and the reason, for `sat` to print as is (no stack, nothing for the server log).
 */
export class BackupTargetError extends Error {
  constructor(file: string, reason: string) {
    super(`cannot write ${file}: ${reason}`);
    this.name = 'BackupTargetError';
  }
}

/** The reason an fs call on `file` failed, in words, or undefined for an error that is not about the target. */
function targetProblem(file: string, err: unknown): BackupTargetError | undefined {
  const dir = path.dirname(file);
  const reasons: Record<string, string> = {
    ENOENT: `no such directory ${dir}`,
    ENOTDIR: `${nearestFile(dir) ?? dir} is not a directory`,
    EACCES: `permission denied (the server or sat cannot write to ${dir})`,
    EPERM: `permission denied (the server or sat cannot write to ${dir})`,
    EROFS: `${dir} is on a read-only file system`,
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EISDIR: 'it is a directory',
    ENAMETOOLONG: 'the name is too long',
  };
  const reason = reasons[(err as NodeJS.ErrnoException).code ?? ''];
  return reason ? new BackupTargetError(file, reason) : undefined;
}

/** The first ancestor of `dir` (itself included) that exists but is not a directory: the ENOTDIR culprit. */
function nearestFile(dir: string): string | undefined {
  for (let p = dir; p !== path.dirname(p); p = path.dirname(p)) {
    try {
      if (!statSync(p).isDirectory()) return p;
    } catch {
      // missing: look further up
    }
  }
  return undefined;
}

/**
 * Refuses a target that cannot become the backup file (a directory, a missing or non-directory parent) before the
 * work starts: BackupTargetError. An existing file is replaced (a nightly `sat backup /backups/sat.tar.gz` keeps
 * working), atomically. `sat backup` checks it before it opens any database, and again inside the server.
 */
export function checkBackupTarget(file: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !existsSync(path.dirname(file))) throw targetProblem(file, err);
    if (code === 'ENOENT') return;
    throw targetProblem(file, err) ?? err;
  }
  if (st.isDirectory()) throw new BackupTargetError(file, 'it is a directory');
}

/**
 * Writes `data` to `file` owner-only (0600), through a temporary file beside it renamed into place: never half a
 * backup, and an existing file is replaced only by a complete one. BackupTargetError when the target cannot be
 * written.
 */
function writePrivateFile(file: string, data: Buffer): void {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      // A write may take only part of the buffer (a nearly full disk): write the rest until done, or until the next
      // write fails (ENOSPC), never treating a short write as the whole backup.
      for (let written = 0; written < data.length; ) written += writeSync(fd, data, written, data.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    checkBackupTarget(file);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err instanceof BackupTargetError ? err : (targetProblem(file, err) ?? err);
  }
}

/**
 * A consistent copy of the running embedded database, as a gzipped tar of its data directory, written to `file`
 * (an absolute path) with mode 0600. PGlite runs one statement at a time: the dump happens between statements,
 * after a checkpoint; a transaction still open at that moment is absent from the copy (as after a crash).
 * BackupTargetError (checked before the dump, and on writing) when `file` cannot be written (a directory, …).
 */
export async function backupEmbedded(knex: Knex, file: string): Promise<{ file: string; bytes: number }> {
  checkBackupTarget(file);
  const pglite = pgliteOf(knex);
  await pglite.query('checkpoint');
  const blob = await pglite.dumpDataDir('gzip');
  const data = Buffer.from(await blob.arrayBuffer());
  writePrivateFile(file, data);
  return { file, bytes: data.length };
}

const TAR_BLOCK = 512;

/**
 * Checks that `tar` is a whole ustar archive (POSIX.1-1988, what `sat backup` writes inside the gzip): every
 * header carries the ustar magic and every entry's data is there. PGlite, given anything else, tries to gunzip it
 * through a stream whose failure nobody awaits, which crashes the process after our message (an unhandled
 * rejection): so nothing that is not a tar reaches it. Throws with the reason.
 */
function checkTar(tar: Buffer): void {
  const zeros = (from: number, to: number) => tar.subarray(from, Math.min(to, tar.length)).every((b) => b === 0);
  let at = 0;
  let entries = 0;
  while (tar.length - at >= TAR_BLOCK) {
    const magic = tar.toString('latin1', at + 257, at + 265);
    if (!/^ustar\0[0 \0]{2}$/.test(magic) && magic !== 'ustar  \0') {
      if (entries > 0 && zeros(at, at + 2 * TAR_BLOCK)) break; // the end-of-archive blocks
      throw new Error(entries === 0 ? 'not a tar archive' : 'a damaged tar archive');
    }
    const type = (parseInt(String.fromCharCode(tar[at + 156]!), 10) || 0) % 8;
    const size = type === 0 ? parseInt(tar.toString('latin1', at + 124, at + 136), 8) || 0 : 0;
    at += TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    if (at > tar.length) throw new Error('a truncated tar archive');
    entries++;
    if (zeros(at, at + 2 * TAR_BLOCK)) break;
  }
  if (entries === 0) throw new Error('not a tar archive');
}

/** The tar inside a backup file: gunzipped when it is gzip (what `sat backup` writes), else taken as a tar. */
async function tarOf(data: Buffer): Promise<Buffer> {
  const tar = data[0] === 0x1f && data[1] === 0x8b ? await promisify(gunzip)(data) : data;
  checkTar(tar);
  return tar;
}

/** A signing key of a backup as restoreEmbedded's `checkKeys` sees it: which key-encryption key sealed it. */
export interface BackupSigningKey {
  kid: string;
  kek_id: string | null;
  sealed: boolean;
}

/** A backup that opens but that `checkKeys` refused (its signing keys do not open with the configured key). */
export class RestoreRefusedError extends Error {}

/** The directories beside `dataPath` named `<pgdata>.<stage>-<8 hex>`, as restoreEmbedded names them. */
function restoreDirectories(dataPath: string, stage: 'restoring' | 'restored'): string[] {
  const dir = path.dirname(dataPath);
  const prefix = `${path.basename(dataPath)}.${stage}-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => n.startsWith(prefix) && /^[0-9a-f]{8}$/.test(n.slice(prefix.length))).map((n) => path.join(dir, n));
}

/**
 * Finishes a restore killed between its last two steps: the replaced database already moved aside
 * (`pgdata.before-restore-*`), the checked backup (`pgdata.restored-<hex>`) not yet in its place, so DATA_DIR has
 * no `pgdata`. Moves the backup into place and returns its former path; undefined when there is nothing to finish
 * (a database in place, or no checked backup beside it). Only while the caller holds the DATA_DIR lock.
 */
export function finishInterruptedRestore(dataPath: string): string | undefined {
  if (existsSync(dataPath)) return undefined;
  const ready = restoreDirectories(dataPath, 'restored')
    .map((p) => ({ p, at: statSync(p).mtimeMs }))
    .sort((a, b) => b.at - a.at)[0]?.p;
  if (ready === undefined) return undefined;
  renameSync(ready, dataPath);
  return ready;
}

/** Whether a checked backup waits to be moved into place beside a missing `dataPath` (finishInterruptedRestore). */
export function hasInterruptedRestore(dataPath: string): boolean {
  return !existsSync(dataPath) && restoreDirectories(dataPath, 'restored').length > 0;
}

/**
 * Removes what restores that never finished left beside `dataPath` (DATA_DIR/pgdata): the staging directories
 * `pgdata.restoring-<hex>` (up to a partial copy of the database) of a `sat restore` killed mid-way, and, once a
 * database is in place, a checked backup `pgdata.restored-<hex>` of one killed before it replaced anything (call
 * finishInterruptedRestore first). Only while the caller holds the DATA_DIR lock (lock.ts): then no restore runs, so
 * every such directory is stale. Nothing else is touched (`pgdata.before-restore-*` is the operator's to delete).
 * Returns the paths removed.
 */
export function removeStaleRestores(dataPath: string): string[] {
  const stale = [...restoreDirectories(dataPath, 'restoring'), ...(existsSync(dataPath) ? restoreDirectories(dataPath, 'restored') : [])];
  for (const dir of stale) rmSync(dir, { recursive: true, force: true });
  return stale;
}

/**
 * Replaces the embedded database in `dataPath` (DATA_DIR/pgdata) by the backup in `file`. The caller holds the
 * DATA_DIR lock (no server running). It first finishes a restore killed before its last step
 * (finishInterruptedRestore, returned as `finished`) and removes the staging directories of restores that never
 * finished (removeStaleRestores, returned as `removed`). The backup is first opened in a new directory beside it, so a bad
 * file changes nothing; the replaced data directory is kept beside it as `pgdata.before-restore-<time>`. Everything
 * restored is owner-only (the archive's files come out 0666: makeOwnerOnly, as at server start; SPEC Part 2).
 * `checkKeys` sees the backup's signing keys before anything is replaced and may refuse it (RestoreRefusedError:
 * keys the configured key-encryption key cannot open, which the server would refuse to start with). A backup of a
 * database a newer version migrated is refused the same way (this version could not start on it).
 */
export async function restoreEmbedded(
  dataPath: string,
  file: string,
  now = new Date(),
  checkKeys?: (keys: BackupSigningKey[]) => void,
): Promise<{ previous: string | undefined; removed: string[]; finished: string | undefined }> {
  // An earlier restore killed just before its last step is finished first, so its data is kept aside like any.
  const finished = finishInterruptedRestore(dataPath);
  const removed = removeStaleRestores(dataPath);
  const data = readFileSync(file);
  const staging = `${dataPath}.restoring-${randomBytes(4).toString('hex')}`;
  mkdirSync(staging, { mode: 0o700 }); // owner-only, like DATA_DIR
  try {
    const tar = await tarOf(data);
    const pglite = newEmbeddedEngine(staging, { loadDataDir: new Blob([tar], { type: 'application/x-tar' }) });
    await pglite.waitReady;
    let keys: BackupSigningKey[];
    try {
      // A database of ours, that opens, and that this version can run (not migrated by a newer version).
      const applied = (await pglite.query<{ name: string }>('select name from knex_migrations order by id')).rows.map((r) => r.name);
      const newer = unknownMigrations(applied);
      if (newer.length > 0) {
        throw new RestoreRefusedError(
          `${path.basename(file)} was made by a newer version of sat (migrations ${newer.join(', ')}): this version cannot run it. ` +
            'Restore it with that version. Nothing was changed.',
        );
      }
      keys = (await pglite.query<BackupSigningKey>('select kid, kek_id, sealed_jwk is not null as sealed from signing_keys')).rows;
    } finally {
      await pglite.close();
    }
    makeOwnerOnly(staging, false);
    checkKeys?.(keys); // before anything is replaced
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    // "Nothing was changed" by this restore; an earlier one it finished first did change the database: said so.
    const before = finished === undefined ? '' : ` (Before this, an interrupted earlier restore was finished: its checked backup ${finished} is the database now.)`;
    if (err instanceof RestoreRefusedError) throw new RestoreRefusedError(`${err.message}${before}`);
    throw new Error(`${path.basename(file)} is not a backup of this server's embedded database (${(err as Error).message})${before}`);
  }
  // Checked: named as such first, so that a restore killed between the two renames below (no `pgdata` at all) is
  // finished by the next start or restore (finishInterruptedRestore) instead of taken for a partial copy.
  const ready = staging.replace(/\.restoring-([0-9a-f]{8})$/, '.restored-$1');
  renameSync(staging, ready);
  let previous: string | undefined;
  if (existsSync(dataPath)) {
    previous = `${dataPath}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}`;
    renameSync(dataPath, previous);
  }
  renameSync(ready, dataPath);
  return { previous, removed, finished };
}
