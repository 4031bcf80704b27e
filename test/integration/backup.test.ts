// `sat backup FILE` / `sat restore FILE` for the embedded database: a consistent copy while the server runs.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { runSat, runSatInProcess, startSatServe, killLeftoverServersAfterEach } from '../support/cli.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { freePort, startServer } from '../support/server.js';
import { readableEntries } from '../support/files.js';

killLeftoverServersAfterEach();

/** A refused restore: exit 1, one clean line on stderr (no stack, no uncaught exception). */
function expectCleanRefusal(r: { code: number | null; stderr: string }, name: string): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('oidc-provider WARNING'));
  expect(lines).toEqual([expect.stringMatching(new RegExp(`^sat: ${name} is not a backup of this server's embedded database \\(.+\\)$`))]);
}

/**
 * `sat backup` (in this process) to paths it cannot write: exit 1 with the reason on stderr (README "Exit codes"), nothing
 * written, and no "command failed" / stack in the log of a running server.
 */
async function expectBadTargetsRefused(env: Record<string, string>, dir: string): Promise<void> {
  const existing = path.join(dir, 'existing.tar.gz');
  writeFileSync(existing, 'keep me', { mode: 0o600 });
  const cases: Array<[string, RegExp]> = [
    ['/nonexistent/dir/x', /^sat: cannot write \/nonexistent\/dir\/x: no such directory \/nonexistent\/dir\n$/],
    [path.join(existing, 'x'), /^sat: cannot write .*existing\.tar\.gz\/x: .*existing\.tar\.gz is not a directory\n$/],
    [dir, /^sat: cannot write .*: it is a directory\n$/],
  ];
  for (const [target, message] of cases) {
    const r = await runSatInProcess(['backup', target], env);
    expect({ target, code: r.code }).toEqual({ target, code: 1 });
    expect(r.stderr.replace(/^oidc-provider WARNING.*\n/gm, '')).toMatch(message);
  }
  expect(readFileSync(existing, 'utf8')).toBe('keep me');
  expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  // An existing file is replaced by a whole backup (a nightly job reusing one name keeps working), owner-only.
  const again = await runSatInProcess(['backup', existing], env);
  expect(again.code).toBe(0);
  expect(readFileSync(existing).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip
  expect(statSync(existing).mode & 0o777).toBe(0o600);
  expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
}

/**
 * The round trip runs some twenty commands, each opening the database or socket: `sat serve`, the backup taken
 * while it runs and the restore (with the modes it leaves) as real processes, the refusals in this process
 * (runSatInProcess), and the restored database served in this process (startServer).
 */
const SPAWNING_TEST_MS = 180_000;

const ADMIN = { ADMIN_EMAIL: 'backup-admin@example.com', ADMIN_PASSWORD: 'backup-admin-password' };

describeEmbedded('sat backup and sat restore (embedded database)', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('embedded');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('round-trips with the server running: the backup has what was there when it was taken', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { ...db.env, ...ADMIN, PORT: String(port), HOST: '127.0.0.1', ISSUER: url };
    const file = path.join(db.dataDir, 'backup.tar.gz'); // removed with the test's directory

    const server = await startSatServe(env);
    let before: string;
    let after: string;
    let busyId: string;
    const renames: Array<{ n: number; sentAt: number; doneAt: number }> = [];
    let backupStart = 0;
    let backupEnd = 0;
    try {
      const session = await signIn({ url }, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
      const a = await call({ url }, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'in-the-backup' }) });
      expect(a.status).toBe(201);
      before = a.body.id;

      // Writes go on while the backup is taken: the copy must still be a database that opens, with every write
      // acknowledged before the backup began and none sent after it ended.
      const busy = await call({ url }, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'renamed-0' }) });
      expect(busy.status).toBe(201);
      busyId = busy.body.id;
      let writing = true;
      const writer = (async () => {
        for (let n = 1; writing; n++) {
          const sentAt = performance.now();
          const res = await call({ url }, 'PATCH', `/tokens/${busyId}`, { token: session.token, json: { name: `renamed-${n}` } });
          expect(res.status).toBe(200);
          renames.push({ n, sentAt, doneAt: performance.now() });
        }
      })();
      backupStart = performance.now();
      const backup = await runSat(['backup', file], env);
      backupEnd = performance.now();
      writing = false;
      await writer;
      expect(renames.filter((r) => r.doneAt > backupStart && r.sentAt < backupEnd).length).toBeGreaterThan(0);
      expect(backup.stderr).not.toMatch(/sat: /);
      expect(backup.code).toBe(0);
      expect(backup.stdout).toMatch(/^Backed up the embedded database to .* \(\d+ bytes\)/);
      expect(statSync(file).mode & 0o777).toBe(0o600);

      const b = await call({ url }, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'after-the-backup' }) });
      expect(b.status).toBe(201);
      after = b.body.id;

      const refused = await runSatInProcess(['restore', file], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('stop it, then restore');

      // Through the running server's control socket: the reason, and nothing in the server's log.
      await expectBadTargetsRefused(env, db.dataDir);
      expect(server.output()).not.toMatch(/command failed|"stack"|    at /);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    // And with no server running (sat opens the database itself).
    await expectBadTargetsRefused(env, db.dataDir);


    // A file that is not a backup changes nothing, and is refused with one clean line: text, random bytes (once
    // crashed with an uncaught Z_DATA_ERROR after the message), gzipped random bytes, half a backup.
    const junk: Array<[string, Buffer]> = [
      ['junk.tar.gz', Buffer.from('not a backup')],
      ['random.tar', randomBytes(10_000)],
      ['random-gzip.tar.gz', gzipSync(randomBytes(10_000))],
      ['half.tar.gz', readFileSync(file).subarray(0, Math.floor(statSync(file).size / 2))],
    ];
    for (const [name, data] of junk) {
      writeFileSync(path.join(db.dataDir, name), data, { mode: 0o600 });
      expectCleanRefusal(await runSatInProcess(['restore', path.join(db.dataDir, name)], env), name);
    }
    expect(readdirSync(db.dataDir).filter((n) => n.includes('restoring') || n.includes('before-restore'))).toEqual([]);

    chmodSync(db.dataDir, 0o777); // a DATA_DIR made beforehand by someone else's rules (a bind mount, mkdir -m 777)
    const restored = await runSat(['restore', file], env);
    expect(restored.stderr).not.toMatch(/sat: /);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(/kept in .*pgdata\.before-restore-/);
    // SPEC Part 2: owner-only at once, not only after the next server start (the backup's files were 0666), and
    // DATA_DIR itself whatever it was before.
    expect(readableEntries(db.dataDir)).toEqual([]);
    expect(statSync(db.dataDir).mode & 0o777).toBe(0o700);

    // The restored database, served (in this process: `sat serve` itself ran above, as a real process).
    const again = await startServer(db, ADMIN);
    try {
      const session = await signIn(again, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
      expect((await call(again, 'GET', `/tokens/${before}`, { token: session.token })).body.name).toBe('in-the-backup');
      expect((await call(again, 'GET', `/tokens/${after}`, { token: session.token })).status).toBe(404);
      // The renamed token has a name it had while the backup ran: not older than the last rename acknowledged
      // before the backup began, not newer than the last one sent before it ended.
      const name = (await call(again, 'GET', `/tokens/${busyId}`, { token: session.token })).body.name as string;
      const n = Number(/^renamed-(\d+)$/.exec(name)?.[1]);
      const floor = Math.max(0, ...renames.filter((r) => r.doneAt < backupStart).map((r) => r.n));
      const ceiling = Math.max(0, ...renames.filter((r) => r.sentAt < backupEnd).map((r) => r.n));
      expect(name).toMatch(/^renamed-\d+$/);
      expect(n).toBeGreaterThanOrEqual(floor);
      expect(n).toBeLessThanOrEqual(ceiling);
    } finally {
      await again.close();
    }
  }, SPAWNING_TEST_MS);

  it("refuses a backup whose signing keys the configured key-encryption key cannot open, changing nothing, unless told (a lost key)", async () => {
    const other = await createTestDb('embedded');
    try {
      const first = await startServer(other, ADMIN); // makes DATA_DIR/key-encryption-key and the first signing key
      const kid = first.oauth.keySet.signingKid;
      await first.close();
      const file = path.join(other.dataDir, 'before-rewrap.tar.gz');
      expect((await runSatInProcess(['backup', file], other.env)).code).toBe(0);
      // The key-encryption key changes after the backup (sat keys rewrap replaces the generated key file).
      const newKeyFile = path.join(other.dataDir, 'new-kek');
      writeFileSync(newKeyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
      expect((await runSatInProcess(['keys', 'rewrap', '--new-key-file', newKeyFile], other.env)).code).toBe(0);

      const refused = await runSatInProcess(['restore', file], other.env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`^sat: the backup's signing keys \\(${kid}\\) are sealed under another key-encryption key .*--accept-unreadable-keys.*Nothing was changed\\.\n$`));
      expect(readdirSync(other.dataDir).filter((n) => n.includes('restoring') || n.includes('before-restore'))).toEqual([]);
      const still = await startServer(other, ADMIN); // the database as it was: it starts and signs
      await still.close();

      // The key that sealed them is lost: restore anyway, then the documented recovery.
      const forced = await runSatInProcess(['restore', file, '--accept-unreadable-keys'], other.env);
      expect({ code: forced.code, stderr: forced.stderr }).toEqual({ code: 0, stderr: expect.not.stringMatching(/sat: /) });
      expect((await runSatInProcess(['keys', 'rotate', '--now', '--drop-unreadable'], other.env)).code).toBe(0);
      const recovered = await startServer(other, ADMIN);
      expect(recovered.oauth.keySet.signingKid).not.toBe(kid);
      await recovered.close();
    } finally {
      await other.drop();
    }
  }, SPAWNING_TEST_MS);

  it('removes what a killed `sat restore` left (pgdata.restoring-*) at the next restore or start, never while a server holds DATA_DIR', async () => {
    const other = await createTestDb('embedded');
    try {
      const file = path.join(other.dataDir, 'backup.tar.gz');
      expect((await runSatInProcess(['backup', file], other.env)).code).toBe(0);
      // A restore killed while it unpacked: its staging directory, with part of a database in it.
      const leftOver = () => {
        const stale = path.join(other.dataDir, `pgdata.restoring-${randomBytes(4).toString('hex')}`);
        mkdirSync(path.join(stale, 'base', '1'), { recursive: true, mode: 0o700 });
        writeFileSync(path.join(stale, 'base', '1', '1259'), randomBytes(8192), { mode: 0o600 });
        return stale;
      };
      const unrelated = path.join(other.dataDir, 'pgdata.restoring-notes'); // not a name restore makes: kept
      mkdirSync(unrelated);
      const names = () => readdirSync(other.dataDir).filter((n) => n.startsWith('pgdata.')).sort();

      // With a server holding DATA_DIR, a restore is refused and removes nothing.
      const server = await startServer(other, ADMIN);
      const stale1 = leftOver();
      try {
        const refused = await runSatInProcess(['restore', file], other.env);
        expect(refused.code).toBe(1);
        expect(existsSync(stale1)).toBe(true);
      } finally {
        await server.close();
      }

      // The next restore removes it first, and says so.
      const restored = await runSatInProcess(['restore', file, '--json'], other.env);
      expect({ code: restored.code, stderr: restored.code === 0 ? '' : restored.stderr }).toEqual({ code: 0, stderr: '' });
      const out = JSON.parse(restored.stdout) as { previous: string; removed_interrupted: string[] };
      expect(out.removed_interrupted).toEqual([stale1]);
      expect(names()).toEqual([path.basename(out.previous), 'pgdata.restoring-notes']);

      // So does the next start (or any command that opens the database), and logs it.
      const stale2 = leftOver();
      const started = await startServer(other, ADMIN);
      try {
        expect(existsSync(stale2)).toBe(false);
        expect(started.logLines.some((l) => l.includes('removed what an interrupted sat restore left') && l.includes(stale2))).toBe(true);
      } finally {
        await started.close();
      }
      expect(names()).toEqual([path.basename(out.previous), 'pgdata.restoring-notes']);

      // A restore killed between moving the database aside and moving the checked backup in: no pgdata at all. The
      // next command, or start, finishes it (the backup it had checked becomes the database), never starts empty.
      const database = path.join(other.dataDir, 'pgdata');
      const gap = () => {
        const ready = path.join(other.dataDir, `pgdata.restored-${randomBytes(4).toString('hex')}`);
        renameSync(database, ready);
        return ready;
      };
      gap();
      const keys = await runSatInProcess(['keys', 'list', '--json'], other.env);
      expect({ code: keys.code, stderr: keys.code === 0 ? '' : keys.stderr }).toEqual({ code: 0, stderr: '' });
      expect(JSON.parse(keys.stdout)).not.toEqual([]);
      expect([existsSync(database), names()]).toEqual([true, [path.basename(out.previous), 'pgdata.restoring-notes']]);
      const ready = gap();
      const resumed = await startServer(other, ADMIN);
      try {
        expect(resumed.logLines.some((l) => l.includes('finished an interrupted sat restore') && l.includes(ready))).toBe(true);
        expect(resumed.logLines.some((l) => l.includes('first administrator created'))).toBe(false); // the backup's data
      } finally {
        await resumed.close();
      }
      expect([existsSync(database), names()]).toEqual([true, [path.basename(out.previous), 'pgdata.restoring-notes']]);
      // So does the next restore, and says so: in its refusal (this restore changed nothing, the finished one did)…
      const finishedFirst = gap();
      const junk = path.join(other.dataDir, 'junk.tar.gz');
      writeFileSync(junk, gzipSync(Buffer.from('not a database')));
      const refused = await runSatInProcess(['restore', junk], other.env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`Before this, an interrupted earlier restore was finished: its checked backup ${finishedFirst} is the database now.`);
      expect(existsSync(database)).toBe(true);
      // …and in its answer.
      const finishedAgain = gap();
      const done = await runSatInProcess(['restore', file, '--json'], other.env);
      expect({ code: done.code, stderr: done.code === 0 ? '' : done.stderr }).toEqual({ code: 0, stderr: '' });
      expect(JSON.parse(done.stdout)).toMatchObject({ finished_interrupted: finishedAgain, previous: expect.stringContaining('pgdata.before-restore-') });
    } finally {
      await other.drop();
    }
  }, SPAWNING_TEST_MS);

  it('refuses a backup made by a newer version (a migration this one does not know), changing nothing', async () => {
    const newer = await createTestDb('embedded');
    const target = await createTestDb('embedded');
    try {
      const s = await startServer(newer, ADMIN);
      await s.deps.db.knex('knex_migrations').insert({ name: '9990_from_the_future', batch: 99, migration_time: new Date() });
      const file = path.join(newer.dataDir, 'newer.tar.gz');
      expect((await runSatInProcess(['backup', file], newer.env)).code).toBe(0); // taken by that (running) server
      await s.close();
      const refused = await runSatInProcess(['restore', file], target.env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^sat: newer\.tar\.gz was made by a newer version of sat \(migrations 9990_from_the_future\).*Nothing was changed\.\n$/);
      expect(readdirSync(target.dataDir).filter((n) => n.includes('restoring') || n.includes('before-restore'))).toEqual([]);
      const still = await startServer(target, ADMIN); // its own database, as it was
      await still.close();
    } finally {
      await newer.drop();
      await target.drop();
    }
  }, SPAWNING_TEST_MS);

  it('refuses a DATA_DIR with no database, and a bad target, without creating a database', async () => {
    // A mistyped DATA_DIR used to get a new database (initdb, migrations) that was then backed up as if all was well,
    // or answered from it ("No key signs yet", exit 0). Only the commands of a first install may create it.
    const empty = mkdtempSync(path.join(os.tmpdir(), 'sat-backup-empty-'));
    try {
      const env = { ...db.env, DATA_DIR: empty };
      const r = await runSatInProcess(['backup', path.join(empty, 'x.tar.gz')], env);
      expect(r.code).toBe(1);
      expect(r.stderr.replace(/^oidc-provider WARNING.*\n/gm, '')).toBe(`sat: no embedded database in ${empty}: nothing to back up (is DATA_DIR right?)\n`);
      for (const argv of [['keys', 'list'], ['token', 'list', '--org', 'acme'], ['admin', 'list', '--org', 'acme'], ['resource-server', 'list']]) {
        const read = await runSatInProcess(argv, env);
        expect({ argv, code: read.code, stderr: read.stderr.replace(/^oidc-provider WARNING.*\n/gm, '') }).toEqual({
          argv,
          code: 1,
          stderr: `sat: no embedded database in ${empty}: nothing to read or change (is DATA_DIR right?)\n`,
        });
      }
      expect(readdirSync(empty)).toEqual([]);
      // With a database there but no server, a bad target is refused before the database is opened (no lock taken).
      const bad = await runSatInProcess(['backup', '/nonexistent/dir/x'], db.env);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('cannot write /nonexistent/dir/x: no such directory');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('points to pg_dump on PostgreSQL', async () => {
    if (!process.env.TEST_DATABASE_URL) {
      process.stdout.write('backup on PostgreSQL: skipped, TEST_DATABASE_URL is not set\n');
      return;
    }
    const pgDb = await createTestDb('postgres');
    try {
      const r = await runSatInProcess(['backup', path.join(pgDb.dataDir, 'x.tar.gz')], pgDb.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('pg_dump');
    } finally {
      await pgDb.drop();
    }
  });
});
