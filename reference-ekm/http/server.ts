import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  constants as h2constants,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DomainError } from '../core/errors.js';
import type { FaultInjector } from '../core/faults.js';
import type { LogEntry, Logger } from '../log.js';
import type { StateStore } from '../state/state-store.js';
import type { Reply, RequestContext, Route } from './types.js';

/** Largest request body read; beyond it the protocol's "too large" error is returned. */
export const MAX_BODY_BYTES = 512 * 1024;

export interface ServerDeps {
  state: StateStore;
  faults: FaultInjector;
  log: Logger;
  /** Finds the route for a request: Google EKM, XKS, or undefined. */
  match(method: string, path: string): Route | undefined;
}

const LIVENESS_PATHS = new Set(['/healthz', '/livez']);

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

/**
 * The EKM's HTTP front: one request handler behind a plain-HTTP listener (always loopback, HTTP/1.1) and an
 * HTTPS listener that serves HTTP/2 and HTTP/1.1, chosen by ALPN, as production EKMs and load balancers do.
 * It reads the body, applies injected faults, runs the route, writes single-line JSON and logs one structured
 * line per request.
 */
export class EkmHttpServer {
  private readonly servers: Array<Server | Http2SecureServer> = [];
  private readonly stopping = new AbortController();

  constructor(private readonly deps: ServerDeps) {}

  async listen(options: {
    scheme: 'http' | 'https';
    host: string;
    port: number;
    tls?: { cert: string; key: string };
  }): Promise<string> {
    let origin = '';
    const handler = (req: AnyRequest, res: AnyResponse) => {
      void this.handle(req, res, origin);
    };
    let server: Server | Http2SecureServer;
    if (options.scheme === 'https') {
      const secure = createSecureServer(
        {
          cert: options.tls!.cert,
          key: options.tls!.key,
          minVersion: 'TLSv1.2',
          allowHTTP1: true,
          // Room for the many concurrent streams a gateway sends over its one connection.
          settings: { maxConcurrentStreams: 1000 },
        },
        handler,
      );
      // The HTTP/1.1 side keeps idle connections as long as the plain listener does.
      secure.setTimeout(65_000);
      server = secure;
    } else {
      const plain = createHttpServer(handler);
      plain.keepAliveTimeout = 65_000;
      server = plain;
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    this.sessions(server);
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    origin = `${options.scheme}://${host}:${port}`;
    this.servers.push(server);
    return origin;
  }

  /** Open HTTP/2 sessions and HTTP/1.1 sockets of the HTTPS listener, to end them on close. */
  private readonly open = new Set<{ destroy(): void }>();

  private sessions(server: Server | Http2SecureServer): void {
    if (!('closeAllConnections' in server)) {
      server.on('session', (session) => {
        this.open.add(session);
        session.once('close', () => this.open.delete(session));
      });
      server.on('secureConnection', (socket) => {
        this.open.add(socket);
        socket.once('close', () => this.open.delete(socket));
      });
    }
  }

  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            if ('closeAllConnections' in server) server.closeAllConnections();
          }),
      ),
    );
    for (const s of this.open) s.destroy();
  }

  private async handle(req: AnyRequest, res: AnyResponse, origin: string): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    // The client's port names the connection (read now: a closed socket no longer has it).
    const remotePort = req.socket?.remotePort;
    // HTTP/2 carries the host as :authority; the XKS signature covers `host`.
    if (req.headers.host === undefined && typeof req.headers[':authority'] === 'string') {
      req.headers.host = req.headers[':authority'];
    }
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const fields: LogEntry = {};
    const logRequest = (route: Route | undefined, status: number, outcome: string) =>
      this.deps.log.info({
        msg: 'request',
        protocol: route?.protocol ?? 'none',
        operation: route?.operation ?? 'unknown',
        method,
        http: req.httpVersion,
        remotePort,
        keyId: route?.keyId,
        ...fields,
        outcome,
        status,
        latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
      });

    if (LIVENESS_PATHS.has(path) && (method === 'GET' || method === 'HEAD')) {
      send(res, { status: 200, body: { status: 'SERVING' }, outcome: 'OK' });
      return;
    }
    let route: Route | undefined;
    try {
      route = this.deps.match(method, path);
    } catch (error) {
      this.deps.log.error({ msg: 'routing failed', path: path.slice(0, 200) }, error);
    }
    if (!route) {
      send(res, {
        status: 404,
        body: { error: 'NOT_FOUND', message: 'no such path at this EKM' },
        outcome: 'NOT_FOUND',
      });
      logRequest(undefined, 404, 'NOT_FOUND');
      return;
    }
    const ctx: RequestContext = {
      req,
      method,
      path,
      query: q === -1 ? '' : rawUrl.slice(q + 1),
      body: Buffer.alloc(0),
      origin,
      fields,
    };
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === 'aborted') return;
    if (body === 'too-large') {
      const reply = route.fail(
        new DomainError('PAYLOAD_TOO_LARGE', `the request body exceeds ${MAX_BODY_BYTES} bytes`),
        ctx,
      );
      send(res, { ...reply, headers: { ...reply.headers, connection: 'close' } });
      logRequest(route, reply.status, reply.outcome);
      return;
    }
    ctx.body = body;

    let state: ReturnType<StateStore['read']> | undefined;
    try {
      state = this.deps.state.read();
    } catch (error) {
      this.deps.log.error({ msg: 'state file unreadable' }, error);
    }
    const fault = state ? this.deps.faults.pick(state.faults, route.keyId) : undefined;
    if (fault) {
      fields.fault = fault.value === undefined ? fault.kind : `${fault.kind}=${fault.value}`;
      switch (fault.kind) {
        case 'hang':
          logRequest(route, 0, 'FAULT_HANG');
          return; // never answered; the connection is closed when the client gives up or the EKM stops
        case 'reset':
          logRequest(route, 0, 'FAULT_RESET');
          if ('stream' in req) {
            // HTTP/2: reset the stream (the connection and its other streams live on).
            req.stream.close(h2constants.NGHTTP2_INTERNAL_ERROR);
            return;
          }
          try {
            req.socket.resetAndDestroy();
          } catch {
            // A TLS socket cannot send a TCP RST (ERR_INVALID_HANDLE_TYPE): drop the connection instead.
            req.socket.destroy();
          }
          return;
        case 'garbage':
          (res as ServerResponse).writeHead(200, { 'content-type': 'application/json' });
          res.end('\u0000\u00ff{"not json');
          logRequest(route, 200, 'FAULT_GARBAGE');
          return;
        case 'oversize': {
          // A well-formed JSON answer of 4 MiB, streamed without Content-Length (a client must bound its read).
          const out = res as ServerResponse;
          out.writeHead(200, { 'content-type': 'application/json' });
          const chunk = 'A'.repeat(64 * 1024);
          out.write('{"wrappedBlob":"');
          for (let i = 0; i < 64 && !out.destroyed; i++) out.write(chunk);
          out.end('"}');
          logRequest(route, 200, 'FAULT_OVERSIZE');
          return;
        }
        case 'status': {
          const reply = route.injectedStatus(fault.value ?? 500);
          send(res, reply);
          logRequest(route, reply.status, `FAULT_${reply.outcome}`);
          return;
        }
        case 'latency':
          try {
            await sleep(fault.value ?? 0, undefined, { signal: this.stopping.signal });
          } catch {
            return;
          }
          break;
      }
    }

    let reply: Reply;
    try {
      reply = await route.run(ctx);
    } catch (error) {
      reply = route.fail(error, ctx);
    }
    send(res, reply);
    logRequest(route, reply.status, reply.outcome);
  }
}

function send(res: AnyResponse, reply: Reply): void {
  if (res.headersSent || (isH2(res) ? res.stream.destroyed : res.destroyed)) return;
  const payload = reply.body === undefined ? '' : JSON.stringify(reply.body);
  const headers: Record<string, string | number> = {
    ...reply.headers,
    'content-length': Buffer.byteLength(payload),
  };
  if (payload) headers['content-type'] = 'application/json';
  res.writeHead(reply.status, headers);
  res.end(payload);
}

function isH2(res: AnyResponse): res is Http2ServerResponse {
  return 'stream' in res && res.stream !== undefined;
}

function readBody(req: AnyRequest, limit: number): Promise<Buffer | 'too-large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (value: Buffer | 'too-large' | 'aborted') => {
      if (done) return;
      done = true;
      resolve(value);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        finish('too-large');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => finish(Buffer.concat(chunks)));
    req.once('error', () => finish('aborted'));
    req.once('aborted', () => finish('aborted'));
  });
}
