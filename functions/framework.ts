/**
 * The seam between the functions framework (Cloud Functions, the Firebase emulator) and the core.
 *
 * The framework parses bodies with body-parser before user code runs (inflating gzip, up to 1 GiB) and answers
 * malformed JSON with an HTML page. The framework offers no supported way to change either, so a hook on its
 * Express application reads the body itself first — bounded, uncompressed, with functions/request.ts like every
 * other entry point — and answers anything the framework still fails on in the google.rpc envelope. The hook
 * relies on Express internals that the framework bundles: the framework is pinned to an exact version in
 * package.json, and test/integration/functions-framework.test.ts fails if the hook stops taking effect.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { HttpFunction, Request } from '@google-cloud/functions-framework';
import type { FunctionName } from '../shared/api/routes.js';
import { RpcError } from '../shared/errors.js';
import { gatewayOrUnavailable } from './instance.js';
import { cancelOnClose, readBody, send, sendError, toApiRequest } from './request.js';

type Handle = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;
type ReadRequest = IncomingMessage & { rawBody?: Buffer; body?: unknown; _body?: boolean };

function installExpressHook(): void {
  const requireFromFramework = createRequire(
    createRequire(import.meta.url).resolve('@google-cloud/functions-framework'),
  );
  const express = requireFromFramework('express') as { application: { handle: Handle; __openekm?: boolean } };
  const app = express.application;
  if (app.__openekm) return;
  const original = app.handle;
  app.handle = function handle(this: unknown, req: ReadRequest, res, next) {
    const done =
      next ??
      ((err?: unknown) => {
        if (err === undefined) {
          sendError(res, new RpcError('NOT_FOUND', 'Not found.'));
          return;
        }
        const status = (err as { status?: number }).status;
        sendError(
          res,
          status && status < 500
            ? RpcError.invalidArgument('The request could not be read; send a JSON body.')
            : RpcError.internal(err),
        );
      });
    const gateway = gatewayOrUnavailable(req, res);
    if (!gateway) return;
    readBody(req, gateway.deps.config.maxRequestBytes).then(
      (read) => {
        if (read.error) {
          sendError(res, read.error, read.close);
          return;
        }
        // The body is read: body-parser sees a finished request and leaves it alone.
        req.rawBody = read.body;
        req.body = read.body;
        original.call(this, req, res, done);
      },
      (err: unknown) => sendError(res, RpcError.internal(err)),
    );
  };
  app.__openekm = true;
}

installExpressHook();

/** The HTTP function for one of the four function names. */
export function httpFunction(name: FunctionName): HttpFunction {
  return async (req: Request, res) => {
    const gateway = gatewayOrUnavailable(req, res);
    if (!gateway) return;
    const raw = (req as ReadRequest).rawBody;
    const cancel = cancelOnClose(res);
    const out = await gateway.handle(name, {
      ...toApiRequest(req, req.originalUrl ?? req.url, raw, req.socket.remoteAddress),
      signal: cancel.signal,
    });
    cancel.done();
    send(res, out);
  };
}
