// Query plans at scale: runs domain code inside a transaction that is rolled back, captures the SQL it sends
// (knex 'query' events), and EXPLAIN ANALYZEs each statement in that same transaction. No SQL is copied here, so
// the plans are those of the code as it is.
import type { Knex } from 'knex';

export interface PlannedQuery {
  label: string;
  sql: string;
  /** Node types with their index or relation, outermost first, e.g. "Limit > Index Scan tokens_client_id_uq". */
  plan: string;
  seq_scans: string[];
  execution_ms: number;
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function walk(node: PlanNode, out: string[], seq: string[]): void {
  const what = node['Index Name'] ?? node['Relation Name'];
  out.push(what ? `${node['Node Type']} ${what}` : node['Node Type']);
  if (node['Node Type'] === 'Seq Scan' && node['Relation Name']) seq.push(node['Relation Name']);
  for (const child of node.Plans ?? []) walk(child, out, seq);
}

class Rollback extends Error {}

/** `$1…$n` (as knex reports them) back to knex `?` bindings, so the statement can be re-run through knex.raw. */
function toKnexRaw(sql: string, bindings: readonly unknown[]): [string, unknown[]] {
  const ordered: unknown[] = [];
  const text = sql.replace(/\?/g, '\\?').replace(/\$(\d+)/g, (_m, n: string) => {
    ordered.push(bindings[Number(n) - 1]);
    return '?';
  });
  return [text, ordered];
}

/**
 * Runs `fn(trx)` in a transaction, then EXPLAIN ANALYZEs every statement it issued (skipping BEGIN/COMMIT and
 * savepoints), and rolls everything back.
 */
export async function explainDomainCall(
  knex: Knex,
  label: string,
  fn: (trx: Knex.Transaction) => Promise<unknown>,
): Promise<PlannedQuery[]> {
  const captured: { sql: string; bindings: readonly unknown[] }[] = [];
  const listener = (q: { sql: string; bindings?: readonly unknown[] }) => {
    if (!/^\s*(begin|commit|rollback|savepoint|release)/i.test(q.sql)) captured.push({ sql: q.sql, bindings: q.bindings ?? [] });
  };
  const planned: PlannedQuery[] = [];
  try {
    await knex.transaction(async (trx) => {
      knex.on('query', listener);
      try {
        await fn(trx);
      } finally {
        knex.off('query', listener);
      }
      for (const [i, q] of captured.entries()) {
        const [text, bindings] = toKnexRaw(q.sql, q.bindings);
        // Inserts are planned, not run again (a second run would break unique keys); the rest run for real.
        const analyze = /^\s*insert/i.test(q.sql) ? '' : 'analyze, ';
        const res = (await trx.raw(`explain (${analyze}format json) ${text}`, bindings as Knex.RawBinding[])) as {
          rows: { 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] }[];
        };
        const top = res.rows[0]?.['QUERY PLAN'][0] as { Plan: PlanNode; 'Execution Time'?: number } | undefined;
        if (!top) continue;
        const nodes: string[] = [];
        const seq: string[] = [];
        walk(top.Plan, nodes, seq);
        planned.push({
          label: captured.length > 1 ? `${label} #${i + 1}` : label,
          sql: q.sql.replace(/\s+/g, ' ').slice(0, 400),
          plan: nodes.join(' > '),
          seq_scans: seq,
          execution_ms: top['Execution Time'] === undefined ? NaN : Math.round(top['Execution Time'] * 1000) / 1000,
        });
      }
      throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) throw err;
  }
  return planned;
}

/** Sequential and index scans of a table so far (PostgreSQL statistics; flushed by backends within ~10 s). */
export async function scanCounters(knex: Knex, table: string): Promise<{ seq_scan: number; idx_scan: number; seq_tup_read: number }> {
  await knex.raw('select pg_stat_clear_snapshot()');
  const res = (await knex.raw(
    `select coalesce(seq_scan, 0)::int as seq_scan, coalesce(idx_scan, 0)::int as idx_scan,
            coalesce(seq_tup_read, 0)::bigint as seq_tup_read
       from pg_stat_user_tables where relname = ?`,
    [table],
  )) as { rows: { seq_scan: number; idx_scan: number; seq_tup_read: string | number }[] };
  const r = res.rows[0] ?? { seq_scan: 0, idx_scan: 0, seq_tup_read: 0 };
  return { seq_scan: Number(r.seq_scan), idx_scan: Number(r.idx_scan), seq_tup_read: Number(r.seq_tup_read) };
}

/**
 * EXPLAIN ANALYZE of a statement the server runs outside knex (the client lookup, test/bench uses the exported SQL
 * text), on a pooled connection of `knex` with positional ($1) parameters.
 */
export async function explainStatement(knex: Knex, label: string, sql: string, values: unknown[]): Promise<PlannedQuery> {
  const client = (knex as unknown as {
    client: {
      acquireConnection(): Promise<{ query(text: string, values: unknown[]): Promise<{ rows: { 'QUERY PLAN': unknown }[] }> }>;
      releaseConnection(c: unknown): Promise<unknown>;
    };
  }).client;
  const connection = await client.acquireConnection();
  try {
    const res = await connection.query(`explain (analyze, format json) ${sql}`, values);
    const cell = res.rows[0]?.['QUERY PLAN'];
    const parsed = (typeof cell === 'string' ? JSON.parse(cell) : cell) as [{ Plan: PlanNode; 'Execution Time': number }];
    const nodes: string[] = [];
    const seq: string[] = [];
    walk(parsed[0].Plan, nodes, seq);
    return {
      label,
      sql: sql.replace(/\s+/g, ' ').slice(0, 400),
      plan: nodes.join(' > '),
      seq_scans: seq,
      execution_ms: Math.round(parsed[0]['Execution Time'] * 1000) / 1000,
    };
  } finally {
    await client.releaseConnection(connection);
  }
}
