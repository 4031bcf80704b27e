import { createLogger } from '../../src/log.js';

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

  it('writes nothing when silent', () => {
    const lines: string[] = [];
    createLogger('silent', {}, (l) => lines.push(l)).error('nothing');
    expect(lines).toEqual([]);
  });
});
