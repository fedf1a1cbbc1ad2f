/**
 * `lemer serve [--model <dir>]`: the HTTP service (src/serve) on 127.0.0.1:8080 by default;
 * SIGTERM / SIGINT stop accepting, finish the requests in flight, then exit. With no --model
 * (and no LEMER_MODEL) it serves the demo model, trained on first use and cached.
 */
import type { Command } from 'commander';
import { modelDirOrDemo } from '../../predict/demo-model.js';
import { createServer, DEFAULT_LIMITS } from '../../serve/index.js';
import { contextOf, intOption, type CliIo } from '../common.js';

interface ServeCliOptions {
  model?: string;
  port: number;
  host: string;
  int8?: boolean;
  threads?: number;
  batchSize: number;
  maxQueue: number;
  maxSeconds: number;
  maxTextChars: number;
  maxBodyMb: number;
  timeout: number;
  bodyTimeout: number;
}

export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('serve a model folder over HTTP: POST /v1/predict, /healthz, /metrics, /openapi.json')
    .option(
      '--model <dir>',
      'model folder written by `lemer export` (default $LEMER_MODEL, else the demo model, trained on first use)',
    )
    .option('--port <n>', 'TCP port (0: any free port)', intOption(0), 8080)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--int8', "run the model folder's int8 graph (export --quantize int8)")
    .option('--threads <n>', 'ONNX Runtime threads (default: one per core)', intOption(1))
    .option(
      '--batch-size <n>',
      'most waiting predictions run together in one batch (1: one at a time)',
      intOption(1),
      8,
    )
    .option(
      '--max-queue <n>',
      'predictions running or waiting before 503',
      intOption(1),
      DEFAULT_LIMITS.maxQueue,
    )
    .option('--max-seconds <s>', 'longest audio accepted, in seconds', Number, DEFAULT_LIMITS.maxSeconds)
    .option('--max-text-chars <n>', 'longest transcript accepted', intOption(1), DEFAULT_LIMITS.maxTextChars)
    .option(
      '--max-body-mb <n>',
      'largest audio upload, in MiB',
      Number,
      DEFAULT_LIMITS.maxBodyBytes / 2 ** 20,
    )
    .option(
      '--timeout <s>',
      'a prediction taking longer is answered 504',
      Number,
      DEFAULT_LIMITS.timeoutMs / 1000,
    )
    .option(
      '--body-timeout <s>',
      'a client that has not sent its whole request by then gets 408 and is disconnected',
      Number,
      DEFAULT_LIMITS.requestTimeoutMs / 1000,
    )
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const o = cmd.opts<ServeCliOptions>();
      for (const [k, v] of Object.entries({
        '--max-seconds': o.maxSeconds,
        '--max-body-mb': o.maxBodyMb,
        '--timeout': o.timeout,
        '--body-timeout': o.bodyTimeout,
      }))
        if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive number, got ${v}`);
      const dir = await modelDirOrDemo(o.model, {
        log: (m) => ctx.log.info(m),
        warn: (m) => ctx.log.warn(m),
        progress: ctx.progress,
      });
      ctx.log.info(`loading ${dir}`);
      const server = await createServer({
        model: dir,
        int8: o.int8,
        threads: o.threads,
        batchSize: o.batchSize,
        limits: {
          maxQueue: o.maxQueue,
          maxSeconds: o.maxSeconds,
          maxTextChars: o.maxTextChars,
          maxBodyBytes: Math.round(o.maxBodyMb * 2 ** 20),
          timeoutMs: o.timeout * 1000,
          requestTimeoutMs: o.bodyTimeout * 1000,
        },
        log: (level, msg) => ctx.log[level](msg),
      });
      const { url } = await server.listen(o.port, o.host);
      ctx.log.info(
        `serving ${server.info.dir} (${server.info.kind}: ${server.info.labels.join(', ')}) on ${url}: POST ${url}/v1/predict`,
      );
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          ctx.log.info(`${signal}: finishing ${server.pool.depth} prediction(s) in flight, then stopping`);
          server.close().then(resolve, (err: Error) => {
            ctx.log.error(`shutdown: ${err.message}`);
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      ctx.log.info('stopped');
    });
}
