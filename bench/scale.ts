// Scale-out benchmark: a 5-fold cross-validation of the demo corpus (leave-one-speaker-out,
// 5 of its 6 speakers, a small in-place model) on the queue (src/queue) with 1, 2 and 5
// `lemer worker` processes on loopback, against a redis-server of its own.
//   npm run bench -- scale [--workers 1,2,5] [--epochs 2] [--folds 5]
// (LEMER_BENCH_LOG=<file> appends the workers' stderr there, with pid and time.)
// Figures: wall time per configuration (`configs[].queue_wall_s`: submit to merged report,
// in the coordinator, which runs in this process), the queue's own cost per job
// (`queue_overhead_ms_per_job` = dispatch, from enqueue, or from the worker's previous job,
// to start, + finish to merged result file), one fold's time (`fold_s`, the 1-worker run's mean
// job time), `five_workers_over_one_fold` (5-worker wall time / one fold's time: measured on
// this machine's cores) and `five_workers_over_one_fold_projected` (the same with a core per
// worker, from the measured overhead and fixed costs: the coordinator's hashing and summary,
// plus the longest fold).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config/load.js';
import { loadCorpus } from '../src/data/corpus.js';
import { loadDemoCorpus } from '../src/data/demo.js';
import { corpusLoadOf, crossValidateOnQueue, type JobTiming } from '../src/queue/index.js';
import { protocolFolds } from '../src/train/cv.js';
import { startRedis } from '../test/queue/helpers.js';
import { benchDir } from './lib/spawn.js';

const MAIN = resolve(benchDir, '../src/cli/main.ts');
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function arg(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
}

function startWorker(url: string, store: string): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'worker', '--queue', url, '--store', store, '--threads', '1'],
    {
      cwd: resolve(benchDir, '..'),
      env: { ...process.env, LEMER_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  return new Promise((done, fail) => {
    proc.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (process.env.LEMER_BENCH_LOG)
        appendFileSync(process.env.LEMER_BENCH_LOG, `[${proc.pid} ${Date.now()}] ${b.toString()}`);
      if (/ready/.test(err)) done(proc);
    });
    proc.on('exit', () => fail(new Error(`a worker exited before it was ready:\n${err}`)));
  });
}

/** Per job: dispatch (enqueue, or the same worker's previous finish, to start) and merge (finish to merged). */
function overheads(ts: JobTiming[]): { dispatch: number[]; merge: number[] } {
  const byWorker = new Map<string, JobTiming[]>();
  for (const t of ts) byWorker.set(t.worker, [...(byWorker.get(t.worker) ?? []), t]);
  const dispatch: number[] = [];
  for (const list of byWorker.values()) {
    list.sort((a, b) => a.startedAt - b.startedAt);
    list.forEach((t, i) =>
      dispatch.push(t.startedAt - Math.max(t.enqueuedAt, i > 0 ? list[i - 1].finishedAt : 0)),
    );
  }
  return { dispatch, merge: ts.map((t) => t.mergedAt - t.finishedAt) };
}

export default async function scale(args: string[]): Promise<Record<string, unknown>> {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0)
    throw new Error('the scale benchmark needs redis-server (Debian: apt-get install redis-server)');
  const counts = arg(args, 'workers', '1,2,5').split(',').map(Number);
  const epochs = Number(arg(args, 'epochs', '2'));
  const nFolds = Number(arg(args, 'folds', '5'));
  const work = mkdtempSync(join(tmpdir(), 'lemer-bench-scale-'));
  // The queue tests' redis-server (127.0.0.1, a free port, no persistence).
  const redis = await startRedis();
  const workers: ChildProcess[] = [];
  try {
    await loadDemoCorpus();
    const corpus = await loadCorpus('demo');
    const cfgFile = join(work, 'small.yaml');
    // Small in-place encoders, a few epochs: the queue's own cost is what is measured.
    writeFileSync(
      cfgFile,
      `corpus: demo
protocol: speaker
seed: 1
runtime: { threads: 1 }
speech: { logMel: { numBins: 16, normalize: none }, specAugment: { enabled: false } }
text: { maxTokens: 32 }
optim: { batchSize: 16, warmupSteps: 0 }
train:
  epochs: ${epochs}
  patience: null
  validFraction: 0.2
  inPlace:
    text: { vocabSize: 200, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32 }
    speech: { hiddenSize: 16, numLayers: 1, numHeads: 2, ffnDim: 32, convKernel: 3 }
`,
    );
    const config0 = loadConfig(cfgFile);
    const config = { ...config0, classes: [...corpus.labels] };
    const folds = protocolFolds(config, corpus)
      .slice(0, nFolds)
      .map((f) => f.name);
    const configs: Record<string, unknown>[] = [];
    const all: JobTiming[] = [];
    let oneFold = NaN;
    let fixed = NaN;
    let longest = NaN;
    for (const n of counts) {
      // A fresh queue and store: every configuration trains all its folds.
      const conn = new Redis(redis.url);
      await conn.flushdb();
      conn.disconnect();
      const store = join(work, `store-${n}`);
      workers.push(...(await Promise.all(Array.from({ length: n }, () => startWorker(redis.url, store)))));
      const out = join(work, `cv-${n}`);
      const t0 = performance.now();
      const { result, run } = await crossValidateOnQueue({
        url: redis.url,
        corpus,
        corpusSpec: 'demo',
        load: corpusLoadOf({}, corpus),
        config,
        model: 'lemer',
        out,
        folds,
        tty: false,
        stream: { write: () => true },
      });
      const wall = (performance.now() - t0) / 1000;
      for (const w of workers.splice(0)) {
        const exited = new Promise((r) => w.once('exit', r));
        w.kill('SIGKILL');
        await exited;
      }
      if (run.failures.length) throw new Error(`jobs failed: ${run.failures.map((f) => f.error).join('; ')}`);
      const o = overheads(run.timings);
      const jobS = run.timings.map((t) => (t.finishedAt - t.startedAt) / 1000);
      all.push(...run.timings);
      if (n === 1 || Number.isNaN(oneFold)) {
        oneFold = mean(jobS);
        longest = Math.max(...jobS);
        // What the coordinator spends besides the jobs and their dispatch: hashing, the summary.
        fixed = wall - jobS.reduce((a, b) => a + b, 0) - o.dispatch.reduce((a, b) => a + b, 0) / 1000;
      }
      configs.push({
        workers: n,
        folds: result.folds.length,
        queue_wall_s: round(wall, 2),
        job_s: { mean: round(mean(jobS), 2), max: round(Math.max(...jobS), 2) },
        dispatch_ms: round(mean(o.dispatch), 1),
        merge_ms: round(mean(o.merge), 1),
        mean_ua: result.mean.ua,
      });
    }
    const o = overheads(all);
    const overhead = mean(o.dispatch) + mean(o.merge);
    const five = configs.find((c) => c.workers === 5) as { queue_wall_s: number } | undefined;
    return {
      corpus: 'demo (leave-one-speaker-out)',
      folds: nFolds,
      epochs,
      model: 'lemer, in-place encoders hidden 16, 1 layer',
      cores: (await import('node:os')).availableParallelism(),
      configs,
      fold_s: round(oneFold, 2),
      queue_overhead_ms_per_job: round(overhead, 1),
      dispatch_ms_per_job: round(mean(o.dispatch), 1),
      merge_ms_per_job: round(mean(o.merge), 1),
      coordinator_fixed_s: round(fixed, 2),
      five_workers_over_one_fold: five ? round(five.queue_wall_s / oneFold, 2) : null,
      five_workers_over_one_fold_projected: round((fixed + longest + overhead / 1000) / oneFold, 2),
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await redis.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
