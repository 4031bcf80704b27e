import { createLogger, redactText } from '../../src/log.js';

describe('createLogger (pino)', () => {
  it('writes one JSON line per call: level name, ISO time, fields, msg', () => {
    const lines: string[] = [];
    const log = createLogger('info', { service: 'sat' }, (l) => lines.push(l));
    log.debug('not written at info');
    log.info('hello', { n: 1 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 'info', service: 'sat', n: 1, msg: 'hello' });
    expect(new Date(String(entry.time)).toISOString()).toBe(entry.time);
  });

  it('redacts credentials in fields, child bindings and request-shaped objects', () => {
    const lines: string[] = [];
    const log = createLogger('debug', {}, (l) => lines.push(l)).child({ session_token: 'sas_child-secret', request_id: 'r1' });
    log.warn('call', {
      req: { headers: { authorization: 'Bearer abc.def.ghi', cookie: 'sat_session=sas_cookie', 'x-ok': 'visible' } },
      res: { headers: { 'set-cookie': 'sat_session=sas_setcookie' } },
      body: { client_secret: 'sats_abc', current_password: 'old-pass', new_password: 'new-pass' },
      note: 'the secret sats_inline123 was sent',
    });
    const out = lines.join('\n');
    for (const leak of ['sas_child-secret', 'abc.def.ghi', 'sas_cookie', 'sas_setcookie', 'sats_abc', 'old-pass', 'new-pass', 'sats_inline123']) {
      expect(out).not.toContain(leak);
    }
    expect(out).toContain('visible');
    expect(out).toContain('"request_id":"r1"');
  });

  it("redacts a secret's body after its prefix in any case (an encoded path /x/%73ATS%5f… decodes to sATS_…)", () => {
    const body = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
    for (const text of [`/x/sATS_${body}`, `SATS_${body}`, `Sas_${body}`]) expect(redactText(text)).not.toContain(body);
    expect(redactText('basic checks pass; the plan is Sats and sas')).toBe('basic checks pass; the plan is Sats and sas');
  });

  it('writes nothing when silent', () => {
    const lines: string[] = [];
    createLogger('silent', {}, (l) => lines.push(l)).error('nothing');
    expect(lines).toEqual([]);
  });
});

describe('errors in log lines', () => {
  it('are written with name, code and message: no stack, no SQL statement knex put before the message', () => {
    const lines: string[] = [];
    const log = createLogger('debug', {}, (l) => lines.push(l));
    const db = Object.assign(new Error('insert into "oauth_replay" (id, expires_at) values ($1, $2) on conflict (id) do update set x = now() - interval \'1 s\' - canceling statement due to statement timeout'), { code: '57014' });
    const plain = new TypeError('cannot read x of undefined');
    log.warn('could not record last use', { err: db });
    log.error('request failed', { err: plain, nested: { cause: db } });
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, any>);
    expect(first!.err).toEqual({ name: 'Error', code: '57014', message: 'canceling statement due to statement timeout' });
    expect(second!.err).toEqual({ name: 'TypeError', message: 'cannot read x of undefined' });
    expect(second!.nested.cause.message).toBe('canceling statement due to statement timeout');
    expect(lines.join('\n')).not.toMatch(/"stack"|oauth_replay|\bat .*\.(js|ts):\d+/);
  });
});
