/**
 * The number of rows an update or delete touched. knex's pg client resolves these to a number, but knex-pglite
 * (the embedded engine) resolves them to the raw result `{ affectedRows, rowCount, ... }`: read both.
 */
export function affectedRows(result: unknown): number {
  if (typeof result === 'number') return result;
  const r = result as { affectedRows?: unknown; rowCount?: unknown } | null | undefined;
  const n = Number(r?.affectedRows ?? r?.rowCount ?? 0);
  return Number.isFinite(n) ? n : 0;
}
