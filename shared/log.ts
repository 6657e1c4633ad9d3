/**
 * Structured logs: one JSON object per line, in the shape Cloud Logging ingests (severity, message, httpRequest,
 * logging.googleapis.com/trace-free labels). Callers pass only identifiers and outcomes; no function here accepts a
 * body, a token or key material.
 *
 * Where lines go is the sink's business, not the callers': JSON to stdout by default (what Cloud Functions and
 * Lambda collect); with `file`, JSON lines are appended to that file instead; with format `human` (the local stack
 * on a terminal), stdout gets one short line per request, warning and error, while the JSON lines — requests, audit
 * entries, metric points — go only to the file.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const SEVERITY: Record<Level, string> = { debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR' };

export type LogFormat = 'json' | 'human';

export interface RequestLog {
  function: string;
  requestId: string;
  method: string;
  path: string;
  operation?: string;
  status: number;
  errorCode?: string;
  principal?: string;
  remoteIp?: string;
  userAgent?: string;
  latencyMs: number;
}

export interface Logger {
  request(entry: RequestLog): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** Writes a ready-made structured entry (an audit entry, a metric point) whatever the log level. */
  entry(entry: Record<string, unknown>): void;
  /** Closes the log file, if there is one. */
  close?(): void;
}

export interface LoggerOptions {
  /** `json` (default): every entry as a JSON line. `human`: short lines for a person, JSON only to `file`. */
  format?: LogFormat;
  /** Append the JSON lines to this file (made with its directory if needed) instead of writing them to stdout. */
  file?: string;
  /** Where lines for stdout go (default process.stdout): JSON lines in `json` format, short lines in `human`. */
  write?: (line: string) => void;
}

/** `12:03:04.123`, local time: what a person reading a terminal needs. */
function clock(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function latency(ms: number): string {
  return ms >= 1000
    ? `${(ms / 1000).toFixed(2)} s`
    : ms >= 10
      ? `${Math.round(ms)} ms`
      : `${ms.toFixed(1)} ms`;
}

/** The human line of a request: time, method, path, status (and error code), latency, principal. */
export function humanRequestLine(e: RequestLog, at = new Date()): string {
  const status = e.errorCode ? `${e.status} ${e.errorCode}` : String(e.status);
  return `${clock(at)} ${e.method} ${e.path} ${status} ${latency(e.latencyMs)}${e.principal ? ` ${e.principal}` : ''}`;
}

function fileWriter(path: string): { write(line: string): void; close(): void } {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Synchronous appends: nothing is lost when the process exits right after a request.
  let fd: number | undefined = openSync(path, 'a', 0o600);
  return {
    write(line) {
      if (fd !== undefined) writeSync(fd, `${line}\n`);
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

const toStdout = (l: string) => {
  process.stdout.write(`${l}\n`);
};

/**
 * A logger at `level`. The second argument is the sink: a function receiving each JSON line (tests, benches), or
 * options choosing the format and a log file.
 */
export function createLogger(level: Level, sink: ((line: string) => void) | LoggerOptions = {}): Logger {
  const options: LoggerOptions = typeof sink === 'function' ? { write: sink } : sink;
  const format = options.format ?? 'json';
  const out = options.write ?? toStdout;
  const file = options.file ? fileWriter(options.file) : undefined;
  /** A JSON line: to the file if there is one, else to stdout in json format (dropped in human format). */
  const json = (line: string) => {
    if (file) file.write(line);
    else if (format === 'json') out(line);
  };
  const human = format === 'human' ? out : undefined;
  const min = ORDER[level];
  const emit = (lvl: Level, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    const at = new Date();
    json(JSON.stringify({ severity: SEVERITY[lvl], message, ...fields, time: at.toISOString() }));
    if (human && lvl !== 'debug' && lvl !== 'info') human(`${clock(at)} ${SEVERITY[lvl]} ${message}`);
  };
  return {
    request(e) {
      const lvl: Level = e.status >= 500 ? 'error' : 'info';
      if (ORDER[lvl] < min) return;
      const at = new Date();
      json(
        JSON.stringify({
          severity: SEVERITY[lvl],
          message: `${e.method} ${e.path} ${e.status}`,
          httpRequest: {
            requestMethod: e.method,
            requestUrl: e.path,
            status: e.status,
            remoteIp: e.remoteIp,
            userAgent: e.userAgent,
            latency: `${(e.latencyMs / 1000).toFixed(6)}s`,
          },
          function: e.function,
          requestId: e.requestId,
          operation: e.operation,
          principal: e.principal,
          errorCode: e.errorCode,
          time: at.toISOString(),
        }),
      );
      human?.(humanRequestLine(e, at));
    },
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    entry: (e) => json(JSON.stringify(e)),
    close: () => file?.close(),
  };
}
