// SPEC "Operations": one access-log line per request, also for a request the shutdown cuts off when
// SHUTDOWN_GRACE_SECONDS run out: the drain resolves only once those connections have closed, so their lines are
// written before the process exits (src/http/drain.ts).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { accessLog } from '../../../src/http/access-log.js';
import { drainHttpServer, trackConnections } from '../../../src/http/drain.js';
import { createLogger } from '../../../src/log.js';

describe('drainHttpServer when the grace runs out', () => {
  it('resolves after the requests it cut off have written their access-log lines (aborted, no status)', async () => {
    const lines: string[] = [];
    const app = new Koa();
    app.use(accessLog(createLogger('info', {}, (line) => lines.push(line))));
    let reached!: () => void;
    const inHandler = new Promise<void>((resolve) => (reached = resolve));
    app.use(async () => {
      reached();
      await new Promise(() => {}); // a request still arriving, or still being worked on, when the grace ends
    });
    const server = http.createServer(app.callback());
    const connections = trackConnections(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const request = fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, { method: 'POST', body: 'grant_type=x' }).catch(() => 'closed');
    await inHandler;
    const result = await drainHttpServer(server, 50, connections);
    // No waiting here: the line must be there when the drain says it is done (the process exits right after).
    expect(result.forced).toBe(1);
    expect(lines.map((line) => JSON.parse(line))).toEqual([expect.objectContaining({ msg: 'request', path: '/token', status: null, aborted: true })]);
    expect(connections.size).toBe(0);
    expect(await request).toBe('closed');
  });
});
