/**
 * A bounded work queue in front of one inference worker thread. Jobs past the bound are
 * refused at once (the server answers 503 with Retry-After) rather than waiting without
 * end; a job that outlives its timeout is answered 504, and still occupies the queue until
 * the worker finishes it (ONNX Runtime cannot cancel a run), so the bound stays honest.
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
  started: number;
}

/** The worker file next to this one: worker.ts under tsx (tests), worker.js once built. */
function workerFile(): URL {
  const ts = new URL('./worker.ts', import.meta.url);
  return import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(ts))
    ? ts
    : new URL('./worker.js', import.meta.url);
}

export class InferencePool {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private dead: string | null = null;
  private closing = false;
  /** Mean seconds per job (exponential average), for Retry-After. */
  private meanSeconds = 0.5;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
    readonly maxQueue: number,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => this.fail(`the inference worker failed: ${err.message}`));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(`the inference worker exited (code ${code})`);
    });
  }

  /** Starts the worker and waits until it has loaded the model (its errors name the folder). */
  static async start(opts: PoolOptions): Promise<InferencePool> {
    const init: WorkerInit = { dir: opts.dir, int8: opts.int8, threads: opts.threads };
    const file = workerFile();
    // Under tsx (tests) a worker's entry file is not run through tsx's loader: register it first.
    const worker = file.pathname.endsWith('.ts')
      ? new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); });`,
          { eval: true, workerData: init },
        )
      : new Worker(file, { workerData: init });
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      const onExit = (code: number) =>
        reject(new Error(`the inference worker exited (code ${code}) while loading ${opts.dir}`));
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
    return new InferencePool(worker, info, Math.max(1, opts.maxQueue ?? 16));
  }

  /** Jobs running or waiting. */
  get depth(): number {
    return this.pending.size;
  }

  get healthy(): boolean {
    return this.dead === null && !this.closing;
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

  private submit<T>(make: (id: number) => ToWorker, timeoutMs: number): Promise<T> {
    if (this.dead) return Promise.reject(new HttpError(503, 'model_unavailable', this.dead));
    if (this.closing)
      return Promise.reject(new HttpError(503, 'shutting_down', 'the server is shutting down'));
    if (this.pending.size >= this.maxQueue)
      return Promise.reject(
        new HttpError(
          503,
          'queue_full',
          `${this.pending.size} predictions are running or waiting (the bound is ${this.maxQueue}): try again shortly`,
          { 'retry-after': String(this.retryAfterSeconds()) },
        ),
      );
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = {
        resolve: resolve as (v: unknown) => void,
        reject,
        abandoned: false,
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
      this.worker.postMessage(make(id));
    });
  }

  private onMessage(m: FromWorker): void {
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

  private fail(message: string): void {
    if (this.dead) return;
    this.dead = message;
    for (const p of this.pending.values())
      if (!p.abandoned) p.reject(new HttpError(503, 'model_unavailable', message));
    this.pending.clear();
  }

  /** Waits for the jobs in flight, then stops the worker. */
  async close(): Promise<void> {
    this.closing = true;
    while (this.pending.size > 0 && !this.dead) await new Promise((r) => setTimeout(r, 10));
    await this.worker.terminate();
  }
}
