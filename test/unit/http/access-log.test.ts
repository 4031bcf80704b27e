// The access log (SPEC "Operations") writes one line per request at LOG_LEVEL info or below, and nothing, at no
// cost, above it (the token endpoint's hot path does not build lines that would be dropped).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { accessLog, loggedAddress, loggedPath } from '../../../src/http/access-log.js';
import { unmappedAddress } from '../../../src/http/common.js';
import type { LogLevel } from '../../../src/config/index.js';
import { createLogger } from '../../../src/log.js';

async function linesAt(level: LogLevel): Promise<{ lines: string[]; listeners: number }> {
  const lines: string[] = [];
  const app = new Koa();
  let listeners = -1;
  app.use(accessLog(createLogger(level, {}, (line) => lines.push(line))));
  app.use((ctx) => {
    listeners = ctx.res.listenerCount('close');
    ctx.body = 'ok';
  });
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/token?client_secret=x`);
    await res.text();
    for (const deadline = Date.now() + 2000; level === 'info' && lines.length === 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  return { lines, listeners };
}

describe('accessLog', () => {
  it('writes one line at info, without the query string', async () => {
    const { lines } = await linesAt('info');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'request', method: 'GET', path: '/token', status: 200 });
    expect(lines[0]).not.toContain('client_secret');
  });
  it('writes nothing and listens for nothing at warn', async () => {
    const info = await linesAt('info');
    const warn = await linesAt('warn');
    expect(warn.lines).toEqual([]);
    expect(warn.listeners).toBe(info.listeners - 1);
  });
});

describe('accessLog of a connection closed before any answer', () => {
  it('says aborted, with no status (not the 404 Koa presets), when the server closes it (the shutdown grace ran out)', async () => {
    const lines: string[] = [];
    const app = new Koa();
    app.use(accessLog(createLogger('info', {}, (line) => lines.push(line))));
    let reached!: () => void;
    const inHandler = new Promise<void>((resolve) => (reached = resolve));
    app.use(async () => {
      reached();
      await new Promise(() => {}); // still working when the connection goes
    });
    const server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const request = fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, { method: 'POST', body: 'grant_type=x' }).catch(() => 'closed');
      await inHandler;
      server.closeAllConnections(); // as the shutdown does once SHUTDOWN_GRACE_SECONDS have passed
      expect(await request).toBe('closed');
      for (const deadline = Date.now() + 2000; lines.length === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 5));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'request', method: 'POST', path: '/token', status: null, aborted: true });
  });
});

describe('loggedPath', () => {
  it('keeps paths up to 256 characters and cuts longer ones with an ellipsis', () => {
    expect(loggedPath('/token')).toBe('/token');
    expect(loggedPath(`/${'a'.repeat(255)}`)).toHaveLength(256);
    const cut = loggedPath(`/${'b'.repeat(5000)}`);
    expect(cut).toBe(`/${'b'.repeat(255)}…`);
  });
});

describe('loggedAddress', () => {
  it('keeps any real address and cuts what no address is with an ellipsis', () => {
    for (const ip of ['203.0.113.9', '::ffff:203.0.113.9', 'fe80:0000:0000:0000:0000:ffff:192.168.100.228%eth0', '']) expect(loggedAddress(ip)).toBe(ip);
    expect(loggedAddress('9'.repeat(400))).toBe(`${'9'.repeat(64)}…`);
  });
});

describe('unmappedAddress', () => {
  it('writes an IPv4-mapped IPv6 address as IPv4 and leaves every other text alone', () => {
    expect(unmappedAddress('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(unmappedAddress('::FFFF:198.51.100.1')).toBe('198.51.100.1');
    for (const ip of ['203.0.113.9', '2001:db8::1', '::ffff:c000:0201', '::ffff:1.2.3.4.5', 'x::ffff:1.2.3.4', '']) expect(unmappedAddress(ip)).toBe(ip);
  });

  it('takes off the port a load balancer may write (a.b.c.d:port, [v6]:port) and the brackets of [v6]', () => {
    expect(unmappedAddress('203.0.113.9:51234')).toBe('203.0.113.9');
    expect(unmappedAddress('[2001:db8::7]:443')).toBe('2001:db8::7');
    expect(unmappedAddress('[2001:db8::7]')).toBe('2001:db8::7');
    expect(unmappedAddress('[::ffff:203.0.113.9]:80')).toBe('203.0.113.9');
    for (const ip of ['fe80::1', '1.2.3.4:', '1.2.3.4:123456', 'a.b.c.d:80', '[2001:db8::7]x', '[zz]:80', '1:2:3:4:5:6:7:8']) {
      expect(unmappedAddress(ip)).toBe(ip);
    }
  });
});
