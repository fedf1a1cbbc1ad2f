import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The level from the flag, else `LEMER_LOG_LEVEL`, else 'info'; unknown names are errors. */
export function resolveLogLevel(flag?: string, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const raw = (flag ?? (env.LEMER_LOG_LEVEL || undefined) ?? 'info').trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
    const from = flag !== undefined ? '--log-level' : 'LEMER_LOG_LEVEL';
    throw new Error(`${from}: unknown log level "${raw}" (one of ${LOG_LEVELS.join(', ')})`);
  }
  return raw as LogLevel;
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/**
 * Turns pino's JSON lines into `lemer warn: message key=value` for people reading a
 * terminal or a CI log; pino-pretty would be one more dependency for the same.
 */
export function prettyStream(out: { write(s: string): unknown } = process.stderr): DestinationStream {
  return {
    write(line: string) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const level = LEVEL_NAMES[rec.level as number] ?? String(rec.level);
      const extra = Object.entries(rec)
        .filter(([k]) => !SKIP.has(k))
        .map(([k, v]) => {
          if (k === 'err' && v && typeof v === 'object' && 'stack' in v)
            return `\n${String((v as { stack: unknown }).stack)}`;
          return ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
        })
        .join('');
      out.write(`lemer ${level}: ${String(rec.msg ?? '')}${extra}\n`);
    },
  };
}

export interface LoggerOptions {
  level?: string;
  /** 'pretty' (default; `LEMER_LOG_FORMAT=json` switches) or 'json' (one object per line, for services). */
  format?: 'pretty' | 'json';
  /** Default: standard error, so that standard output carries only results. */
  stream?: { write(s: string): unknown };
}

/** A pino logger writing to standard error. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = resolveLogLevel(opts.level);
  const envFormat = process.env.LEMER_LOG_FORMAT;
  const format = opts.format ?? (envFormat === 'json' ? 'json' : 'pretty');
  const out = opts.stream ?? process.stderr;
  const dest: DestinationStream =
    format === 'json' ? { write: (s: string) => void out.write(s) } : prettyStream(out);
  return pino({ level, base: undefined }, dest);
}
