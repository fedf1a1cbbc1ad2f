/**
 * Scale out: the folds of `lemer cv`, and the cells x folds of `lemer grid` and `lemer
 * ablate`, as jobs on a BullMQ queue in Redis, run by `lemer worker` processes on any number
 * of machines. The coordinator merges the workers' fold results into the folders a local run
 * would have written, and the reports are built from them by the same code (identical JSON
 * keys; failed jobs are listed in addition). Without `--queue` none of this is loaded.
 */
import { readFileSync } from 'node:fs';
import type { LemerConfig } from '../config/schema.js';
import type { Corpus } from '../data/types.js';
import type { CellSpec } from '../train/grid.js';
import { checkFoldClasses, crossValidate, protocolFolds, type CvResult, type RunModel } from '../train/cv.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Progress } from '../util/progress.js';
import type { CorpusLoad } from './jobs.js';
import type { QueueSubmitOptions } from './submit.js';
import {
  failuresMarkdown,
  runFoldsOnQueue,
  type JobFailure,
  type PlannedFold,
  type QueueRun,
} from './submit.js';

export { parseQueueUrl, connectRedis } from './connection.js';
export { jobIdentity, queueCodeVersion, QUEUE_NAME, QUEUE_PREFIX } from './jobs.js';
export type { CorpusLoad, FoldJobData, FoldJobResult, FoldJobProgress } from './jobs.js';
export { resolveStore, defaultStore, jobDir } from './store.js';
export { startWorker, parseMapPath, type WorkerOptions, type RunningWorker } from './worker.js';
export { runFoldsOnQueue, openQueue, failuresMarkdown } from './submit.js';
export type { JobFailure, JobTiming, PlannedFold, QueueRun, QueueSubmitOptions } from './submit.js';

/** What the CLI passes for a queued run (the submit options; `tty` defaults to whether `stream` is a terminal). */
export type QueueCliRun = QueueSubmitOptions;

/** The corpus options as workers must repeat them (the label set as the coordinator resolved it). */
export function corpusLoadOf(
  opts: {
    classes?: '4' | 'all';
    split?: string;
    labelMap?: Record<string, string> | null;
    invalidUtf8?: 'error' | 'warn';
  },
  corpus: Corpus,
): CorpusLoad {
  return {
    labels: [...corpus.labels],
    classes: opts.classes,
    split: opts.split,
    labelMap: opts.labelMap ?? undefined,
    invalidUtf8: opts.invalidUtf8,
  };
}

function failureSummary(failures: JobFailure[]): string {
  return failures.map((f) => `  ${f.error.split('\n')[0]}`).join('\n');
}

/** `lemer cv --queue`: the folds on the queue, then the summary of a local run (plus `failures`). */
export async function crossValidateOnQueue(
  q: QueueCliRun & {
    config: LemerConfig;
    model: RunModel;
    out: string;
    folds?: string[];
    progress?: (total: number, label: string) => Progress;
  },
): Promise<{ result: CvResult & { failures?: JobFailure[] }; run: QueueRun }> {
  const t0 = performance.now();
  const labels = [...q.corpus.labels];
  const config = q.config.classes.join() === labels.join() ? q.config : { ...q.config, classes: labels };
  // What a local run checks before the first step is checked before the first job.
  const folds = protocolFolds(config, q.corpus);
  const unknown = (q.folds ?? []).filter((n) => !folds.some((f) => f.name === n));
  if (unknown.length)
    throw new Error(`no fold named ${unknown.join(', ')} (folds: ${folds.map((f) => f.name).join(', ')})`);
  checkFoldClasses(q.corpus, folds, labels);
  const chosen = folds.filter((f) => !q.folds?.length || q.folds.includes(f.name));
  const planned: PlannedFold[] = chosen.map((f) => ({
    cell: null,
    fold: f.name,
    model: q.model,
    config,
    dir: q.out,
  }));
  const run = await runFoldsOnQueue(planned, q);
  if (run.failures.length === planned.length && run.present === 0)
    throw new Error(`every job failed on the queue:\n${failureSummary(run.failures)}`);
  const result: CvResult & { failures?: JobFailure[] } = await crossValidate({
    config,
    corpus: q.corpus,
    corpusSpec: q.corpusSpec,
    model: q.model,
    out: q.out,
    resume: true,
    folds: q.folds?.length ? q.folds : undefined,
    summaryOnly: true,
    progress: q.progress,
    log: q.log,
    warn: q.warn,
  });
  // The run's time is the queue's wall time, not that of the summary alone.
  result.seconds = Math.round((performance.now() - t0) / 100) / 10;
  if (run.failures.length) {
    result.failures = run.failures;
    appendFailures(result.files.markdown, run.failures);
  }
  writeFileAtomic(result.files.results, JSON.stringify(result, null, 2) + '\n');
  return { result, run };
}

/**
 * `lemer grid|ablate --queue`: the runCells hook that runs every cell's folds on the queue
 * before the cells are summarised (pass it as `beforeCells` with `summaryOnly: true`).
 * `run` collects what happened, for the caller's report.
 */
export function cellsOnQueue(q: QueueCliRun): {
  beforeCells: (cells: (CellSpec & { dir: string })[], folds: string[]) => Promise<void>;
  run: QueueRun;
} {
  const run: QueueRun = { submitted: 0, present: 0, reused: 0, failures: [], timings: [] };
  return {
    run,
    beforeCells: async (cells, folds) => {
      const planned: PlannedFold[] = cells.flatMap((c) =>
        folds.map((fold) => ({ cell: c.name, fold, model: c.model, config: c.config, dir: c.dir })),
      );
      for (const c of cells)
        checkFoldClasses(q.corpus, protocolFolds(c.config, q.corpus), [...q.corpus.labels]);
      const r = await runFoldsOnQueue(planned, q);
      Object.assign(run, r);
      // A cell none of whose folds finished has nothing to summarise: stop with the reasons.
      const dead = cells.filter((c) => r.failures.filter((f) => f.cell === c.name).length === folds.length);
      if (dead.length)
        throw new Error(
          `every fold of ${dead.map((c) => c.name).join(', ')} failed on the queue:\n${failureSummary(r.failures)}`,
        );
    },
  };
}

/** Appends the failed jobs to a markdown report. */
export function appendFailures(markdown: string, failures: JobFailure[]): void {
  if (failures.length === 0) return;
  writeFileAtomic(markdown, readFileSync(markdown, 'utf8') + failuresMarkdown(failures));
}

/** The error a command ends with when jobs failed (after its report is written). */
export function failuresError(failures: JobFailure[]): Error {
  return new Error(
    `${failures.length} job${failures.length > 1 ? 's' : ''} failed on the queue (listed in the report):\n${failureSummary(failures)}`,
  );
}

/** Rewrites a JSON report atomically. */
export function writeJson(path: string, data: unknown): void {
  writeFileAtomic(path, JSON.stringify(data, null, 2) + '\n');
}
