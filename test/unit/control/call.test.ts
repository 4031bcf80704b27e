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

  it('calls a half answer malformed', async () => {
    await listen((socket) => socket.once('data', () => socket.end('{"ok":tr')));
    await expect(callControl(dir, { command: 'x', args: {} })).rejects.toThrow('malformed answer from the running server');
  });
});
