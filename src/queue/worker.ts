/**
 * `lemer worker`: takes fold jobs from the queue, runs each as a one-fold cross-validation
 * in its folder of the shared store (with `resume`, so a job that a killed worker left
 * continues from its last checkpoint, and ends as an uninterrupted run would), reports
 * progress, and posts the fold's result. A job that cannot succeed here (another code
 * version, a bad config, a corpus this machine lacks or holds in another version) says so,
 * naming the job and the machine: other code versions are left on the queue for other
 * workers; the rest fail at once (BullMQ's UnrecoverableError), not after every retry.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { parseConfig } from '../config/load.js';
import type { LemerConfig } from '../config/schema.js';
import { loadCorpus, parseCorpusSpec } from '../data/corpus.js';
import { loadDemoCorpus } from '../data/demo.js';
import type { Corpus } from '../data/types.js';
import { AudioCache } from '../train/audio-cache.js';
import { corpusHash, crossValidate, foldDirName, type FoldResult } from '../train/cv.js';
import type { Progress } from '../util/progress.js';
import { connectRedis, parseQueueUrl } from './connection.js';
import {
  QUEUE_NAME,
  QUEUE_PREFIX,
  machineName,
  queueCodeVersion,
  type FoldJobData,
  type FoldJobProgress,
  type FoldJobResult,
} from './jobs.js';
import { jobDir, resolveStore } from './store.js';

export interface WorkerOptions {
  /** `redis://host:port/db`. */
  url: string;
  /** Shared store folder (default: this machine's cache). */
  store?: string;
  /**
   * Seconds a job's lock lasts without renewal: how soon another worker takes over the job
   * of a killed one (default 30).
   */
  lockSeconds?: number;
  /** Stop after this many jobs have finished (done or failed); default: run until stopped. */
  maxJobs?: number;
  /** ONNX Runtime threads for this machine's runs (the config's runtime.threads otherwise). */
  threads?: number;
  /**
   * Where this machine mounts what the submitting one names otherwise: corpus paths that
   * start with `from` are read under `to` (the first match wins).
   */
  mapPaths?: { from: string; to: string }[];
  /** How long a refused job (another code version) waits before it is offered again, ms. */
  refuseDelayMs?: number;
  /** Local progress display (the worker's own stderr). */
  progress?: (total: number, label: string) => Progress;
  log?: (msg: string) => void;
  warn?: (msg: string) => void;
}

export interface RunningWorker {
  /** `host:pid`. */
  id: string;
  store: string;
  codeVersion: string;
  /** Resolves once the worker has stopped (closed, or `maxJobs` reached). */
  done: Promise<void>;
  /** Stops taking jobs; `force` also abandons the running one (another worker retries it). */
  close(force?: boolean): Promise<void>;
}

/** Thrown for what will not go away by retrying: BullMQ fails the job without more attempts. */
function permanent(job: Job, machine: string, what: string): UnrecoverableError {
  return new UnrecoverableError(
    `job ${job.id} (${(job.data as FoldJobData).title}) on machine ${machine}: ${what}`,
  );
}

/** `from=to` (a `--map-path` value). */
export function parseMapPath(v: string): { from: string; to: string } {
  const eq = v.indexOf('=');
  if (eq <= 0 || eq === v.length - 1)
    throw new Error(`--map-path ${v}: expected <path there>=<path here>, e.g. /data=/mnt/data`);
  return { from: v.slice(0, eq), to: v.slice(eq + 1) };
}

function mapPath(path: string, maps: { from: string; to: string }[]): string {
  for (const m of maps) {
    const from = m.from.replace(/\/+$/, '');
    if (path === from || path.startsWith(`${from}/`))
      return m.to.replace(/\/+$/, '') + path.slice(from.length);
  }
  return path;
}

/** The corpus a job names, read as the coordinator read it; a path this machine lacks is permanent. */
async function jobCorpus(
  job: Job<FoldJobData>,
  machine: string,
  maps: { from: string; to: string }[],
  warn?: (m: string) => void,
): Promise<{ corpus: Corpus; spec: string }> {
  const d = job.data;
  let spec;
  try {
    spec = parseCorpusSpec(d.corpus.spec);
  } catch (err) {
    throw permanent(job, machine, (err as Error).message);
  }
  const path = spec.path ? mapPath(spec.path, maps) : undefined;
  const here = path ? `${spec.kind}:${path}` : d.corpus.spec;
  const mapped = path !== spec.path ? ` (${spec.path} there, --map-path)` : '';
  if (spec.kind !== 'demo' && path && !existsSync(path))
    throw permanent(
      job,
      machine,
      `the corpus path ${path}${mapped} (${d.corpus.spec}) does not exist on this machine`,
    );
  try {
    if (spec.kind === 'demo') await loadDemoCorpus({ dir: path });
    return { corpus: await loadCorpus(here, { ...d.corpus.load, onWarning: warn }), spec: here };
  } catch (err) {
    throw permanent(job, machine, `cannot read the corpus ${here}: ${(err as Error).message}`);
  }
}

/**
 * Progress of a fold's training, from the epoch bars that fit() opens (`... epoch 3/40`):
 * epochs done (fractional), and an ETA from this run's own pace.
 */
class EpochTracker {
  private fitIndex = -1;
  private lastLabel = '';
  private epochInFit = 0;
  private epochsPerFit = 0;
  private frac = 0;
  private start: number | null = null;
  private startDone = 0;
  constructor(private readonly fits: number) {}

  /** True when the label is a training epoch's bar. */
  open(label: string): boolean {
    const m = /^(.*) epoch (\d+)\/(\d+)$/.exec(label);
    if (!m) return false;
    const [, who, e, n] = m;
    if (who !== this.lastLabel) {
      this.fitIndex += 1;
      this.lastLabel = who;
    }
    this.epochInFit = Number(e) - 1;
    this.epochsPerFit = Number(n);
    this.frac = 0;
    if (this.start === null) {
      this.start = performance.now();
      this.startDone = this.done();
    }
    return true;
  }
  set(fraction: number): void {
    this.frac = Math.min(1, Math.max(0, fraction));
  }
  done(): number {
    return Math.max(0, this.fitIndex) * this.epochsPerFit + this.epochInFit + this.frac;
  }
  total(): number {
    return this.fits * this.epochsPerFit;
  }
  eta(): number | null {
    if (this.start === null) return null;
    const ran = this.done() - this.startDone;
    const secs = (performance.now() - this.start) / 1000;
    // Early stopping can end a fold sooner: the ETA is an upper bound.
    return ran > 0.05 && secs > 0 ? ((this.total() - this.done()) * secs) / ran : null;
  }
}

/** Starts a worker on the queue; resolves once it is connected and taking jobs. */
export async function startWorker(o: WorkerOptions): Promise<RunningWorker> {
  const where = parseQueueUrl(o.url).display;
  const store = resolveStore(o.store);
  const machine = machineName();
  const id = `${machine}:${process.pid}`;
  const version = queueCodeVersion();
  const conn = await connectRedis(o.url);
  const lockMs = Math.round((o.lockSeconds ?? 30) * 1000);
  const refused = new Set<string>();
  let finished = 0;
  let worker: Worker<FoldJobData, FoldJobResult> | null = null;

  const processor = async (job: Job<FoldJobData, FoldJobResult>, token?: string): Promise<FoldJobResult> => {
    const t0 = performance.now();
    const d = job.data;
    if (d?.format !== 'lemer-fold-job') throw permanent(job, machine, 'not a lemer fold job');
    const post = (p: Omit<FoldJobProgress, 'machine' | 'worker'>) =>
      job.updateProgress({ ...p, machine, worker: id }).catch(() => {});
    if (d.codeVersion !== version) {
      const msg = `job ${job.id} (${d.title}) needs lemer code version ${d.codeVersion}; worker ${id} on machine ${machine} runs ${version}: refused, left on the queue for a worker of that version`;
      if (!refused.has(job.id!)) {
        refused.add(job.id!);
        o.warn?.(msg);
        await job.log(msg).catch(() => {});
      }
      await post({ state: 'refused', message: msg });
      await job.moveToDelayed(Date.now() + (o.refuseDelayMs ?? 2000), token);
      throw new DelayedError(msg);
    }
    o.log?.(`job ${job.id} (${d.title}): started on ${id} (attempt ${job.attemptsMade + 1})`);
    await post({ state: 'loading' });
    let config: LemerConfig;
    try {
      config = parseConfig(d.config, `job ${job.id} config`);
    } catch (err) {
      throw permanent(job, machine, `bad config: ${(err as Error).message}`);
    }
    if (o.threads !== undefined) config = { ...config, runtime: { ...config.runtime, threads: o.threads } };
    const { corpus, spec } = await jobCorpus(job, machine, o.mapPaths ?? [], o.warn);
    const hashCache =
      d.model !== 'text' ? new AudioCache(null, { kind: 'waveform', sampleRate: 16000 }) : null;
    const here = await corpusHash(corpus, hashCache);
    if (here !== d.corpus.hash)
      throw permanent(
        job,
        machine,
        `the corpus ${spec} here differs from the one submitted from ${d.submittedFrom} (content hash ${here}, the job's ${d.corpus.hash})`,
      );
    const tracker = new EpochTracker(d.model === 'score-fusion' ? 2 : 1);
    let training = false;
    let lastPost = 0;
    const report = (force: boolean) => {
      const now = performance.now();
      if (!force && now - lastPost < 500) return;
      lastPost = now;
      void post({
        state: 'training',
        epoch: tracker.done(),
        epochs: tracker.total(),
        etaSeconds: tracker.eta(),
      });
    };
    const progress = (total: number, label: string): Progress => {
      const local = o.progress?.(total, `${d.title}: ${label}`);
      const epoch = tracker.open(label);
      if (epoch) {
        training = true;
        report(true);
      }
      let n = 0;
      const set = (k: number) => {
        n = k;
        if (epoch) {
          tracker.set(total > 0 ? n / total : 1);
          report(false);
        }
      };
      return {
        tick: (k = 1) => {
          set(n + k);
          local?.tick(k);
        },
        update: (k) => {
          set(k);
          local?.update(k);
        },
        stop: () => local?.stop(),
      };
    };
    const dir = jobDir(store, job.id!);
    try {
      await crossValidate({
        config,
        corpus,
        corpusSpec: spec,
        model: d.model,
        out: dir,
        resume: true,
        folds: [d.fold],
        progress,
        log: o.log,
        warn: o.warn,
      });
    } catch (err) {
      const msg = (err as Error).message;
      // Before the first training step it is the setup that failed (folds, classes, audio
      // files): that repeats on every attempt. Errors while training are retried.
      if (!training) throw permanent(job, machine, msg);
      throw new Error(`job ${job.id} (${d.title}) on machine ${machine}: ${msg}`);
    }
    const foldDir = join(dir, 'folds', foldDirName(d.fold));
    const result = JSON.parse(readFileSync(join(foldDir, 'result.json'), 'utf8')) as FoldResult;
    let curves: FoldJobResult['curves'];
    try {
      curves = {
        svg: readFileSync(join(foldDir, 'curves.svg'), 'utf8'),
        png: readFileSync(join(foldDir, 'curves.png')).toString('base64'),
      };
    } catch {
      curves = undefined; // the coordinator draws them
    }
    const seconds = (performance.now() - t0) / 1000;
    o.log?.(
      `job ${job.id} (${d.title}): done on ${id} in ${seconds.toFixed(1)} s, test WA ${result.wa.toFixed(2)}, UA ${result.ua.toFixed(2)}`,
    );
    return {
      format: 'lemer-fold-job-result',
      result,
      machine,
      worker: id,
      seconds,
      resumed: result.fits.some((f) => f.resumed),
      curves,
    };
  };

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  // --max-jobs: the worker closes before it returns its last job's result, so that BullMQ
  // does not fetch another job with it.
  const finishedOne = () => {
    finished += 1;
    if (o.maxJobs !== undefined && finished >= o.maxJobs) {
      o.log?.(`worker ${id}: ${finished} job${finished > 1 ? 's' : ''} finished (--max-jobs), stopping`);
      void worker!.close();
    }
  };
  const counted = async (job: Job<FoldJobData, FoldJobResult>, token?: string) => {
    try {
      const r = await processor(job, token);
      finishedOne();
      return r;
    } catch (err) {
      const last = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!(err instanceof DelayedError) && last) finishedOne();
      throw err;
    }
  };
  worker = new Worker<FoldJobData, FoldJobResult>(QUEUE_NAME, counted, {
    connection: conn,
    prefix: QUEUE_PREFIX,
    name: id,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    // A job whose worker was killed goes back to the queue; only a job that keeps
    // killing its workers ends as failed.
    maxStalledCount: 5,
    autorun: false,
  });
  worker.on('error', (err) => o.warn?.(`worker ${id}: ${err.message}`));
  worker.on('failed', (_job, err) => {
    if (!(err instanceof DelayedError)) o.warn?.(err.message);
  });
  worker.on('closed', () => {
    conn.disconnect();
    resolveDone();
  });
  void worker.run().catch((err: Error) => {
    o.warn?.(`worker ${id}: ${err.message}`);
    conn.disconnect();
    resolveDone();
  });
  await worker.waitUntilReady();
  o.log?.(`worker ${id} ready: queue ${where}, store ${store}, code version ${version}`);
  return {
    id,
    store,
    codeVersion: version,
    done,
    close: async (force = false) => {
      await worker!.close(force);
    },
  };
}
