import type http from 'node:http';
import net from 'node:net';

export interface DrainResult {
  /** Connections still busy when the grace ran out, closed without waiting for their response. */
  forced: number;
}

/** A connection with no request in progress may still have one in the kernel's buffer: look again after this. */
const IDLE_CHECK_MS = 200;

/**
 * Stops an HTTP server gracefully (SPEC "Operations"): no new connections; requests in progress finish; each
 * keep-alive connection closes after its current response (the app sets `Connection: close` while draining);
 * connections with no request in progress are closed, but only on the next check, so that a request a client
 * sent just before the signal (still unread in the socket) is answered rather than reset. After `graceMs` the
 * remaining connections are closed. Resolves when the server has no connection left.
 *
 * Node's `server.close()` closes idle connections synchronously, which resets exactly those just-sent requests;
 * hence the listener is closed through net.Server and idle connections are closed on a timer.
 */
export function drainHttpServer(server: http.Server, graceMs: number): Promise<DrainResult> {
  return new Promise((resolve) => {
    let forced = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    const graceTimer = setTimeout(() => {
      clearInterval(idleTimer);
      server.closeIdleConnections();
      server.getConnections((_err, count) => {
        forced = count;
        server.closeAllConnections();
      });
    }, graceMs);
    net.Server.prototype.close.call(server, () => {
      clearTimeout(graceTimer);
      clearInterval(idleTimer);
      // http.Server#close also stops its request-timeout checker; with no listener left it only does that
      // (its callback then reports "not running", which is expected here).
      server.close(() => undefined);
      resolve({ forced });
    });
    idleTimer = setInterval(() => server.closeIdleConnections(), IDLE_CHECK_MS);
  });
}
