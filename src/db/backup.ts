// Backups of the embedded database (`sat backup FILE`, `sat restore FILE`). PostgreSQL has pg_dump for this.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { makeOwnerOnly } from './files.js';

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

/** Writes `data` to `file` owner-only (0600), through a temporary file renamed into place: never half a backup. */
function writePrivateFile(file: string, data: Buffer): void {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * A consistent copy of the running embedded database, as a gzipped tar of its data directory, written to `file`
 * (an absolute path) with mode 0600. PGlite runs one statement at a time: the dump happens between statements,
 * after a checkpoint; a transaction still open at that moment is absent from the copy (as after a crash).
 */
export async function backupEmbedded(knex: Knex, file: string): Promise<{ file: string; bytes: number }> {
  const pglite = pgliteOf(knex);
  await pglite.query('checkpoint');
  const blob = await pglite.dumpDataDir('gzip');
  const data = Buffer.from(await blob.arrayBuffer());
  writePrivateFile(file, data);
  return { file, bytes: data.length };
}

/**
 * Replaces the embedded database in `dataPath` (DATA_DIR/pgdata) by the backup in `file`. The caller holds the
 * DATA_DIR lock (no server running). The backup is first opened in a new directory beside it, so a bad file
 * changes nothing; the replaced data directory is kept beside it as `pgdata.before-restore-<time>`. Everything
 * restored is owner-only (the archive's files come out 0666: makeOwnerOnly, as at server start; SPEC Part 2).
 */
export async function restoreEmbedded(dataPath: string, file: string, now = new Date()): Promise<{ previous: string | undefined }> {
  const data = readFileSync(file);
  const staging = `${dataPath}.restoring-${randomBytes(4).toString('hex')}`;
  mkdirSync(staging, { mode: 0o700 }); // owner-only, like DATA_DIR
  const { PGlite } = await import('@electric-sql/pglite');
  try {
    const pglite = await PGlite.create(staging, { loadDataDir: new Blob([data]) });
    try {
      await pglite.query('select count(*) from knex_migrations'); // a database of ours, and it opens
    } finally {
      await pglite.close();
    }
    makeOwnerOnly(staging, false);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(`${path.basename(file)} is not a backup of this server's embedded database (${(err as Error).message})`);
  }
  let previous: string | undefined;
  if (existsSync(dataPath)) {
    previous = `${dataPath}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}`;
    renameSync(dataPath, previous);
  }
  renameSync(staging, dataPath);
  return { previous };
}
