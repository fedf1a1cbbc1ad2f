import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { tinyConfigYaml, writeTinyCorpus } from '../train/helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'src/cli/main.ts');
const work = mkdtempSync(join(tmpdir(), 'lemer-resume-'));
after(() => rmSync(work, { recursive: true, force: true }));
const env = { ...process.env, LEMER_CACHE: join(work, 'cache'), LEMER_LOG_LEVEL: '' };

function lemer(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { cwd: ROOT, env, timeout: 90_000 },
      (err, stdout, stderr) =>
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const manifest = writeTinyCorpus(join(work, 'corpus'));
const cfg = join(work, 'tiny.yaml');
// Dropout is off in the tiny config: a resumed run then takes exactly the uninterrupted run's steps.
writeFileSync(cfg, tinyConfigYaml());
const args = (out: string) => [
  '--config',
  cfg,
  'train',
  '--corpus',
  `manifest:${manifest}`,
  '--out',
  out,
  '--set',
  'train.epochs=40',
  '--json',
  `${out}.json`,
];

test('kill -9 mid-run, then --resume: the same metrics and logits as an uninterrupted run', async () => {
  const a = join(work, 'a');
  const ra = await lemer(args(a));
  assert.equal(ra.code, 0, ra.stderr);

  const b = join(work, 'b');
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args(b)], {
    cwd: ROOT,
    env,
    stdio: 'ignore',
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((done) =>
    child.on('exit', (code, signal) => done({ code, signal })),
  );
  const last = join(b, 'folds', 'ses1', 'last', 'trainer.json');
  let killedAt = -1;
  for (let i = 0; i < 6000 && killedAt < 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    if (child.exitCode !== null) break;
    if (!existsSync(last)) continue;
    try {
      const epoch = (JSON.parse(readFileSync(last, 'utf8')) as { config: { fit: { epoch: number } } }).config
        .fit.epoch;
      if (epoch >= 3) {
        child.kill('SIGKILL');
        killedAt = epoch;
      }
    } catch {
      // being replaced right now: look again
    }
  }
  const ex = await exited;
  assert.equal(ex.signal, 'SIGKILL', 'the run ended before it could be killed');
  assert.ok(killedAt >= 3 && killedAt < 40, `killed after epoch ${killedAt}`);
  assert.ok(!existsSync(join(b, 'folds', 'ses1', 'result.json')), 'a killed run leaves no result');

  const rc = await lemer([...args(b), '--resume']);
  assert.equal(rc.code, 0, rc.stderr);
  assert.match(rc.stderr, /resuming after epoch \d+/);
  const ja = JSON.parse(readFileSync(`${a}.json`, 'utf8')) as {
    folds: { wa: number; ua: number }[];
    mean: object;
  };
  const jc = JSON.parse(readFileSync(`${b}.json`, 'utf8')) as typeof ja;
  assert.deepEqual(
    jc.folds.map((f) => [f.wa, f.ua]),
    ja.folds.map((f) => [f.wa, f.ua]),
  );
  assert.deepEqual(jc.mean, ja.mean);
  const fa = JSON.parse(readFileSync(join(a, 'folds', 'ses1', 'result.json'), 'utf8')) as {
    logits: number[][];
    fits: { history: unknown[] }[];
  };
  const fc = JSON.parse(readFileSync(join(b, 'folds', 'ses1', 'result.json'), 'utf8')) as typeof fa;
  assert.deepEqual(fc.logits, fa.logits);
  assert.deepEqual(fc.fits[0].history, fa.fits[0].history);

  // A checkpoint from another model (or label set, or config) is refused, naming the difference.
  rmSync(join(b, 'folds', 'ses1', 'result.json'));
  const wrong = await lemer([...args(b), '--resume', '--model', 'text']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /checkpoint is from another run \(model: checkpoint "lemer", this run "text"\)/);
});
