/** One structured line per event. Callers never put plaintext, key material, tokens or secrets in it. */
export type LogEntry = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  info(entry: LogEntry): void;
  error(entry: LogEntry, cause?: unknown): void;
}

export function createLogger(sink: (line: string) => void): Logger {
  const write = (level: string, entry: LogEntry) =>
    sink(JSON.stringify({ time: new Date().toISOString(), level, component: 'reference-ekm', ...entry }));
  return {
    info: (entry) => write('info', entry),
    error: (entry, cause) => write('error', { ...entry, cause: describeCause(cause) }),
  };
}

/** The underlying error's class and message (PKCS#11 return values, OS errors): for operators, never callers. */
function describeCause(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  const parts: string[] = [];
  let current: unknown = cause;
  for (let depth = 0; current !== undefined && depth < 4; depth += 1) {
    if (current instanceof Error) {
      parts.push(`${current.name}: ${current.message}`);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(' <- ').slice(0, 1000);
}
