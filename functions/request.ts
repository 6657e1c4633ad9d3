/**
 * Reading a request at the edge, the same for every entry point (functions framework, the one-port server, AWS
 * Lambda): the path and query without URL parsing surprises, and the body bounded while it is read — before any
 * authentication, so nobody can make an instance buffer more than the limit. Compressed bodies are refused
 * (Cloud KMS clients never compress requests, and inflating them is how a small request becomes a large one). An
 * oversize body is read and discarded up to a bound so that the client, which is still sending, gets the answer.
 */
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ApiRequest, ApiResponse } from '../shared/api/gateway.js';
import { renderError } from '../shared/api/render.js';
import { RpcError } from '../shared/errors.js';

/** How much of a refused body is read and thrown away before the answer, so clients see it (not EPIPE). */
const DRAIN_BYTES = 16 * 1024 * 1024;

export interface BodyRead {
  body?: Buffer;
  error?: RpcError;
  /** The connection must close after the answer (the rest of the body was not read). */
  close?: boolean;
}

function tooLarge(size: number | undefined, limit: number): RpcError {
  return RpcError.invalidArgument(
    `The request body is ${size === undefined ? 'larger than that' : `${size} bytes`}; the limit is ${limit} bytes. Plaintexts are limited to 64 KiB: for larger data use envelope encryption (encrypt the data locally with a data key, and only that key with this service).`,
  );
}

function refuseEncoding(req: IncomingMessage): RpcError | undefined {
  const enc = req.headers['content-encoding'];
  if (enc === undefined || enc.trim() === '' || enc.trim().toLowerCase() === 'identity') return undefined;
  return RpcError.invalidArgument(
    `Compressed request bodies are not accepted (Content-Encoding: ${enc.slice(0, 40)}); send the JSON body uncompressed.`,
  );
}

/** The body of `req`, at most `limit` bytes; a refusal instead of a body when it is too large or compressed. */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  const given = (req as IncomingMessage & { body?: unknown }).body;
  const encoding = refuseEncoding(req);
  if (Buffer.isBuffer(given)) {
    // Already read by the platform (serverless-http gives the Lambda event's body).
    if (encoding) return Promise.resolve({ error: encoding });
    return Promise.resolve(given.length > limit ? { error: tooLarge(given.length, limit) } : { body: given });
  }
  const declared = Number(req.headers['content-length']);
  let refused = encoding ?? (declared > limit ? tooLarge(declared, limit) : undefined);
  if (refused && declared > DRAIN_BYTES) {
    req.resume();
    return Promise.resolve({ error: refused, close: true });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyRead) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (!refused && size > limit) {
        refused = tooLarge(undefined, limit);
        chunks.length = 0;
      }
      if (refused) {
        if (size > DRAIN_BYTES) {
          // Stop collecting; the stream keeps flowing (and is thrown away) until the connection closes.
          finish({ error: refused, close: true });
        }
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(refused ? { error: refused } : { body: Buffer.concat(chunks, size) }));
    req.once('error', () =>
      finish({
        error: new RpcError('CANCELLED', 'The client went away while sending the request.'),
        close: true,
      }),
    );
  });
}

/** The path and query of a request target, without resolving it against a base URL. */
export function splitTarget(target: string): { path: string; query: URLSearchParams } {
  const q = target.indexOf('?');
  return q < 0
    ? { path: target, query: new URLSearchParams() }
    : { path: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
}

export function toApiRequest(
  req: IncomingMessage,
  target: string,
  body: Buffer | undefined,
  remoteAddress: string | undefined,
): ApiRequest {
  const { path, query } = splitTarget(target);
  return { method: req.method ?? 'GET', path, query, headers: req.headers, body, remoteAddress };
}

export function send(res: ServerResponse, out: ApiResponse, close = false): void {
  if (res.headersSent) return;
  res.statusCode = out.status;
  for (const [k, v] of Object.entries(out.headers)) res.setHeader(k, v);
  if (close) {
    res.setHeader('connection', 'close');
    lingerBeforeClosing(res);
  }
  res.end(out.body.endsWith('\n') ? out.body : `${out.body}\n`);
}

/** How long a connection closed while its client is still sending keeps reading before it is torn down. */
const LINGER_MS = 2000;

/**
 * After an answer that closes the connection while the client is still sending, keep reading (and discarding) for
 * a moment before the socket is destroyed: closing a socket that has unread data sends a TCP reset, and a client
 * that is still writing can then lose the answer it has not read yet (it sees EPIPE instead of the 400).
 */
function lingerBeforeClosing(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  const destroy = socket.destroy.bind(socket);
  let lingering = false;
  socket.destroy = ((err?: Error) => {
    if (lingering) return socket;
    lingering = true;
    socket.on('data', () => undefined);
    socket.resume();
    setTimeout(() => destroy(err), LINGER_MS).unref();
    return socket;
  }) as typeof socket.destroy;
}

export function sendError(res: ServerResponse, e: RpcError, close = false): void {
  send(res, renderError(e), close);
}

/** Cancels the request's work when the client goes away before the answer. */
export function cancelOnClose(res: ServerResponse): { signal: AbortSignal; done: () => void } {
  const cancelled = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) cancelled.abort();
  };
  res.once('close', onClose);
  return { signal: cancelled.signal, done: () => res.off('close', onClose) };
}

/**
 * The answer to a request Node's HTTP parser refused before any listener saw it (a request target that is not a
 * path, such as `?x`; headers over the size limit; a malformed request line): the google.rpc envelope instead of
 * Node's bare 400, then the connection is closed. Install with `server.on('clientError', answerClientError)`.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? RpcError.invalidArgument('The request headers are too large; send smaller headers.')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new RpcError('DEADLINE_EXCEEDED', 'The request was not received in time.')
        : RpcError.invalidArgument(
            'The request could not be read as HTTP/1.1; its request line or headers are malformed. Request targets are paths such as /v1/projects/{project}/locations/{location}/keyRings.',
          );
  const out = renderError(e);
  const head = [
    `HTTP/1.1 ${out.status} ${STATUS_CODES[out.status] ?? ''}`,
    ...Object.entries(out.headers).map(([k, v]) => `${k}: ${v}`),
    `content-length: ${Buffer.byteLength(out.body)}`,
    'connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${out.body}`);
}
