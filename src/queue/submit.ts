/**
 * The coordinator's side: puts one job per (configuration, fold) on the queue, follows them
 * (progress per job), and writes each finished fold's result file where a local run would
 * have written it (`<cv folder>/folds/<fold>/result.json`, with its curves), so that the
 * report is then built by the same code from the same files. Jobs are identified by their
 * content (jobIdentity): a job finished earlier, by anyone, is taken as it is.
 */
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { LemerConfig } from '../config/schema.js';
import type { Corpus } from '../data/types.js';
import { svgToPng } from '../eval/report.js';
import { AudioCache } from '../train/audio-cache.js';
import { curvesSvg } from '../train/curves.js';
import {
  configHash,
  corpusHash,
  foldDirName,
  readFoldResult,
  RESULT_FILE,
  type FoldResult,
  type RunModel,
} from '../train/cv.js';
import { writeFileAtomic } from '../util/fs.js';
import type { ProgressStream } from '../util/progress.js';
import { connectRedis, parseQueueUrl } from './connection.js';
import { createJobsDisplay, type JobState } from './display.js';
import {
  QUEUE_NAME,
  QUEUE_PREFIX,
  jobIdentity,
  machineName,
  queueCodeVersion,
  type CorpusLoad,
  type FoldJobData,
  type FoldJobProgress,
  type FoldJobResult,
} from './jobs.js';

/** One fold of one configuration, and the cross-validation folder its result belongs in. */
export interface PlannedFold {
  cell: string | null;
  fold: string;
  model: RunModel;
  /** Resolved (the corpus' label set is its classes). */
  config: LemerConfig;
  dir: string;
}

export interface QueueSubmitOptions {
  url: string;
  corpus: Corpus;
  /** As the coordinator read it (made absolute here). */
  corpusSpec: string;
  load: CorpusLoad;
  /** Attempts per job for errors that may go away (default 3). */
  attempts?: number;
  /** Run every job again, even those finished before. */
  force?: boolean;
  stream?: ProgressStream;
  tty?: boolean;
  log?: (msg: string) => void;
  warn?: (msg: string) => void;
}

/** A job that ended as failed: what the report lists. */
export interface JobFailure {
  job: string;
  title: string;
  cell: string | null;
  fold: string;
  /** The worker (`host:pid`) that failed it, where known. */
  machine: string | null;
  attempts: number;
  error: string;
}

/** When a job went through the queue (ms since the epoch), for the overhead figures. */
export interface JobTiming {
  job: string;
  title: string;
  worker: string;
  enqueuedAt: number;
  startedAt: number;
  finishedAt: number;
  mergedAt: number;
  /** The worker's own processing time (setup included), s. */
  seconds: number;
  resumed: boolean;
}

export interface QueueRun {
  /** Jobs submitted (folds without a result file). */
  submitted: number;
  /** Folds whose result file was already there (not submitted). */
  present: number;
  /** Jobs the queue held as finished from an earlier submission. */
  reused: number;
  failures: JobFailure[];
  timings: JobTiming[];
}

/** Writes a fold result (and its curves) where crossValidate's summary reads it. */
async function mergeResult(p: PlannedFold, r: FoldResult, curves?: FoldJobResult['curves']): Promise<void> {
  const dir = join(p.dir, 'folds', foldDirName(p.fold));
  writeFileAtomic(join(dir, RESULT_FILE), JSON.stringify(r, null, 1) + '\n');
  if (curves) {
    writeFileAtomic(join(dir, 'curves.svg'), curves.svg);
    writeFileAtomic(join(dir, 'curves.png'), Buffer.from(curves.png, 'base64'));
    return;
  }
  const svg = await curvesSvg(
    r.fits.map((x) => ({ name: r.fits.length > 1 ? x.kind : p.fold, history: x.history })),
    `fold ${p.fold}: training curves`,
  );
  writeFileAtomic(join(dir, 'curves.svg'), svg);
  writeFileAtomic(join(dir, 'curves.png'), svgToPng(svg));
}

/** Opens the queue (the URL checked first), for submitting and for tests. */
export async function openQueue(url: string): Promise<{ queue: Queue; conn: Redis; close(): Promise<void> }> {
  const conn = await connectRedis(url);
  const queue = new Queue(QUEUE_NAME, { connection: conn, prefix: QUEUE_PREFIX });
  return {
    queue,
    conn,
    close: async () => {
      await queue.close();
      conn.disconnect();
    },
  };
}

/**
 * Runs the planned folds on the queue's workers and waits for all of them; finished folds
 * are merged into their folders as they arrive. Resolves with the failures (never throws
 * for a failed job: the caller reports them), and the timings.
 */
export async function runFoldsOnQueue(planned: PlannedFold[], o: QueueSubmitOptions): Promise<QueueRun> {
  const where = parseQueueUrl(o.url).display;
  const version = queueCodeVersion();
  const from = machineName();
  const spec = absoluteSpec(o.corpusSpec);
  // Content hashes as crossValidate computes them: audio bytes only where a model reads speech.
  const hashes = new Map<boolean, string>();
  const hashFor = async (model: RunModel): Promise<string> => {
    const speech = model !== 'text';
    let h = hashes.get(speech);
    if (h === undefined) {
      h = await corpusHash(
        o.corpus,
        speech ? new AudioCache(null, { kind: 'waveform', sampleRate: 16000 }) : null,
      );
      hashes.set(speech, h);
    }
    return h;
  };
  const run: QueueRun = { submitted: 0, present: 0, reused: 0, failures: [], timings: [] };
  const todo: { id: string; p: PlannedFold; data: FoldJobData }[] = [];
  const nonce = o.force ? `-r${Date.now().toString(36)}` : '';
  for (const p of planned) {
    const hash = await hashFor(p.model);
    const have = o.force ? null : readFoldResult(join(p.dir, 'folds', foldDirName(p.fold), RESULT_FILE));
    if (
      have &&
      have.configHash === configHash(p.config) &&
      have.corpusHash === hash &&
      have.model === p.model
    ) {
      run.present += 1;
      continue;
    }
    const data: FoldJobData = {
      format: 'lemer-fold-job',
      title: p.cell === null ? p.fold : `${p.cell} ${p.fold}`,
      cell: p.cell,
      fold: p.fold,
      model: p.model,
      config: p.config,
      corpus: { spec, load: o.load, hash },
      codeVersion: version,
      submittedFrom: from,
    };
    const id = jobIdentity(data) + nonce;
    if (todo.some((t) => t.id === id)) continue;
    todo.push({ id, p, data });
  }
  if (run.present > 0)
    o.log?.(`${run.present} fold${run.present === 1 ? '' : 's'} already have results in their folders: kept`);
  if (todo.length === 0) return run;

  const conn = await connectRedis(o.url);
  const eventsConn = conn.duplicate();
  eventsConn.on('error', () => {});
  const queue = new Queue<FoldJobData, FoldJobResult>(QUEUE_NAME, { connection: conn, prefix: QUEUE_PREFIX });
  const events = new QueueEvents(QUEUE_NAME, { connection: eventsConn, prefix: QUEUE_PREFIX });
  const byId = new Map(todo.map((t) => [t.id, t]));
  const display = createJobsDisplay(
    todo.map((t) => ({ id: t.id, title: t.data.title, state: 'queued' as JobState })),
    { stream: o.stream, tty: o.tty },
  );
  const pending = new Set(byId.keys());
  const refusals = new Set<string>();
  let wake: () => void = () => {};
  const settling = new Set<string>();
  // Events and the poll may ask at once: one look at a job at a time.
  const settle = async (id: string) => {
    if (!pending.has(id) || settling.has(id)) return;
    settling.add(id);
    try {
      await look(id);
    } finally {
      settling.delete(id);
    }
  };
  const look = async (id: string) => {
    const t = byId.get(id)!;
    // The state first, then the job: read the other way round, a job that finishes in
    // between would look finished without its result.
    const state = await queue.getJobState(id);
    if (state !== 'completed' && state !== 'failed') {
      display.update(id, { state: state === 'active' ? 'running' : 'waiting' });
      return;
    }
    const j = await queue.getJob(id);
    if (!j) return;
    // A job that ended without a result: listed in the report, never merged.
    const fail = (error: string) => {
      pending.delete(id);
      run.failures.push({
        job: id,
        title: t.data.title,
        cell: t.p.cell,
        fold: t.p.fold,
        machine: j.processedBy ?? null,
        attempts: j.attemptsMade,
        error,
      });
      display.update(id, { state: 'failed' });
    };
    if (state === 'completed') {
      const rv = j.returnvalue;
      if (rv?.format !== 'lemer-fold-job-result') {
        fail(`job ${id} (${t.data.title}) finished without a lemer result`);
        return;
      }
      pending.delete(id);
      await mergeResult(t.p, rv.result, rv.curves);
      run.timings.push({
        job: id,
        title: t.data.title,
        worker: rv.worker,
        enqueuedAt: j.timestamp,
        startedAt: j.processedOn ?? j.timestamp,
        finishedAt: j.finishedOn ?? Date.now(),
        mergedAt: Date.now(),
        seconds: rv.seconds,
        resumed: rv.resumed,
      });
      display.update(id, { state: 'done', machine: rv.machine });
    } else if (state === 'failed') {
      fail(j.failedReason || `job ${id} (${t.data.title}) failed`);
      o.warn?.(j.failedReason);
    }
    if (pending.size === 0) wake();
  };
  const settleSoon = (id: string) => void settle(id).catch((err: Error) => o.warn?.(err.message));
  events.on('completed', ({ jobId }) => settleSoon(jobId));
  events.on('failed', ({ jobId }) => settleSoon(jobId));
  events.on('active', ({ jobId }) => {
    if (pending.has(jobId)) display.update(jobId, { state: 'running' });
  });
  events.on('waiting', ({ jobId }) => {
    if (pending.has(jobId)) display.update(jobId, { state: 'waiting' });
  });
  events.on('progress', ({ jobId, data }) => {
    if (!pending.has(jobId) || typeof data !== 'object' || data === null) return;
    const p = data as FoldJobProgress;
    if (p.state === 'refused') {
      const key = `${jobId} ${p.worker}`;
      if (!refusals.has(key)) {
        refusals.add(key);
        o.warn?.(p.message ?? `job ${jobId} refused by ${p.worker}`);
      }
      display.update(jobId, { state: 'waiting' });
      return;
    }
    display.update(jobId, {
      state: 'running',
      machine: p.machine,
      epoch: p.epoch,
      epochs: p.epochs,
      etaSeconds: p.etaSeconds ?? null,
    });
  });
  try {
    await events.waitUntilReady();
    const added = await queue.addBulk(
      todo.map((t) => ({
        name: t.data.title,
        data: t.data,
        opts: {
          jobId: t.id,
          attempts: o.attempts ?? 3,
          backoff: { type: 'exponential', delay: 2000 },
        },
      })),
    );
    run.submitted = todo.length;
    o.log?.(`${todo.length} job${todo.length === 1 ? '' : 's'} on the queue ${where}`);
    // An id already on the queue is not added again: a job finished earlier is taken as it
    // is; one that failed earlier is tried again (its cause may be fixed by now).
    for (const j of added) {
      const state = await j.getState();
      if (state === 'completed') run.reused += 1;
      if (state === 'failed') {
        await j.retry('failed');
        o.log?.(`job ${j.id} (${j.data.title}) failed in an earlier submission: tried again`);
      } else await settle(j.id!);
    }
    if (run.reused)
      o.log?.(`${run.reused} job${run.reused === 1 ? '' : 's'} finished in an earlier submission: taken`);
    // Events can be missed (a reconnect); a slow poll catches up with what they did not say.
    while (pending.size > 0) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 3000).unref();
      });
      for (const id of [...pending]) await settle(id);
    }
  } finally {
    display.stop();
    await events.close().catch(() => {});
    await queue.close().catch(() => {});
    eventsConn.disconnect();
    conn.disconnect();
  }
  return run;
}

/** The corpus spec with its path absolute, as workers elsewhere need it. */
function absoluteSpec(spec: string): string {
  const m = /^(iemocap|emodb|meld|manifest|demo):(.+)$/.exec(spec.trim());
  if (!m) return spec.trim();
  return `${m[1]}:${join(m[2].startsWith('/') ? '' : process.cwd(), m[2])}`;
}

/** The failures as a markdown section, for the reports. */
export function failuresMarkdown(failures: JobFailure[]): string {
  if (failures.length === 0) return '';
  const lines = [
    '',
    '## Failed jobs',
    '',
    `${failures.length} job${failures.length > 1 ? 's' : ''} failed on the queue; their folds are missing above.`,
    '',
  ];
  for (const f of failures)
    lines.push(
      `- ${f.title} (job ${f.job}${f.machine ? `, worker ${f.machine}` : ''}, ${f.attempts} attempt${f.attempts === 1 ? '' : 's'}): ${f.error.replace(/\n/g, ' ')}`,
    );
  return lines.join('\n') + '\n';
}
