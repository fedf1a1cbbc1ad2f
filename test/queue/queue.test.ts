/**
 * The queue end to end: a real redis-server, `lemer cv --queue` as the coordinator, `lemer
 * worker` processes beside it (one of another code version, one killed with SIGKILL mid-job),
 * and the merged report checked against a local run's.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyConfigYaml, writeTinyCorpus } from '../train/helpers.js';
import { connectRedis } from '../../src/queue/connection.js';
import { queueCodeVersion, type FoldJobData } from '../../src/queue/jobs.js';
import { openQueue } from '../../src/queue/submit.js';
import { startWorker } from '../../src/queue/worker.js';
import { resolveStore } from '../../src/queue/store.js';
import {
  freePort,
  redisMissing,
  runLemer,
  spawnLemer,
  startRedis,
  stop,
  type RedisServer,
} from './helpers.js';

const missing = redisMissing();
const skip = missing ?? false;
if (missing) console.log(`# ${missing}`);

const work = mkdtempSync(join(tmpdir(), 'lemer-queue-'));
const env: NodeJS.ProcessEnv = { ...process.env, LEMER_CACHE: join(work, 'cache'), LEMER_LOG_LEVEL: '' };
const store = join(work, 'store');
const manifest = writeTinyCorpus(join(work, 'corpus'));
const cfg = join(work, 'tiny.yaml');
// Dropout is off in the tiny config: a job resumed from a checkpoint takes the uninterrupted run's steps.
writeFileSync(cfg, tinyConfigYaml());
let redis: RedisServer | null = null;

before(async () => {
  if (!missing) redis = await startRedis();
});
after(async () => {
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

const cvArgs = (out: string, extra: string[] = []) => [
  '--config',
  cfg,
  'cv',
  '--corpus',
  `manifest:${manifest}`,
  '--fold',
  'ses1',
  '--fold',
  'ses2',
  '--set',
  'train.epochs=12',
  '--out',
  out,
  '--json',
  `${out}.json`,
  ...extra,
];

interface CvJson {
  folds: { name: string; wa: number; ua: number; n: number }[];
  mean: object;
  std: object;
  pooled: object;
  missingFolds: string[];
  failures?: {
    job: string;
    title: string;
    fold: string;
    machine: string | null;
    attempts: number;
    error: string;
  }[];
}
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as CvJson;
const f0 = (r: CvJson) => r.failures![0].fold;

test(
  'cv on the queue: a worker killed mid-job, another resumes it; the report equals a local run',
  { skip, timeout: 300_000 },
  async () => {
    const url = redis!.url;
    const local = join(work, 'local');
    // The uninterrupted reference runs alongside, in its own folder (load does not change results).
    const ref = spawnLemer(cvArgs(local), env);
    const worker = (extra: string[] = [], e = env) =>
      spawnLemer(['worker', '--queue', url, '--store', store, '--lock-seconds', '3', ...extra], e);
    // A worker of another code version refuses every job, and leaves it for the others.
    const old = worker([], { ...env, LEMER_CODE_VERSION: '0.0.0-other' });
    const w1 = worker();
    const w2 = worker();
    await Promise.all([old, w1, w2].map((w) => w.waitFor(/ready/)));
    const queued = join(work, 'queued');
    const coord = spawnLemer(cvArgs(queued, ['--queue', url]), env);

    // w1 is killed once its job has a checkpoint after epoch 2; w2 then takes that job over.
    const started = /job (fold-[0-9a-f]+) \((ses\d)\): started/;
    await w1.waitFor(started, 90_000);
    const [, jobId, fold] = started.exec(w1.stderr())!;
    const foldDir = join(store, 'jobs', jobId, 'folds', fold);
    let killedAt = -1;
    for (let i = 0; i < 6000 && killedAt < 0 && !existsSync(join(foldDir, 'result.json')); i++) {
      await new Promise((r) => setTimeout(r, 10));
      try {
        const t = JSON.parse(readFileSync(join(foldDir, 'last', 'trainer.json'), 'utf8')) as {
          config: { fit: { epoch: number } };
        };
        if (t.config.fit.epoch >= 2) {
          w1.proc.kill('SIGKILL');
          killedAt = t.config.fit.epoch;
        }
      } catch {
        // not written yet, or being replaced right now
      }
    }
    const e1 = await w1.exited;
    assert.equal(e1.signal, 'SIGKILL', `the job ended before its worker could be killed:\n${coord.stderr()}`);
    assert.ok(killedAt >= 2 && killedAt < 12, `killed after epoch ${killedAt}`);
    const ec = await coord.exited;
    assert.equal((await ref.exited).code, 0, ref.stderr());
    await stop(w2, 'SIGTERM');
    await stop(old);
    assert.equal(ec.code, 0, coord.stderr());
    assert.match(w2.stderr(), /resuming after epoch \d+/);
    // The refusal names the job and the machine, on the worker and on the coordinator.
    const refusal = new RegExp(
      `job fold-[0-9a-f]+ \\(ses\\d\\) needs lemer code version [^;]+; worker ${hostname()}:\\d+ on machine ${hostname()} runs 0\\.0\\.0-other`,
    );
    assert.match(old.stderr(), refusal);
    assert.match(coord.stderr(), refusal);

    const a = readJson(`${local}.json`);
    const b = readJson(`${queued}.json`);
    assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort(), 'the same JSON keys as a local run');
    assert.deepEqual(
      b.folds.map((f) => [f.name, f.wa, f.ua, f.n]),
      a.folds.map((f) => [f.name, f.wa, f.ua, f.n]),
    );
    assert.deepEqual([b.mean, b.std, b.pooled], [a.mean, a.std, a.pooled]);
    for (const fold of ['ses1', 'ses2']) {
      type R = { logits: number[][]; fits: { history: unknown[] }[] };
      const fa = JSON.parse(readFileSync(join(local, 'folds', fold, 'result.json'), 'utf8')) as R;
      const fb = JSON.parse(readFileSync(join(queued, 'folds', fold, 'result.json'), 'utf8')) as R;
      assert.deepEqual(fb.logits, fa.logits, `fold ${fold}: logits`);
      assert.deepEqual(fb.fits[0].history, fa.fits[0].history, `fold ${fold}: training curve`);
    }
    assert.ok(
      existsSync(join(queued, 'report.md')) && existsSync(join(queued, 'folds', 'ses1', 'curves.png')),
    );

    // Submitted again (no worker running): the finished jobs are found by their identity.
    const again = join(work, 'again');
    const rc = await runLemer(cvArgs(again, ['--queue', url]), env);
    assert.equal(rc.code, 0, rc.stderr);
    assert.match(rc.stderr, /2 jobs finished in an earlier submission: taken/);
    assert.deepEqual(readJson(`${again}.json`).folds, b.folds);
  },
);

test(
  'a job whose corpus is missing on the worker fails at once, named in the report',
  { skip, timeout: 200_000 },
  async () => {
    const url = redis!.url;
    const out = join(work, 'partial');
    const coord = spawnLemer(
      [
        '--config',
        cfg,
        'cv',
        '--corpus',
        `manifest:${manifest}`,
        '--fold',
        'ses1',
        '--fold',
        'ses2',
        '--set',
        'seed=8',
        '--set',
        'train.epochs=2',
        '--out',
        out,
        '--json',
        `${out}.json`,
        '--queue',
        url,
        '--attempts',
        '3',
      ],
      env,
    );
    // A machine that mounts the corpus elsewhere (where it is not) takes one job; another the other.
    const elsewhere = join(work, 'not-mounted');
    const bad = await runLemer(
      ['worker', '--queue', url, '--store', store, '--max-jobs', '1', '--map-path', `${work}=${elsewhere}`],
      env,
    );
    await coord.waitFor(/2 jobs on the queue/);
    assert.equal(bad.code, 0, bad.stderr);
    assert.match(bad.stderr, /1 job finished \(--max-jobs\), stopping/);
    const where = `on machine ${hostname()}: the corpus path ${join(elsewhere, 'corpus', 'manifest.jsonl')} (${manifest} there, --map-path)`;
    assert.ok(bad.stderr.includes(where), bad.stderr);
    const good = spawnLemer(['worker', '--queue', url, '--store', store], env);
    const ec = await coord.exited;
    await stop(good, 'SIGTERM');
    assert.equal(ec.code, 1, coord.stderr());
    assert.match(coord.stderr(), /1 job failed on the queue \(listed in the report\)/);
    assert.ok(coord.stderr().includes(where), coord.stderr());
    const r = readJson(`${out}.json`);
    assert.equal(r.folds.length, 1);
    // ses3 was not asked for: missing as in a local run with --fold.
    assert.deepEqual([...r.missingFolds].sort(), [f0(r), 'ses3'].sort());
    assert.equal(r.failures?.length, 1);
    const f = r.failures![0];
    assert.equal(f.attempts, 1, 'a missing corpus is not retried');
    assert.match(f.error, new RegExp(`^job ${f.job} \\(${f.fold}\\) on machine`));
    assert.ok(f.error.includes('does not exist on this machine'), f.error);
    assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /## Failed jobs/);
  },
);

test(
  'an unreachable Redis is a fast, clear error naming the URL; a bucket store is refused',
  { skip, timeout: 60_000 },
  async () => {
    const url = `redis://127.0.0.1:${await freePort()}/0`;
    const t0 = Date.now();
    await assert.rejects(connectRedis(url), {
      message: new RegExp(`^cannot reach the queue's Redis at ${url}: .*ECONNREFUSED`),
    });
    assert.ok(Date.now() - t0 < 6000, `took ${Date.now() - t0} ms`);
    assert.throws(
      () => resolveStore('s3://bucket/runs'),
      /--store s3:\/\/bucket\/runs: s3:\/\/ stores are not supported yet; only directories are/,
    );
    const r = await runLemer(cvArgs(join(work, 'nowhere'), ['--queue', url]), env);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`lemer: cannot reach the queue's Redis at ${url}`), r.stderr);
  },
);

test(
  'a bad config fails its job at once (no retries), naming the job and the machine',
  { skip, timeout: 60_000 },
  async () => {
    const { queue, close } = await openQueue(redis!.url);
    const w = await startWorker({ url: redis!.url, store, lockSeconds: 3 });
    try {
      const data = {
        format: 'lemer-fold-job',
        title: 'bad ses1',
        cell: 'bad',
        fold: 'ses1',
        model: 'text',
        config: { train: { epochs: -1 } },
        corpus: { spec: `manifest:${manifest}`, load: { labels: ['hi', 'lo'] }, hash: 'none' },
        codeVersion: queueCodeVersion(),
        submittedFrom: 'test',
      } as unknown as FoldJobData;
      const job = await queue.add('bad ses1', data, { jobId: 'fold-badconfig', attempts: 3 });
      let state = await job.getState();
      for (let i = 0; i < 600 && state !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        state = await queue.getJobState(job.id!);
      }
      assert.equal(state, 'failed');
      const failed = (await queue.getJob(job.id!))!;
      assert.equal(failed.attemptsMade, 1, 'not retried');
      assert.match(
        failed.failedReason,
        new RegExp(
          `^job fold-badconfig \\(bad ses1\\) on machine ${hostname()}: bad config: .*train\\.epochs`,
          's',
        ),
      );
    } finally {
      await w.close(true);
      await close();
    }
  },
);
