// The local control channel: while the server holds the embedded database, `sat` commands reach it through a
// Unix socket in DATA_DIR that only the same OS user can open (mode 0600 in a 0700 directory).
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MAX_SOCKET_PATH_BYTES } from '../config/index.js';

export interface ControlRequest {
  command: string;
  args: Record<string, unknown>;
}
export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string; details?: unknown } };
export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse>;

/** The control socket of a data directory: DATA_DIR/sat.sock. */
export function socketPath(dataDir: string): string {
  return path.join(dataDir, 'sat.sock');
}

const MAX_REQUEST = 64 * 1024;

/**
 * Listens on DATA_DIR/sat.sock (0600) for one JSON command per connection, answered by `handler`. `close()` stops
 * listening, ends idle connections at once and resolves when the commands still running have answered.
 */
export async function startControlServer(dataDir: string, handler: ControlHandler): Promise<{ close(): Promise<void> }> {
  const file = socketPath(dataDir);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES) throw new Error(`DATA_DIR path is too long for a Unix socket: ${file}`);
  if (existsSync(file)) unlinkSync(file); // left by a process that died; we hold the data-dir lock
  // Connections and whether a command of theirs is running: close() ends the others at once, so a client that
  // connected and sent nothing (a hung `sat`, a probe) cannot hold up a graceful shutdown.
  const connections = new Map<net.Socket, { busy: boolean }>();
  let closing = false;
  const server = net.createServer((socket) => {
    const state = { busy: false };
    connections.set(socket, state);
    socket.on('close', () => connections.delete(socket));
    if (closing) return socket.destroy();
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_REQUEST) return socket.destroy();
      const nl = buffer.indexOf('\n');
      if (nl === -1) return;
      const line = buffer.slice(0, nl);
      socket.removeAllListeners('data');
      let req: ControlRequest;
      try {
        req = JSON.parse(line) as ControlRequest;
        if (typeof req.command !== 'string' || typeof req.args !== 'object' || req.args === null) throw new Error('bad request');
      } catch {
        socket.end(JSON.stringify({ ok: false, error: { code: 'bad_request', message: 'malformed control request' } }) + '\n');
        return;
      }
      state.busy = true;
      handler(req).then(
        (res) => socket.end(JSON.stringify(res) + '\n'),
        () => socket.end(JSON.stringify({ ok: false, error: { code: 'internal_error', message: 'command failed' } }) + '\n'),
      );
    });
  });
  const previous = process.umask(0o177); // the socket is born 0600: no window where others could connect
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
  } finally {
    process.umask(previous);
  }
  chmodSync(file, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve()); // resolves once the commands still running have answered
        for (const [socket, state] of connections) if (!state.busy) socket.destroy();
        try {
          unlinkSync(file);
        } catch {
          /* gone */
        }
      }),
  };
}

const WENT_AWAY = 'the running server closed the connection without answering (it stopped or crashed meanwhile): check whether the command took effect';

/**
 * Sends one command to the running server over DATA_DIR/sat.sock and resolves with its answer (`ok: false` carries the
 * server's error code). Rejects with the connection error when no server is listening (ENOENT, ECONNREFUSED: the
 * caller runs the command itself), after `timeoutMs` (default 30 s) without activity, and, once the command was sent,
 * with one plain message when the connection closes or is reset (ECONNRESET, EPIPE: a server killed mid-command)
 * without an answer, or on a malformed answer.
 */
export function callControl(dataDir: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath(dataDir));
    let data = '';
    let sent = false;
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('the running server did not answer in time')));
    socket.on('connect', () => {
      sent = true;
      socket.write(JSON.stringify(req) + '\n');
    });
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      reject(sent && (err.code === 'ECONNRESET' || err.code === 'EPIPE') ? new Error(WENT_AWAY) : err);
    });
    socket.on('end', () => {
      try {
        resolve(JSON.parse(data) as ControlResponse);
      } catch {
        reject(new Error(data.trim() === '' ? WENT_AWAY : 'malformed answer from the running server'));
      }
    });
  });
}
