/**
 * Structured logs: one JSON object per line on stdout, in the shape Cloud Logging ingests (severity, message,
 * httpRequest, logging.googleapis.com/trace-free labels). Callers pass only identifiers and outcomes; no
 * function here accepts a body, a token or key material.
 */
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const SEVERITY: Record<Level, string> = { debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR' };

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
}

export function createLogger(
  level: Level,
  write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Logger {
  const min = ORDER[level];
  const emit = (lvl: Level, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    write(JSON.stringify({ severity: SEVERITY[lvl], message, ...fields, time: new Date().toISOString() }));
  };
  return {
    request(e) {
      const lvl: Level = e.status >= 500 ? 'error' : 'info';
      if (ORDER[lvl] < min) return;
      emit(lvl, `${e.method} ${e.path} ${e.status}`, {
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
      });
    },
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    entry: (e) => write(JSON.stringify(e)),
  };
}
