// SPEC "Operations": once the server begins to drain, /readyz answers 503 {"status":"shutting_down"} without asking
// the database, and every response carries `Connection: close`. The SIGTERM end of this is in
// test/integration/graceful-shutdown.test.ts; here the switch itself, with no race between signal and probe.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Deps } from '../../../src/deps.js';
import { closeWhenDraining } from '../../../src/http/common.js';
import { opsRouter } from '../../../src/ops/routes.js';

async function withApp<T>(lifecycle: { draining: boolean }, pings: { count: number }, run: (url: string) => Promise<T>): Promise<T> {
  const deps = {
    config: { metricsToken: undefined },
    db: {
      knex: {
        raw: async () => {
          pings.count++;
          return { rows: [{ ok: 1 }] };
        },
      },
    },
  } as unknown as Deps;
  const app = new Koa();
  app.use(closeWhenDraining(lifecycle));
  app.use(opsRouter(deps, lifecycle).routes());
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('/readyz while draining', () => {
  it('turns 503 shutting_down at once, without a database query, and closes the connection', async () => {
    const lifecycle = { draining: false };
    const pings = { count: 0 };
    await withApp(lifecycle, pings, async (url) => {
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(ready.headers.get('connection')).not.toBe('close');
      expect(pings.count).toBe(1);

      lifecycle.draining = true;
      const draining = await fetch(`${url}/readyz`);
      expect(draining.status).toBe(503);
      expect(draining.headers.get('cache-control')).toBe('no-store');
      expect(draining.headers.get('connection')).toBe('close');
      expect(await draining.json()).toEqual({ status: 'shutting_down' });
      expect(pings.count).toBe(1);

      const alive = await fetch(`${url}/healthz`);
      expect(alive.status).toBe(200);
      expect(alive.headers.get('connection')).toBe('close');
    });
  });
});
