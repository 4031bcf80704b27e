import type { Knex } from 'knex';
import { transactionWithRetry } from '../../../src/db/index.js';

/** A knex whose transaction() runs the work with a stand-in transaction, failing the first runs with `errors`. */
function knexFailing(errors: unknown[]): { knex: Knex; runs: () => number } {
  let runs = 0;
  const knex = {
    async transaction<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
      runs++;
      const result = await work({} as Knex.Transaction);
      const err = errors.shift();
      if (err) throw err; // rolled back after the work ran, as PostgreSQL does
      return result;
    },
  } as unknown as Knex;
  return { knex, runs: () => runs };
}

const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
const serialization = Object.assign(new Error('could not serialize access'), { code: '40001' });

describe('transactionWithRetry', () => {
  it('runs the work again after a deadlock or serialization failure, and returns its result', async () => {
    const { knex, runs } = knexFailing([deadlock, serialization]);
    await expect(transactionWithRetry(knex, async () => 'done')).resolves.toBe('done');
    expect(runs()).toBe(3);
  });

  it('gives up after `attempts` runs with the last error', async () => {
    const { knex, runs } = knexFailing([deadlock, deadlock, deadlock, deadlock]);
    await expect(transactionWithRetry(knex, async () => 'done')).rejects.toBe(deadlock);
    expect(runs()).toBe(3);
    const two = knexFailing([deadlock, deadlock]);
    await expect(transactionWithRetry(two.knex, async () => 'done', 2)).rejects.toBe(deadlock);
    expect(two.runs()).toBe(2);
  });

  it('does not retry any other error', async () => {
    const unique = Object.assign(new Error('duplicate key'), { code: '23505' });
    for (const err of [unique, new Error('plain'), { code: 40001 }]) {
      const { knex, runs } = knexFailing([err]);
      await expect(transactionWithRetry(knex, async () => 'done')).rejects.toBe(err);
      expect(runs()).toBe(1);
    }
  });
});
