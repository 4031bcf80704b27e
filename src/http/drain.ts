import type http from 'node:http';
import net from 'node:net';

export interface DrainResult {
  /** Connections still busy when the grace ran out, closed without waiting for their response. */
  forced: number;
}

/** A connection with no request in progress may still have one in the kernel's buffer: look again after this. */
const IDLE_CHECK_MS = 200;
/** The longest the listener stays open after the signal while connections that were waiting are accepted. */
const BACKLOG_DRAIN_MAX_MS = 1_000;

/**
 * The server's open connections, from now on (call it right after creating the server): drainHttpServer waits for
 * those it closes when the grace runs out, so that their requests' access-log lines are written before the process
 * exits (a socket's 'close' comes a turn of the event loop after the server's own).
 */
export function trackConnections(server: http.Server): ReadonlySet<net.Socket> {
  const open = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  return open;
}

/**
 * Stops an HTTP server gracefully (SPEC "Operations"): no new connections once those already waiting in the listen
 * backlog are accepted (below); requests in progress finish; each
 * keep-alive connection closes after its current response (the app sets `Connection: close` while draining);
 * connections with no request in progress are closed, but only on the next check, so that a request a client
 * sent just before the signal (still unread in the socket) is answered rather than reset. After `graceMs` the
 * remaining connections are closed. Resolves when the server has no connection left and, for `connections`
 * (trackConnections), when those it closed have said so (their requests' 'close' listeners, the access log's, ran).
 *
 * Node's `server.close()` closes idle connections synchronously, which resets exactly those just-sent requests;
 * hence the listener is closed through net.Server and idle connections are closed on a timer.
 *
 * Connections the kernel completed before the signal may still wait in the listen backlog, not yet accepted (under
 * load for tens of milliseconds): closing the listener makes the kernel reset them, and a client or load balancer
 * that opens a connection per request lost every such request, sent before the signal. So the listener is closed
 * only after one whole turn of the event loop has accepted nothing (each poll phase accepts what waits), or after
 * BACKLOG_DRAIN_MAX_MS when connections keep coming; what it accepted meanwhile is served like the rest.
 */
export function drainHttpServer(server: http.Server, graceMs: number, connections?: ReadonlySet<net.Socket>): Promise<DrainResult> {
  return new Promise((resolve) => {
    let forced = 0;
    let forcedClosed: Promise<unknown> = Promise.resolve();
    let idleTimer: NodeJS.Timeout | undefined;
    const graceTimer = setTimeout(() => {
      clearInterval(idleTimer);
      server.closeIdleConnections();
      server.getConnections((_err, count) => {
        forced = count;
        const closing = [...(connections ?? [])];
        forcedClosed = Promise.all(closing.map((socket) => new Promise((done) => socket.once('close', done))));
        server.closeAllConnections();
      });
    }, graceMs);
    const closeListener = () =>
      net.Server.prototype.close.call(server, () => {
        clearTimeout(graceTimer);
        clearInterval(idleTimer);
        // http.Server#close also stops its request-timeout checker; with no listener left it only does that
        // (its callback then reports "not running", which is expected here).
        server.close(() => undefined);
        void forcedClosed.then(() => resolve({ forced }));
      });
    let accepted = 0;
    const onConnection = () => {
      accepted += 1;
    };
    server.on('connection', onConnection);
    const drainFrom = Date.now();
    let seen = -1;
    // setImmediate runs right after a poll phase: two in a row with no connection between them saw a poll phase
    // accept nothing, so the backlog was empty after the signal.
    const whenBacklogEmpty = () => {
      if (accepted === seen || Date.now() - drainFrom >= BACKLOG_DRAIN_MAX_MS) {
        server.off('connection', onConnection);
        closeListener();
        return;
      }
      seen = accepted;
      setImmediate(whenBacklogEmpty);
    };
    setImmediate(whenBacklogEmpty);
    idleTimer = setInterval(() => server.closeIdleConnections(), IDLE_CHECK_MS);
  });
}
