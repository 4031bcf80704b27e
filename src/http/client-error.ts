import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import { httpResponses } from '../metrics.js';
import { unmappedAddress } from './common.js';
import { isDiscardingBody } from './body.js';

/** Node's client errors we answer, by error code: status line and SPEC's `{error, message}`. Anything else is 400. */
const answers: Record<string, [status: string, error: string, message: string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: ['408 Request Timeout', 'request_timeout', 'The request did not arrive in time (REQUEST_TIMEOUT_SECONDS).'],
  HPE_HEADER_OVERFLOW: ['431 Request Header Fields Too Large', 'request_header_fields_too_large', 'The request headers are too large.'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: ['413 Payload Too Large', 'payload_too_large', 'The chunk extensions are too large.'],
};
const malformed: [string, string, string] = ['400 Bad Request', 'bad_request', 'The request is not valid HTTP/1.1.'];

/** A request line's method and target, up to the target's query: `POST /token?x HTTP/1.1` → `/token`. */
const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32} ([^\s?#]{1,4096})/;

/** The path a request target names (origin form `/token?x`, or absolute form `http://host/token`); else undefined. */
function targetPath(target: string): string | undefined {
  if (target.startsWith('/')) return target.split(/[?#]/, 1)[0];
  return /^https?:\/\//i.test(target) ? (URL.parse(target)?.pathname ?? undefined) : undefined;
}

/**
 * The path of the request Node refused, when it can be told: the request the app already has (`inFlight`), else the
 * request line at the start of the bytes Node was parsing when it gave up (`err.rawPacket`: for headers too large,
 * the chunk that made them so, which is the whole request when it came in one piece, as it usually does).
 */
function refusedPath(err: Error & { rawPacket?: unknown }, inFlight: (ServerResponse & { req?: IncomingMessage }) | undefined): string | undefined {
  if (inFlight?.req?.url !== undefined) return targetPath(inFlight.req.url);
  if (!Buffer.isBuffer(err.rawPacket)) return undefined;
  const target = REQUEST_LINE.exec(err.rawPacket.toString('latin1', 0, Math.min(err.rawPacket.length, 4200)))?.[1];
  return target === undefined ? undefined : targetPath(target);
}

/** What answerClientErrors needs to know of the app. */
export interface ClientErrorOptions {
  /**
   * Whether a path is an OAuth endpoint (`/token`, `/token/introspection`, …), whose refusals are RFC 6749 §5.2's
   * `{error: "invalid_request", error_description}` (same status) instead of SPEC's `{error, message}`.
   */
  isOAuthEndpoint?: (path: string) => boolean;
}

/**
 * The http server's 'clientError' listener: what Node answers with an empty body (a request too slow, 408; headers
 * too large, 431; malformed, 400) gets SPEC's JSON error shape instead, with `Connection: close`, then the connection
 * is closed. At an OAuth endpoint (`options.isOAuthEndpoint`, for the path of the request when it can be told:
 * refusedPath) the body is RFC 6749 §5.2's `{error: "invalid_request", error_description}` with the same status, as
 * every other error there. As Node does, nothing is written when the client is gone or a response already started
 * on the socket. Each answer is counted in sat_http_responses_total and leaves one access-log line like every other
 * request (SPEC "Operations"), with a new request id that the answer carries in `X-Request-Id`; method and path are
 * not logged (Node did not hand them over), and the client address is the peer's (the headers that TRUST_PROXY reads
 * were not read either). A request the app already has (headers in, body too slow) is answered through its own
 * response instead, so its own access-log line says 408.
 */
export function answerClientErrors(log: Logger, options: ClientErrorOptions = {}): (err: Error & { code?: string; rawPacket?: unknown }, socket: Duplex) => void {
  return (err, socket) => {
    // A refused body being thrown away after its 413 (http/body.ts discardRest) that the request timeout ended: the
    // request has had its one answer and access-log line; no second (a 408 after the 413).
    if (isDiscardingBody(socket)) {
      socket.destroy();
      return;
    }
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
    if (err.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
      const [status, error, message] = answers[err.code ?? ''] ?? malformed;
      const path = options.isOAuthEndpoint ? refusedPath(err, inFlight) : undefined;
      const oauth = path !== undefined && options.isOAuthEndpoint!(path);
      const body = oauth ? { error: 'invalid_request', error_description: message } : { error, message };
      if (inFlight && !inFlight.writableEnded) {
        // A request the app already has (its headers arrived, its body is too slow): answer through its own
        // response, with its request id, so that its one access-log line says 408 and is the only line, and the
        // response counters count it once.
        const text = JSON.stringify(body);
        inFlight.shouldKeepAlive = false;
        const code = Number(status.slice(0, 3));
        // The reason phrase too: the app may have set its own status already (a 400 of checkRequestHead, say), whose
        // phrase would stay.
        inFlight.writeHead(code, STATUS_CODES[code] ?? '', {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
          pragma: 'no-cache', // RFC 6749 §5.1, should this be an OAuth endpoint's answer
          'x-content-type-options': 'nosniff',
          connection: 'close',
        });
        // Once the response is finished Node no longer aborts the request when the socket closes: end it here, or
        // the handler would wait for the rest of the body for ever.
        inFlight.end(text, () => {
          (inFlight as ServerResponse & { req?: { destroy(): void } }).req?.destroy();
          socket.destroy();
        });
        return;
      }
      writeRefusal(log, socket, status, body);
    }
    socket.destroy();
  };
}

/**
 * Writes a refusal on a socket Node no longer parses, counts it and leaves its access-log line: a new request id
 * (echoed in `X-Request-Id`), the peer's address (TRUST_PROXY's headers are not read), the method when Node read one.
 */
function writeRefusal(log: Logger, socket: Duplex, status: string, body: { error: string }, method?: string): void {
  const text = JSON.stringify(body);
  const requestId = randomUUID();
  socket.write(
    `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `Cache-Control: no-store\r\nPragma: no-cache\r\nX-Content-Type-Options: nosniff\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${text}`,
  );
  httpResponses.inc({ status_class: `${status[0]}xx` });
  log.info('request', {
    request_id: requestId,
    ...(method ? { method } : {}),
    status: Number(status.slice(0, 3)),
    client_ip: unmappedAddress((socket as Duplex & { remoteAddress?: string }).remoteAddress ?? ''),
    error: body.error,
  });
}

const connectRefused = { error: 'bad_request', message: 'CONNECT is not supported: this server is not a proxy.' };

/**
 * The http server's 'connect' listener: Node hands a CONNECT request (any target) over as a bare socket and, with no
 * listener, closes it without a word. This server tunnels nothing: it answers 400 in SPEC's shape with its
 * access-log line, then closes the connection.
 */
export function answerConnect(log: Logger): (req: IncomingMessage, socket: Duplex) => void {
  return (req, socket) => {
    socket.on('error', () => undefined); // a peer gone meanwhile: nothing to answer
    if (socket.writable) writeRefusal(log, socket, '400 Bad Request', connectRefused, req.method);
    socket.end(() => socket.destroy());
  };
}
