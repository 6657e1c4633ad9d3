import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { LogEntry } from '../log.js';

/** What a handler answers. `outcome` is 'OK' or the protocol's error name, for the request log. */
export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  outcome: string;
}

export interface RequestContext {
  /** HTTP/1.1 or HTTP/2 (compatibility API); `headers.host` is set from :authority for HTTP/2. */
  req: IncomingMessage | Http2ServerRequest;
  method: string;
  /** The path without the query string. */
  path: string;
  query: string;
  body: Buffer;
  /** Origin of the listener that received the request, e.g. https://127.0.0.1:8191. */
  origin: string;
  /** Filled by handlers for the request log: principal, justification, kmsRequestId... never secrets. */
  fields: LogEntry;
}

/** A matched route: who answers, and how that protocol shapes an error. */
export interface Route {
  protocol: 'google-ekm' | 'xks' | 'liveness' | 'none';
  operation: string;
  keyId?: string;
  run(ctx: RequestContext): Promise<Reply>;
  /** Converts anything thrown by run() (or an injected status) into this protocol's error reply. */
  fail(error: unknown, ctx: RequestContext): Reply;
  injectedStatus(status: number): Reply;
}
