/**
 * `lemer worker --queue redis://host:port/db [--store <dir>]`: runs the fold jobs that `lemer
 * cv|grid|ablate --queue` put on the queue (src/queue). Also the `--queue` option those
 * commands share, and their queued branches. The queue code is loaded only when `--queue`
 * is given: a local run never needs Redis nor BullMQ.
 */
import type { Command } from 'commander';
import type { CvResult, RunModel } from '../../train/cv.js';
import type { CellRunOptions } from '../../train/grid.js';
import { contextOf, intOption, type CliIo, type CommandContext, type CorpusCliOptions } from '../common.js';
import type { ResolvedRun } from './cv.js';

export interface QueueCliOptions {
  queue?: string;
  attempts?: number;
}

/** `--queue <url>` and `--attempts <n>`, on cv, grid and ablate. */
export function queueOptions(cmd: Command): Command {
  return cmd
    .option(
      '--queue <url>',
      'run the folds as jobs on this Redis queue (redis://host:port/db) for `lemer worker` processes, and wait for them',
    )
    .option(
      '--attempts <n>',
      'with --queue: attempts per job for errors that may go away (default 3); bad configs and missing files fail at once',
      intOption(1),
    );
}

const queueModule = () => import('../../queue/index.js');

async function queueRun(ctx: CommandContext, opts: CorpusCliOptions & QueueCliOptions, run: ResolvedRun) {
  const q = await queueModule();
  return {
    q,
    base: {
      url: opts.queue!,
      corpus: run.corpus,
      corpusSpec: run.spec,
      load: q.corpusLoadOf(
        {
          classes: opts.classes,
          split: opts.split,
          labelMap: run.config.labelMap,
          invalidUtf8: opts.invalidUtf8 ?? run.config.invalidUtf8,
        },
        run.corpus,
      ),
      attempts: opts.attempts,
      stream: ctx.io.stderr,
      log: (m: string) => ctx.log.info(m),
      warn: (m: string) => ctx.log.warn(m),
    },
  };
}

/** `lemer cv --queue`: the same result as a local run, plus `failures` where jobs failed. */
export async function cvOnQueue(
  ctx: CommandContext,
  opts: CorpusCliOptions & QueueCliOptions,
  run: ResolvedRun,
  folds: string[] | undefined,
): Promise<CvResult> {
  const { q, base } = await queueRun(ctx, opts, run);
  const { result } = await q.crossValidateOnQueue({
    ...base,
    config: run.config,
    model: run.model as RunModel,
    out: run.out,
    folds,
    progress: ctx.progress,
  });
  return result;
}

/**
 * `lemer grid|ablate --queue`: options for runGrid / runAblation that run every cell's folds
 * on the queue first, and `finish`, which adds the failed jobs to the report (JSON and
 * markdown) and then ends the command with an error naming them.
 */
export async function cellsOnQueue(
  ctx: CommandContext,
  opts: CorpusCliOptions & QueueCliOptions & { force?: boolean },
  run: ResolvedRun,
): Promise<{
  options: Pick<CellRunOptions, 'beforeCells' | 'summaryOnly'>;
  finish<T extends { files: { markdown: string; json: string } }>(r: T): T;
}> {
  const { q, base } = await queueRun(ctx, opts, run);
  const hook = q.cellsOnQueue({ ...base, force: opts.force });
  return {
    options: { beforeCells: hook.beforeCells, summaryOnly: true },
    finish: (r) => {
      if (hook.run.failures.length === 0) return r;
      const withFailures = { ...r, failures: hook.run.failures };
      q.appendFailures(r.files.markdown, hook.run.failures);
      q.writeJson(r.files.json, withFailures);
      return withFailures;
    },
  };
}

/** Ends a queued command whose jobs failed, after its report is out. */
export async function endWithFailures(result: object): Promise<void> {
  const failures = (result as { failures?: unknown[] }).failures;
  if (!failures?.length) return;
  const q = await queueModule();
  throw q.failuresError(failures as Parameters<typeof q.failuresError>[0]);
}

interface WorkerCliOptions {
  queue: string;
  store?: string;
  lockSeconds?: number;
  maxJobs?: number;
  threads?: number;
  mapPath: string[];
}

export function registerWorker(program: Command, io: CliIo): void {
  program
    .command('worker')
    .description(
      'take fold jobs from a queue (`lemer cv|grid|ablate --queue`), run them with this machine, post their results; checkpoints in a shared store, so that a job of a killed worker continues from its last checkpoint elsewhere',
    )
    .requiredOption('--queue <url>', 'the Redis queue, redis://host:port/db')
    .option(
      '--store <dir>',
      "shared folder for the jobs' checkpoints, mounted by every worker (default $LEMER_CACHE/queue-store, else ~/.cache/lemer/queue-store: this machine only)",
    )
    .option(
      '--lock-seconds <s>',
      "how long a job's lock lasts without renewal: how soon a killed worker's job goes to another (default 30)",
      intOption(1),
    )
    .option('--max-jobs <n>', 'stop after this many jobs (default: run until stopped)', intOption(1))
    .option(
      '--map-path <there=here>',
      'read corpus paths that start with <there> (as the submitting machine names them) under <here> (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--threads <n>',
      "ONNX Runtime threads per job on this machine (default: the job config's)",
      intOption(1),
    )
    .action(async (opts: WorkerCliOptions, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const { startWorker, parseMapPath } = await queueModule();
      const w = await startWorker({
        mapPaths: opts.mapPath.map(parseMapPath),
        url: opts.queue,
        store: opts.store,
        lockSeconds: opts.lockSeconds,
        maxJobs: opts.maxJobs,
        threads: opts.threads,
        progress: ctx.progress,
        log: (m) => ctx.log.info(m),
        warn: (m) => ctx.log.warn(m),
      });
      let stops = 0;
      const stop = () => {
        stops += 1;
        if (stops === 1) {
          ctx.log.info(
            `worker ${w.id}: stopping after the job in hand (again to stop now: another worker then continues it from its last checkpoint)`,
          );
          void w.close();
        } else process.exit(130);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      await w.done;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      ctx.log.info(`worker ${w.id}: stopped`);
    });
}
