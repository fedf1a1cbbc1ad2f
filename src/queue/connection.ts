/**
 * The Redis behind the queue: `redis://[user:password@]host[:port][/db]` (or `rediss://` for
 * TLS). Every command that takes `--queue` first checks, with a short timeout, that the server
 * answers, so that a wrong URL is one clear error naming it instead of a silent wait; after
 * that the connections reconnect on their own (a Redis restart does not end a long run).
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface QueueUrl {
  /** As given (with any password masked), for messages. */
  display: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/** Parses a `--queue` URL; an error names the URL and the expected form. */
export function parseQueueUrl(url: string): QueueUrl {
  const form = 'expected redis://host:port/db, e.g. redis://127.0.0.1:6379/0';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue ${url}: not a URL (${form})`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`--queue ${url}: the scheme must be redis:// or rediss:// (${form})`);
  if (!u.hostname) throw new Error(`--queue ${url}: no host (${form})`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const path = u.pathname.replace(/^\/+/, '');
  const db = path === '' ? 0 : Number(path);
  if (!Number.isInteger(db) || db < 0)
    throw new Error(`--queue ${url}: the database "${path}" is not a whole number (${form})`);
  const masked = new URL(u.href);
  if (masked.password) masked.password = '***';
  return {
    display: masked.href,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port,
    db,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === 'rediss:',
  };
}

function options(q: QueueUrl): RedisOptions {
  return {
    host: q.host,
    port: q.port,
    db: q.db,
    username: q.username,
    password: q.password,
    tls: q.tls ? {} : undefined,
    // BullMQ's blocking commands wait as long as they need; its workers require this.
    maxRetriesPerRequest: null,
  };
}

/**
 * A connection for BullMQ, after a probe has shown within `timeoutMs` that the server
 * answers (else an error naming the URL and why).
 */
export async function connectRedis(url: string, opts: { timeoutMs?: number } = {}): Promise<Redis> {
  const q = parseQueueUrl(url);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const probe = new Redis({
    ...options(q),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  let lastError: Error | null = null;
  probe.on('error', (e: Error) => (lastError = e));
  try {
    await Promise.race([
      probe.connect().then(() => probe.ping()),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref(),
      ),
    ]);
  } catch (err) {
    const why = (lastError ?? (err as Error)).message || String(err);
    throw new Error(`cannot reach the queue's Redis at ${q.display}: ${why}`);
  } finally {
    probe.disconnect();
  }
  const conn = new Redis(options(q));
  // Reconnects are ioredis' business; without a listener an error event would end the process.
  conn.on('error', () => {});
  return conn;
}
