/**
 * The queue end to end: a real redis-server, `lemer cv --queue` as the coordinator, `lemer
 * worker` processes beside it (one of another code version, one killed with SIGKILL mid-job),
 * and the merged report checked against a local run's.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyConfigYaml, writeTinyCorpus } from '../train/helpers.js';
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
const env = { ...process.env, LEMER_CACHE: join(work, 'cache'), LEMER_LOG_LEVEL: '' };
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
  'train.epochs=30',
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

/** The epoch of the newest checkpoint of a job still running in the store (-1: none). */
function runningCheckpointEpoch(): number {
  const jobs = join(store, 'jobs');
  if (!existsSync(jobs)) return -1;
  for (const j of readdirSync(jobs)) {
    const folds = join(jobs, j, 'folds');
    if (!existsSync(folds)) continue;
    for (const f of readdirSync(folds)) {
      if (existsSync(join(folds, f, 'result.json'))) continue;
      try {
        const t = JSON.parse(readFileSync(join(folds, f, 'last', 'trainer.json'), 'utf8')) as {
          config: { fit: { epoch: number } };
        };
        return t.config.fit.epoch;
      } catch {
        // not written yet, or being replaced right now
      }
    }
  }
  return -1;
}

test(
  'cv on the queue: a worker killed mid-job, another resumes it; the report equals a local run',
  { skip, timeout: 150_000 },
  async () => {
    const url = redis!.url;
    const local = join(work, 'local');
    const ra = await runLemer(cvArgs(local), env);
    assert.equal(ra.code, 0, ra.stderr);

    const worker = (extra: string[] = [], e = env) =>
      spawnLemer(['worker', '--queue', url, '--store', store, '--lock-seconds', '2', ...extra], e);
    // A worker of another code version refuses every job, and leaves it for the others.
    const old = worker([], { ...env, LEMER_CODE_VERSION: '0.0.0-other' });
    const w1 = worker();
    await Promise.all([old.waitFor(/ready/), w1.waitFor(/ready/)]);
    const queued = join(work, 'queued');
    const coord = spawnLemer(cvArgs(queued, ['--queue', url]), env);

    let killedAt = -1;
    for (let i = 0; i < 6000 && killedAt < 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (coord.proc.exitCode !== null) break;
      const epoch = runningCheckpointEpoch();
      if (epoch >= 3) {
        w1.proc.kill('SIGKILL');
        killedAt = epoch;
      }
    }
    const e1 = await w1.exited;
    assert.equal(e1.signal, 'SIGKILL', `the job ended before its worker could be killed:\n${coord.stderr()}`);
    assert.ok(killedAt >= 3 && killedAt < 30, `killed after epoch ${killedAt}`);
    const w2 = worker();
    const ec = await coord.exited;
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
  { skip, timeout: 120_000 },
  async () => {
    const url = redis!.url;
    const copy = join(work, 'corpus-copy');
    cpSync(join(work, 'corpus'), copy, { recursive: true });
    const out = join(work, 'partial');
    const coord = spawnLemer(
      [
        '--config',
        cfg,
        'cv',
        '--corpus',
        `manifest:${join(copy, 'manifest.jsonl')}`,
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
    await coord.waitFor(/2 jobs on the queue/);
    // One job runs while the corpus is there; then it is gone from this "machine".
    const first = await runLemer(['worker', '--queue', url, '--store', store, '--max-jobs', '1'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /1 job finished \(--max-jobs\), stopping/);
    renameSync(copy, `${copy}-gone`);
    const w = spawnLemer(['worker', '--queue', url, '--store', store, '--lock-seconds', '2'], env);
    const ec = await coord.exited;
    await stop(w, 'SIGTERM');
    assert.equal(ec.code, 1, coord.stderr());
    const where = `on machine ${hostname()}: the corpus path ${join(copy, 'manifest.jsonl')}`;
    assert.match(coord.stderr(), /1 job failed on the queue \(listed in the report\)/);
    assert.ok(coord.stderr().includes(where), coord.stderr());
    assert.ok(w.stderr().includes(where), w.stderr());
    const r = readJson(`${out}.json`);
    assert.equal(r.folds.length, 1);
    assert.equal(r.missingFolds.length, 1);
    assert.equal(r.failures?.length, 1);
    const f = r.failures![0];
    assert.equal(f.fold, r.missingFolds[0]);
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
    const [cv, w] = await Promise.all([
      runLemer(cvArgs(join(work, 'nowhere'), ['--queue', url]), env),
      runLemer(['worker', '--queue', url], env),
    ]);
    for (const r of [cv, w]) {
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(`lemer: cannot reach the queue's Redis at ${url}`), r.stderr);
    }
    assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
    const s3 = await runLemer(['worker', '--queue', redis!.url, '--store', 's3://bucket/runs'], env);
    assert.equal(s3.code, 1);
    assert.match(
      s3.stderr,
      /--store s3:\/\/bucket\/runs: s3:\/\/ stores are not supported yet; only directories are/,
    );
  },
);
