/**
 * The seam between the functions framework and the core. Two jobs:
 *
 * 1. Bodies: the framework parses JSON bodies before our code runs, and answers malformed JSON (or the `""`
 *    empty message the Node client sends) with an HTML page. We want every answer in the google.rpc envelope,
 *    so a small hook on the framework's Express application marks JSON bodies as raw bytes before its parsers
 *    run; the core then parses them itself (shared/api/decode.ts). Anything the framework still fails on is
 *    answered by a final handler in the envelope instead of Express's HTML page.
 * 2. One Gateway per instance, made on first use from the environment, shared by the functions loaded here.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { HttpFunction, Request, Response } from '@google-cloud/functions-framework';
import { type ApiRequest, type ApiResponse, Gateway } from '../shared/api/app.js';
import { envelope, httpStatus } from '../shared/api/envelope.js';
import type { FunctionName } from '../shared/api/routes.js';
import { RpcError } from '../shared/errors.js';

const ORIGINAL_CONTENT_TYPE = 'x-openekm-original-content-type';

type Handle = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;

function writeError(res: ServerResponse, e: RpcError): void {
  if (res.headersSent) return;
  res.statusCode = httpStatus(e.code);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(envelope(e)));
}

function installExpressHook(): void {
  const requireFromFramework = createRequire(require_resolve('@google-cloud/functions-framework'));
  const express = requireFromFramework('express') as { application: { handle: Handle; __openekm?: boolean } };
  const app = express.application;
  if (app.__openekm) return;
  const original = app.handle;
  app.handle = function handle(this: unknown, req, res, next) {
    const ct = req.headers['content-type'];
    if (ct !== undefined) {
      req.headers[ORIGINAL_CONTENT_TYPE] = ct;
      req.headers['content-type'] = 'application/octet-stream';
    }
    const done =
      next ??
      ((err?: unknown) => {
        if (err === undefined) {
          writeError(res, new RpcError('NOT_FOUND', 'Not found.'));
          return;
        }
        const status = (err as { status?: number }).status;
        writeError(
          res,
          status === 413
            ? RpcError.invalidArgument('The request body is too large.')
            : status && status < 500
              ? RpcError.invalidArgument('The request could not be read; send a JSON body.')
              : RpcError.internal(err),
        );
      });
    return original.call(this, req, res, done);
  };
  app.__openekm = true;
}

function require_resolve(id: string): string {
  return createRequire(import.meta.url).resolve(id);
}

installExpressHook();

let gateway: Gateway | undefined;
let gatewayError: unknown;

/** The instance's Gateway; a configuration error is remembered and reported on every request. */
export function getGateway(): Gateway {
  if (gateway) return gateway;
  if (gatewayError) throw gatewayError;
  try {
    gateway = new Gateway();
    return gateway;
  } catch (err) {
    gatewayError = err;
    process.stderr.write(
      `${JSON.stringify({ severity: 'CRITICAL', message: `OpenEKM cannot start: ${(err as Error).message}` })}\n`,
    );
    throw err;
  }
}

/** Lets the local stack and tests supply their own Gateway (e.g. with a test clock). */
export function setGateway(g: Gateway): void {
  gateway = g;
  gatewayError = undefined;
}

function toApiRequest(req: Request): ApiRequest {
  const url = new URL(req.originalUrl ?? req.url, 'http://localhost');
  const raw =
    (req as Request & { rawBody?: Buffer }).rawBody ?? (Buffer.isBuffer(req.body) ? req.body : undefined);
  return {
    method: req.method,
    path: url.pathname,
    query: url.searchParams,
    headers: req.headers,
    body: raw,
    remoteAddress: req.ip ?? req.socket.remoteAddress,
  };
}

function send(res: Response, out: ApiResponse): void {
  res.status(out.status);
  for (const [k, v] of Object.entries(out.headers)) res.setHeader(k, v);
  res.end(out.body);
}

/** The HTTP function for one of the four function names. */
export function httpFunction(name: FunctionName): HttpFunction {
  return async (req, res) => {
    let g: Gateway;
    try {
      g = getGateway();
    } catch {
      writeError(
        res,
        new RpcError(
          'UNAVAILABLE',
          'The service is misconfigured and cannot serve requests; its operator has been told in the logs.',
        ),
      );
      return;
    }
    // A client that goes away before the answer cancels the request, and with it any EKM call in flight.
    const cancelled = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) cancelled.abort();
    };
    res.once('close', onClose);
    const out = await g.handle(name, { ...toApiRequest(req), signal: cancelled.signal });
    res.off('close', onClose);
    send(res, out);
  };
}
