// The hashing threads (SPEC Part 2 "Admin sign-in cannot starve token issuance": bounded concurrency): started on
// demand, and let go after a server's shutdown without cutting a hash in flight.
import { PasswordPool } from '../../../src/accounts/password-pool.js';

const OPTIONS = { N: 2 ** 10, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const hash = (pool: PasswordPool, password = 'p') => pool.scrypt(password, Buffer.alloc(16), 32, OPTIONS);

describe('PasswordPool', () => {
  let pool: PasswordPool;
  afterEach(async () => {
    await pool.close();
  });

  it('starts threads on demand, up to `threads`', async () => {
    pool = new PasswordPool({ threads: 2, maxQueue: 4 });
    expect(pool.liveThreads()).toBe(0);
    await hash(pool);
    expect(pool.liveThreads()).toBe(1); // one hash at a time needed one thread
    await Promise.all([hash(pool), hash(pool), hash(pool)]);
    expect(pool.liveThreads()).toBe(2);
  });

  it('release(): idle threads stop at once, a busy one after its job and the queue; no hash is cut; the next hash starts one again', async () => {
    pool = new PasswordPool({ threads: 1, maxQueue: 4 });
    await hash(pool);
    expect(pool.liveThreads()).toBe(1);
    pool.release();
    expect(pool.liveThreads()).toBe(0);

    const inFlight = [hash(pool, 'a'), hash(pool, 'b'), hash(pool, 'c')]; // one running, two queued
    pool.release();
    expect(pool.liveThreads()).toBe(1); // busy: kept until its work is done
    const keys = await Promise.all(inFlight);
    expect(new Set(keys.map((k) => k.toString('hex'))).size).toBe(3);
    expect(pool.liveThreads()).toBe(0);

    expect((await hash(pool, 'a')).equals(keys[0]!)).toBe(true);
    expect(pool.liveThreads()).toBe(1);
  });

  it('refuses past the queue once every thread is busy; a thread yet to start is room', async () => {
    pool = new PasswordPool({ threads: 1, maxQueue: 1 });
    const running = [hash(pool), hash(pool)]; // one on the thread, one waiting
    expect(pool.hasRoom()).toBe(false);
    await expect(hash(pool)).rejects.toThrow('Too many password checks');
    await Promise.all(running);
    await pool.close();

    pool = new PasswordPool({ threads: 2, maxQueue: 0 });
    const first = hash(pool); // the first thread busy, the second not started: one more is taken, not refused
    expect(pool.hasRoom()).toBe(true);
    const second = hash(pool);
    expect(pool.hasRoom()).toBe(false);
    await expect(hash(pool)).rejects.toThrow('Too many password checks');
    await Promise.all([first, second]);
    expect(pool.liveThreads()).toBe(2);
  });

  it('close(): the hashes running and waiting fail at once (none is left pending)', async () => {
    pool = new PasswordPool({ threads: 1, maxQueue: 2 });
    const slow = { ...OPTIONS, N: 2 ** 16 };
    const settled = Promise.allSettled([0, 1, 2].map(() => pool.scrypt('p', Buffer.alloc(16), 32, slow))); // one running
    await pool.close();
    expect((await settled).map((r) => (r.status === 'rejected' ? (r.reason as Error).message : r.status))).toEqual(
      Array(3).fill('password hashing stopped'),
    );
    expect(pool.liveThreads()).toBe(0);
  });
});
