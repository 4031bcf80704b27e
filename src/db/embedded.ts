// The embedded engine (PGlite, PostgreSQL compiled to WebAssembly, in this process): how it is opened.
import { createRequire } from 'node:module';
import type { PGlite as PGliteClass, PGliteOptions } from '@electric-sql/pglite';

/**
 * PostgreSQL's buffer pool for the embedded engine: 16 MB (8 kB pages) instead of PostgreSQL's 128 MB default.
 * The engine zeroes the whole pool at every start, in WebAssembly memory that stays resident: 128 MB cost ~0.35 s
 * of CPU and ~120 MB of RSS at each server start and each `sat` command, for a database that is a few MB (tokens,
 * keys, administrators; the audit log grows by rows of ~0.3 kB). Pages that do not fit are read through the
 * operating system's page cache. Measured in docs/performance.md ("Embedded database").
 */
export const EMBEDDED_SHARED_BUFFERS = '16MB';

/**
 * PGlite's CommonJS build, the one knex-pglite loads: importing the ESM build as well would load and keep a second
 * copy of the engine's JavaScript (~0.1 s per process).
 */
function pgliteClass(): typeof PGliteClass {
  return (createRequire(import.meta.url)('@electric-sql/pglite') as { PGlite: typeof PGliteClass }).PGlite;
}

/**
 * A PGlite on the data directory `dataPath` (DATA_DIR/pgdata; created when missing) with this server's start
 * parameters: PGlite's own (single-user mode, no parallel workers, …) and the buffer pool above. It opens in the
 * background; its first query waits for it and fails as the opening does (a corrupt or foreign directory).
 * `options`: more PGlite options (`loadDataDir` for a restore).
 */
export function newEmbeddedEngine(dataPath: string, options: Omit<PGliteOptions, 'startParams'> = {}): PGliteClass {
  const PGlite = pgliteClass();
  return new PGlite(dataPath, { ...options, startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${EMBEDDED_SHARED_BUFFERS}`] });
}
