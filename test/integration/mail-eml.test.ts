// SPEC "Email": with no SMTP_URL, mail is written as .eml files under the data directory, and the log says where.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import type { MailOutboxRow } from '../../src/db/index.js';
import { generateToken } from '../../src/tokens/index.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow, makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe.each(testDatabases())('.eml fallback on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, {}, { jobs: 'manual' }); // the test runs the delivery job itself
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const mailDir = () => path.join(db.dataDir, 'mail');
  const emlFiles = () => {
    try {
      return readdirSync(mailDir()).filter((f) => f.endsWith('.eml'));
    } catch {
      return [];
    }
  };

  it('says at start where mail will be written', () => {
    const line = server.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => String(l.msg).includes('SMTP_URL is not set'));
    expect(line).toMatchObject({ level: 'info', directory: mailDir() });
  });

  it('writes a readable message file for a generated token, without the secret', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await generateToken(
      server.deps,
      admin,
      { name: 'Payroll_Integration', services: ['employees'], expires_at: daysFromNow(90) },
      { ip: '192.0.2.44' },
    );
    const row = await server.deps.db.knex<MailOutboxRow>('mail_outbox').where({ recipient: admin.email }).first();
    expect(emlFiles().filter((f) => f.includes(row!.id))).toHaveLength(0); // queued, not yet written
    await server.runJob('deliver-mail');
    const files = emlFiles().filter((f) => f.includes(row!.id));
    expect(files).toHaveLength(1);
    const file = path.join(mailDir(), files[0]!);
    expect(files[0]).toMatch(/^\d{8}T\d{6}Z-token_generated-[0-9a-f-]{36}\.eml$/);
    expect(statSync(file).mode & 0o077).toBe(0); // readable by the service's user only

    const raw = readFileSync(file, 'utf8');
    expect(raw).not.toContain(t.client_secret);
    expect(raw).not.toMatch(/sats_/);
    const mail = await simpleParser(raw);
    expect(mail.messageId).toBe(row!.message_id);
    expect(mail.subject).toBe('New system access token "Payroll_Integration"');
    expect((Array.isArray(mail.to) ? mail.to : [mail.to!]).flatMap((a) => a.value.map((v) => v.address))).toEqual([admin.email]);
    expect(mail.from?.value[0]?.address).toBe('no-reply@127.0.0.1');
    expect(mail.text).toContain(t.client_id);
    expect(mail.text).toContain('Employee API');
    expect(mail.text).toContain('192.0.2.44');
    expect(typeof mail.html === 'string' && mail.html.includes('Payroll_Integration')).toBe(true);

    expect(await server.deps.db.knex('mail_outbox').where({ id: row!.id }).first()).toMatchObject({ status: 'sent' });
    expect(server.logLines.some((l) => l.includes('mail written to a file') && l.includes(file))).toBe(true);
  });
});
