// Request coalescing for the hottest reads (the token endpoint's client lookup, introspection's rows): one statement
// for the calls that arrive together, on PostgreSQL as a named prepared statement. It needs a pooled connection of
// knex's client (not the query builder), which is the database layer's business: the domain only describes its query.
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

interface PooledConnection {
  query(q: string | { name: string; text: string; values: unknown[] }, values?: unknown[]): Promise<{ rows: unknown[] }>;
}
interface KnexClientInternals {
  config: { client?: unknown };
  acquireConnection(): Promise<PooledConnection>;
  releaseConnection(connection: PooledConnection): Promise<unknown>;
}
interface Pending<Q, A> {
  query: Q;
  resolve(answer: A): void;
  reject(err: unknown): void;
}

/**
 * A read that requests running at the same time share: every call made in the same event-loop turn, or while a
 * pooled connection is being found, goes into one statement (at most `max` calls), run outside knex on that
 * connection: on PostgreSQL as the named prepared statement `name` (parsed and planned once per connection), on
 * the embedded engine as a parameterised query. Each call is still answered by a statement that started after it
 * was made, so a write committed before the call is seen: this batches, it never caches.
 */
export function sharedRead<Q, R, I, A>(spec: {
  name: string;
  text: string;
  max: number;
  values(queries: Q[]): unknown[];
  /** Indexes the statement's rows once per batch. */
  index(rows: R[]): I;
  answer(index: I, query: Q): A;
}): (db: Db, query: Q) => Promise<A> {
  const waiting = new WeakMap<KnexClientInternals, Pending<Q, A>[]>();
  const run = async (client: KnexClientInternals, batch: Pending<Q, A>[]): Promise<void> => {
    try {
      const connection = await client.acquireConnection();
      // Everything that arrived while a connection was found goes into this one statement.
      if (waiting.get(client) === batch) waiting.delete(client);
      try {
        const values = spec.values(batch.map((p) => p.query));
        const { rows } =
          client.config.client === 'pg'
            ? await connection.query({ name: spec.name, text: spec.text, values })
            : await connection.query(spec.text, values);
        const index = spec.index(rows as R[]);
        for (const p of batch) p.resolve(spec.answer(index, p.query));
      } finally {
        await client.releaseConnection(connection);
      }
    } catch (err) {
      if (waiting.get(client) === batch) waiting.delete(client);
      for (const p of batch) p.reject(err);
    }
  };
  return (db, query) => {
    const client = (db as unknown as { client: KnexClientInternals }).client;
    let batch = waiting.get(client);
    if (batch === undefined || batch.length >= spec.max) {
      const next: Pending<Q, A>[] = [];
      waiting.set(client, next);
      setImmediate(() => void run(client, next));
      batch = next;
    }
    const pending = batch;
    return new Promise<A>((resolve, reject) => pending.push({ query, resolve, reject }));
  };
}
