import type { Knex } from 'knex';
import { batchedLookup } from '../../../src/db/index.js';

interface Row {
  id: string;
  n: number;
}

// The query is a plain function of (database, keys): here one that records its calls and answers from a table.
function recorder(table: Row[]) {
  const calls: Array<{ db: unknown; keys: string[] }> = [];
  const query = async (db: Knex, keys: string[]) => {
    calls.push({ db, keys: [...keys] });
    return table.filter((r) => keys.includes(r.id));
  };
  return { calls, query };
}

const dbA = {} as Knex;
const dbB = {} as Knex;

describe('batchedLookup', () => {
  it('answers lookups that arrive together with one query over the distinct keys', async () => {
    const { calls, query } = recorder([
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
    ]);
    const find = batchedLookup(query, (r) => r.id);
    const results = await Promise.all([find(dbA, 'a'), find(dbA, 'b'), find(dbA, 'a'), find(dbA, 'zzz')]);
    expect(results).toEqual([{ id: 'a', n: 1 }, { id: 'b', n: 2 }, { id: 'a', n: 1 }, undefined]);
    expect(calls).toEqual([{ db: dbA, keys: ['a', 'b', 'zzz'] }]);
  });

  it('queries again for a later lookup (no cache) and keeps databases apart', async () => {
    const { calls, query } = recorder([{ id: 'a', n: 1 }]);
    const find = batchedLookup(query, (r) => r.id);
    await Promise.all([find(dbA, 'a'), find(dbB, 'a')]);
    await find(dbA, 'a');
    expect(calls.map((c) => [c.db === dbA ? 'A' : 'B', c.keys])).toEqual([
      ['A', ['a']],
      ['B', ['a']],
      ['A', ['a']],
    ]);
  });

  it('starts a new query past maxBatch lookups', async () => {
    const { calls, query } = recorder([]);
    const find = batchedLookup(query, (r) => r.id, 2);
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((k) => find(dbA, k)));
    expect(calls.map((c) => c.keys)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  });

  it('rejects every lookup of a batch whose query failed, and recovers', async () => {
    let fail = true;
    const find = batchedLookup<string, Row>(
      async (_db, keys) => {
        if (fail) throw new Error('connection lost');
        return keys.map((id) => ({ id, n: 0 }));
      },
      (r) => r.id,
    );
    const failed = await Promise.allSettled([find(dbA, 'a'), find(dbA, 'b')]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    await expect(find(dbA, 'a')).resolves.toEqual({ id: 'a', n: 0 });
  });
});
