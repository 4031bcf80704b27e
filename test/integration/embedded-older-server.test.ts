// Upgrading an embedded installation while its server still runs: servers from before the kernel lock on
// DATA_DIR/sat.lock (the first release among them) held DATA_DIR with a pid file only, so this version saw no lock
// and opened the database beside the running server (`sat migrate` migrated it under the old server; two PGlite
// engines on one directory corrupt it). Such a server is recognised by its control socket answering while nobody
// holds the kernel lock: serve and every command refuse. The embedded database only (PostgreSQL has no DATA_DIR lock).
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startControlServer, type ControlResponse } from '../../src/control/index.js';
import { acquireDataDirLock, type DataDirLock } from '../../src/db/index.js';
import { runSatInProcess } from '../support/cli.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { startServer } from '../support/server.js';

describeEmbedded('an older server still running on the embedded DATA_DIR', () => {
  let db: TestDb;
  let older: net.Server | undefined;
  beforeAll(async () => {
    db = await createTestDb('embedded');
    // What such a server leaves: its pid in sat.lock (no kernel lock) and its control socket listening.
    writeFileSync(path.join(db.dataDir, 'sat.lock'), `${process.pid}\n`);
    older = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => older!.listen(path.join(db.dataDir, 'sat.sock'), resolve));
  });
  afterAll(async () => {
    if (older?.listening) await new Promise((resolve) => older!.close(resolve));
    await db?.drop();
  });

  const refusal = /a server of an older version is running on .*: stop it/;

  it('sat migrate, other commands and sat restore refuse, naming it', async () => {
    const migrate = await runSatInProcess(['migrate'], db.env);
    expect(migrate.code).toBe(1);
    expect(migrate.stderr).toMatch(refusal);
    expect(migrate.stdout).toBe('');
    const list = await runSatInProcess(['keys', 'list'], db.env);
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(refusal);
    const restore = await runSatInProcess(['restore', path.join(db.dataDir, 'no-such-backup')], db.env);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(refusal);
  });

  it('serve does not start', async () => {
    await expect(startServer(db)).rejects.toThrow(refusal);
  });

  it('once it has stopped, this version starts', async () => {
    await new Promise((resolve) => older!.close(resolve));
    const server = await startServer(db);
    try {
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

// A server of another version that does hold the kernel lock (the package upgraded, the server not restarted yet):
// a `sat` command would run in that server, with its code (`sat migrate` said "up to date" with this version's
// migrations pending). `sat` asks the server's version first and refuses to go through another one.
describeEmbedded('a server of another version holding the embedded DATA_DIR', () => {
  let db: TestDb;
  let lock: DataDirLock | undefined;
  let control: { close(): Promise<void> } | undefined;
  const received: string[] = [];
  let version: ControlResponse;
  beforeAll(async () => {
    db = await createTestDb('embedded');
    lock = acquireDataDirLock(db.dataDir);
    control = await startControlServer(db.dataDir, async (req) => {
      received.push(req.command);
      return req.command === 'server-version' ? version : { ok: true, result: { migrations: [] } };
    });
  });
  afterAll(async () => {
    await control?.close();
    lock?.release();
    await db?.drop();
  });

  it.each([
    ['older (it does not know the question)', { ok: false, error: { code: 'unknown_command', message: 'unknown command server-version' } }, /it is older than this sat/],
    ['newer', { ok: true, result: { latest_migration: '9990_from_the_future' } }, /its newest migration is 9990_from_the_future, this sat's \d{4}_/],
  ] as Array<[string, ControlResponse, RegExp]>)('refuses to run a command through a server %s, running nothing there', async (_label, answer, why) => {
    version = answer;
    received.length = 0;
    for (const args of [['migrate'], ['keys', 'list'], ['keys', 'rotate', '--now']]) {
      const res = await runSatInProcess(args, db.env);
      expect({ args, code: res.code }).toEqual({ args, code: 1 });
      expect(res.stderr).toMatch(/the server running on this DATA_DIR is another version of sat/);
      expect(res.stderr).toMatch(why);
      expect(res.stdout).toBe('');
    }
    expect(received.every((c) => c === 'server-version')).toBe(true);
  });
});
