import type { Duplex } from 'node:stream';

/** Node's client errors we answer, by error code: status line and SPEC's `{error, message}`. Anything else is 400. */
const answers: Record<string, [status: string, error: string, message: string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: ['408 Request Timeout', 'request_timeout', 'The request did not arrive in time (REQUEST_TIMEOUT_SECONDS).'],
  HPE_HEADER_OVERFLOW: ['431 Request Header Fields Too Large', 'request_header_fields_too_large', 'The request headers are too large.'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: ['413 Payload Too Large', 'payload_too_large', 'The chunk extensions are too large.'],
};
const malformed: [string, string, string] = ['400 Bad Request', 'bad_request', 'The request is not valid HTTP/1.1.'];

/**
 * The http server's 'clientError' listener: what Node answers with an empty body (a request too slow, 408; headers
 * too large, 431; malformed, 400) gets SPEC's JSON error shape instead, with `Connection: close`, then the connection
 * is closed. As Node does, nothing is written when the client is gone or a response already started on the socket.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
    const [status, error, message] = answers[err.code ?? ''] ?? malformed;
    const body = JSON.stringify({ error, message });
    socket.write(
      `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
