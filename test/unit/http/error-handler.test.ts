// The error handler: an unexpected error is 500 internal_error and logged, also after the request body was read
// (Node marks a fully read request `destroyed`, which must not pass for one cut off mid-body).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { errorHandler } from '../../../src/http/error-handler.js';
import { jsonBody } from '../../../src/http/validate.js';
import { createLogger } from '../../../src/log.js';

describe('errorHandler', () => {
  it('answers 500 and logs an unexpected error thrown after the JSON body was read', async () => {
    const lines: string[] = [];
    const app = new Koa();
    app.use(errorHandler(createLogger('debug', {}, (l) => lines.push(l))));
    app.use(jsonBody());
    app.use(async (ctx) => {
      expect(ctx.state.body).toEqual({ a: 1 });
      throw new Error('boom after the body');
    });
    const server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"a":1}',
      });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: 'internal_error', message: expect.any(String) });
      expect(lines).toEqual([expect.stringContaining('request failed')]);
      expect(lines[0]).toContain('boom after the body');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
