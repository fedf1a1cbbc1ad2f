/**
 * A bounded work queue in front of one inference worker thread. Jobs past the bound are
 * refused at once (the server answers 503 with Retry-After) rather than waiting without
 * end; a job that outlives its timeout is answered 504, and still occupies the queue until
 * the worker finishes it (ONNX Runtime cannot cancel a run), so the bound stays honest.
 *
 * When the worker crashes or exits, the jobs it was running or had been sent are answered
 * 503 (worker_crashed, Retry-After) and a new worker is started on the same model folder; jobs
 * that arrive meanwhile wait for it (within the bound). A worker that keeps crashing (more
 * than MAX_CRASHES a minute) or whose model no longer loads leaves the pool dead: /healthz
 * says so and every job is answered 503.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Prediction } from '../predict/lemer.js';
import { HttpError } from './errors.js';
import type { FromWorker, ModelInfo, ToWorker, WorkerInit } from './protocol.js';

export interface PoolOptions extends WorkerInit {
  /** Jobs running or waiting; one more is refused (default 16). */
  maxQueue?: number;
  /** Called on worker crashes and restarts. */
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export interface PredictJob {
  audio?: Uint8Array;
  text?: string;
  context?: string[];
  name?: string;
  maxSeconds: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** Set once the caller has given up (timeout): the answer is dropped. */
  abandoned: boolean;
  /** Posted to the current worker (else waiting for a worker to be ready). */
  sent: boolean;
  message: ToWorker;
  started: number;
}

/** Crashes within a minute past which the pool stops restarting its worker. */
const MAX_CRASHES = 5;

/** The worker file next to this one: worker.ts under tsx (tests), worker.js once built. */
function workerFile(): URL {
  const ts = new URL('./worker.ts', import.meta.url);
  return import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(ts))
    ? ts
    : new URL('./worker.js', import.meta.url);
}

function newWorker(init: WorkerInit): Worker {
  const file = workerFile();
  // Under tsx (tests) a worker's entry file is not run through tsx's loader: register it first.
  return file.pathname.endsWith('.ts')
    ? new Worker(
        `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); });`,
        { eval: true, workerData: init },
      )
    : new Worker(file, { workerData: init });
}

/** Starts a worker and waits until it has loaded the model (its errors name the folder). */
async function startWorker(init: WorkerInit): Promise<{ worker: Worker; info: ModelInfo }> {
  const worker = newWorker(init);
  const info = await new Promise<ModelInfo>((resolve, reject) => {
    const onExit = (code: number) =>
      reject(new Error(`the inference worker exited (code ${code}) while loading ${init.dir}`));
    worker.once('error', reject);
    worker.once('exit', onExit);
    worker.once('message', (m: FromWorker) => {
      worker.off('error', reject);
      worker.off('exit', onExit);
      if (m.type === 'ready') resolve(m.info);
      else reject(new Error(m.type === 'failed' ? m.message : `unexpected first message ${m.type}`));
    });
  }).catch(async (err: Error) => {
    await worker.terminate();
    throw err;
  });
  return { worker, info };
}

export class InferencePool {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private worker: Worker | null = null;
  /** The restart in progress, if any. */
  private starting: Promise<void> | null = null;
  private dead: string | null = null;
  private closing = false;
  private crashTimes: number[] = [];
  /** Workers started after a crash. */
  restarts = 0;
  /** Model runs, and the predictions they held (their ratio: the mean batch size). */
  batches = 0;
  batchedPredictions = 0;
  /** Mean seconds per job (exponential average), for Retry-After. */
  private meanSeconds = 0.5;
  private readonly log: NonNullable<PoolOptions['log']>;

  private constructor(
    private readonly init: WorkerInit,
    readonly info: ModelInfo,
    readonly maxQueue: number,
    log: PoolOptions['log'],
  ) {
    this.log = log ?? (() => undefined);
  }

  static async start(opts: PoolOptions): Promise<InferencePool> {
    const init: WorkerInit = {
      dir: opts.dir,
      int8: opts.int8,
      threads: opts.threads,
      batchSize: opts.batchSize,
    };
    const { worker, info } = await startWorker(init);
    const pool = new InferencePool(init, info, Math.max(1, opts.maxQueue ?? 16), opts.log);
    pool.attach(worker);
    return pool;
  }

  private attach(worker: Worker): void {
    this.worker = worker;
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => this.onCrash(worker, `the inference worker failed: ${err.message}`));
    worker.on('exit', (code) => this.onCrash(worker, `the inference worker exited (code ${code})`));
    // Jobs that arrived while no worker was ready.
    for (const [id, p] of this.pending) {
      if (p.sent) continue;
      if (p.abandoned) {
        this.pending.delete(id);
        continue;
      }
      p.sent = true;
      worker.postMessage(p.message);
    }
  }

  /** Jobs running or waiting. */
  get depth(): number {
    return this.pending.size;
  }

  /** A worker is loaded and the pool is not shutting down. */
  get healthy(): boolean {
    return this.dead === null && !this.closing && this.worker !== null;
  }

  /** Why the pool is not healthy (null when it is). */
  get problem(): { code: string; message: string } | null {
    if (this.dead) return { code: 'model_unavailable', message: this.dead };
    if (this.closing) return { code: 'shutting_down', message: 'the server is shutting down' };
    if (!this.worker)
      return { code: 'worker_restarting', message: 'the inference worker is being restarted' };
    return null;
  }

  /** Seconds a client refused for a full queue should wait before trying again. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.meanSeconds * this.pending.size));
  }

  predict(job: PredictJob, timeoutMs: number): Promise<Prediction> {
    return this.submit<Prediction>((id) => ({ type: 'predict', id, ...job }), timeoutMs);
  }

  /** Keeps the worker busy for `ms`: a job that holds a queue slot (tests of the bound). */
  hold(ms: number): Promise<void> {
    return this.submit<void>((id) => ({ type: 'hold', id, ms }), ms + 60_000);
  }

  /** Makes the worker throw an uncaught error (tests of the restart). */
  crashWorker(): void {
    this.worker?.postMessage({ type: 'crash' } satisfies ToWorker);
  }

  /** Stops the worker thread at once, as a crash would (tests and operators). */
  async terminateWorker(): Promise<void> {
    await this.worker?.terminate();
  }

  /** Why a job would be refused now (dead, shutting down, queue full), else null. */
  refusal(): HttpError | null {
    if (this.dead) return new HttpError(503, 'model_unavailable', this.dead);
    if (this.closing) return new HttpError(503, 'shutting_down', 'the server is shutting down');
    if (this.pending.size >= this.maxQueue)
      return new HttpError(
        503,
        'queue_full',
        `${this.pending.size} predictions are running or waiting (the bound is ${this.maxQueue}): try again shortly`,
        { 'retry-after': String(this.retryAfterSeconds()) },
      );
    return null;
  }

  private submit<T>(make: (id: number) => ToWorker, timeoutMs: number): Promise<T> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const message = make(id);
      const p: Pending = {
        resolve: resolve as (v: unknown) => void,
        reject,
        abandoned: false,
        sent: false,
        message,
        started: Date.now(),
      };
      this.pending.set(id, p);
      const timer = setTimeout(() => {
        p.abandoned = true;
        reject(
          new HttpError(
            504,
            'timeout',
            `the prediction took longer than ${timeoutMs / 1000} s and was abandoned`,
          ),
        );
      }, timeoutMs);
      timer.unref();
      p.resolve = (v) => {
        clearTimeout(timer);
        (resolve as (v: unknown) => void)(v);
      };
      p.reject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      if (this.worker) {
        p.sent = true;
        this.worker.postMessage(message);
      }
    });
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'batch') {
      this.batches++;
      this.batchedPredictions += m.size;
      return;
    }
    if (m.type !== 'result' && m.type !== 'error' && m.type !== 'hold-done') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    const s = (Date.now() - p.started) / 1000;
    if (m.type === 'result') this.meanSeconds = 0.8 * this.meanSeconds + 0.2 * s;
    if (p.abandoned) return;
    if (m.type === 'error') p.reject(new HttpError(422, 'invalid_audio', m.message));
    else p.resolve(m.type === 'result' ? m.result : undefined);
  }

  /** The worker is gone (error, then exit, arrive for the same worker: handled once). */
  private onCrash(worker: Worker, message: string): void {
    if (worker !== this.worker) return;
    this.worker = null;
    void worker.terminate();
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      this.pending.delete(id);
      if (!p.abandoned)
        p.reject(
          new HttpError(
            503,
            'worker_crashed',
            `${message} while running this prediction; it is being restarted: try again`,
            { 'retry-after': '1' },
          ),
        );
    }
    if (this.closing) return;
    const now = Date.now();
    this.crashTimes = [...this.crashTimes.filter((t) => now - t < 60_000), now];
    if (this.crashTimes.length > MAX_CRASHES) {
      this.fail(
        `${message}; it crashed ${this.crashTimes.length} times within a minute and is not restarted`,
      );
      return;
    }
    this.log('error', `${message}: starting a new one`);
    this.starting = startWorker(this.init).then(
      ({ worker: w }) => {
        this.starting = null;
        if (this.closing) {
          void w.terminate();
          return;
        }
        this.restarts++;
        this.attach(w);
        this.log('info', `the inference worker was restarted (${this.restarts} restart(s) so far)`);
      },
      (err: Error) => {
        this.starting = null;
        this.fail(`${message}, and a new worker did not start: ${err.message}`);
      },
    );
  }

  /** No worker any more: every job waiting is refused, and later ones too. */
  private fail(message: string): void {
    if (this.dead) return;
    this.dead = message;
    this.log('error', message);
    for (const p of this.pending.values())
      if (!p.abandoned) p.reject(new HttpError(503, 'model_unavailable', message));
    this.pending.clear();
  }

  /** Waits for the jobs in flight, then stops the worker. */
  async close(): Promise<void> {
    this.closing = true;
    while (this.pending.size > 0 && !this.dead && (this.worker || this.starting))
      await new Promise((r) => setTimeout(r, 10));
    await this.starting;
    for (const p of this.pending.values())
      if (!p.abandoned) p.reject(new HttpError(503, 'shutting_down', 'the server is shutting down'));
    this.pending.clear();
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }
}
