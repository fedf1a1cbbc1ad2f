/**
 * A real redis-server for the queue tests (127.0.0.1, a free port, no persistence), and
 * lemer CLI processes (coordinators, workers) as separate processes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';

export const ROOT = resolve(import.meta.dirname, '../..');
export const MAIN = join(ROOT, 'src/cli/main.ts');

/** Why the queue tests cannot run here, or null when redis-server is installed. */
export function redisMissing(): string | null {
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return r.error || r.status !== 0
    ? 'redis-server is not installed (Debian: apt-get install redis-server): the queue tests are skipped'
    : null;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Starts redis-server on 127.0.0.1 with a random port and no persistence; resolves once it answers. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'lemer-redis-'));
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}/0`;
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null });
  probe.on('error', () => {});
  for (let i = 0; ; i++) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch (err) {
      if (i > 100 || proc.exitCode !== null) throw new Error(`redis-server did not start: ${String(err)}`);
      probe.disconnect();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  return {
    url,
    port,
    stop: async () => {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface LemerProcess {
  proc: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once stderr matches (or rejects after `ms`, with what it said). */
  waitFor(re: RegExp, ms?: number): Promise<void>;
}

/** `lemer <args>` as its own process. */
export function spawnLemer(args: string[], env: NodeJS.ProcessEnv): LemerProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    proc.on('exit', (code, signal) => done({ code, signal })),
  );
  return {
    proc,
    stderr: () => err,
    stdout: () => out,
    exited,
    waitFor: async (re, ms = 120_000) => {
      const t0 = Date.now();
      while (!re.test(err)) {
        if (proc.exitCode !== null || proc.signalCode !== null || Date.now() - t0 > ms)
          throw new Error(`lemer ${args.join(' ')}: no ${re} in its stderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Runs `lemer <args>` to its end. */
export async function runLemer(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnLemer(args, env);
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** Ends a process (if still running) and waits for it. */
export async function stop(p: LemerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill(signal);
  await p.exited;
}
