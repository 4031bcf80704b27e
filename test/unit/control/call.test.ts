// callControl (src/control/index.ts): what `sat` says when the running server goes away mid-command.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { callControl, socketPath } from '../../../src/control/index.js';

describe('callControl', () => {
  let dir: string;
  let server: net.Server;
  const listen = async (onConnection: (socket: net.Socket) => void) => {
    server = net.createServer(onConnection);
    await new Promise<void>((resolve) => server.listen(socketPath(dir), resolve));
  };
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sat-control-'));
  });
  afterEach(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the answer', async () => {
    await listen((socket) => socket.once('data', () => socket.end(JSON.stringify({ ok: true, result: { n: 1 } }) + '\n')));
    await expect(callControl(dir, { command: 'x', args: {} })).resolves.toEqual({ ok: true, result: { n: 1 } });
  });

  it('says the server went away when the connection closes with no answer (killed mid-command)', async () => {
    await listen((socket) => socket.once('data', () => socket.end()));
    await expect(callControl(dir, { command: 'backup', args: {} })).rejects.toThrow(/closed the connection without answering \(it stopped or crashed meanwhile\)/);
  });

  // A server killed with SIGKILL closes its end with the request unread: the kernel resets the connection (ECONNRESET),
  // or refuses the write (EPIPE) when it went first. Either way the command was sent: `sat` printed "read ECONNRESET".
  it.each([
    ['with the request unread (ECONNRESET)', (socket: net.Socket) => setTimeout(() => socket.destroy(), 20)],
    ['before the request was written (EPIPE)', (socket: net.Socket) => socket.destroy()],
  ])('says the same when the server goes away %s', async (_, goAway) => {
    server = net.createServer({ pauseOnConnect: true }, goAway);
    await new Promise<void>((resolve) => server.listen(socketPath(dir), resolve));
    const err = await callControl(dir, { command: 'token-create', args: {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/closed the connection without answering \(it stopped or crashed meanwhile\)/);
  });

  it('passes on "no server listening" as it came, for the caller to run the command itself', async () => {
    await listen(() => {});
    await new Promise((resolve) => server.close(resolve));
    await expect(callControl(dir, { command: 'x', args: {} })).rejects.toMatchObject({ code: expect.stringMatching(/^(ENOENT|ECONNREFUSED)$/) });
    await listen(() => {}); // for afterEach
  });

  it('calls a half answer malformed', async () => {
    await listen((socket) => socket.once('data', () => socket.end('{"ok":tr')));
    await expect(callControl(dir, { command: 'x', args: {} })).rejects.toThrow('malformed answer from the running server');
  });
});
