import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { averageParams, BEST_CHECKPOINT, TOP_CHECKPOINTS, type FitState } from '../../src/train/fit.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/graph/checkpoint.js';
import { hostTensor } from '../../src/graph/runtime.js';
import { firstSpeechFold } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-avg-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('averageParams: element-wise mean of float parameters, integer buffers from the first', () => {
  const dirs = [
    [1, 2, 3, 5n],
    [3, 6, -3, 9n],
    [5, 1, 0, 1n],
  ].map((v, k) => {
    const dir = join(work, `ck${k}`);
    saveCheckpoint(dir, {
      params: {
        w: hostTensor(new Float32Array([v[0] as number, v[1] as number, v[2] as number]), [3]),
        steps: hostTensor(new BigInt64Array([v[3] as bigint]), [1]),
      },
    });
    return dir;
  });
  const avg = averageParams(dirs);
  assert.deepEqual(Array.from(avg.get('w')!.data as Float32Array), [3, 3, 0]);
  assert.deepEqual(Array.from(avg.get('steps')!.data as BigInt64Array), [5n]);
});

test('train.averageBest: the test weights (best/) are the mean of the N best validation checkpoints', async () => {
  const { foldDir } = await firstSpeechFold(work, { train: { averageBest: 3, epochs: 5 } });
  const trainer = JSON.parse(readFileSync(join(foldDir, 'last', 'trainer.json'), 'utf8')) as {
    config: { fit: FitState };
  };
  const top = trainer.config.fit.top!;
  assert.equal(top.length, 3, 'three best validations kept');
  for (let i = 1; i < top.length; i++) assert.ok(top[i - 1].ua >= top[i].ua, 'best first');
  const kept = readdirSync(join(foldDir, TOP_CHECKPOINTS)).sort();
  assert.deepEqual(kept, top.map((t) => `epoch-${String(t.epoch).padStart(4, '0')}`).sort());
  const members = kept.map(
    (k) => loadCheckpoint(join(foldDir, TOP_CHECKPOINTS, k), { optimizer: false }).params,
  );
  const best = loadCheckpoint(join(foldDir, BEST_CHECKPOINT), { optimizer: false }).params;
  let checked = 0;
  for (const [name, t] of best.entries()) {
    if (!(t.data instanceof Float32Array)) continue;
    const parts = members.map((m) => m.get(name)!.data as Float32Array);
    for (let i = 0; i < t.data.length; i += 7) {
      const mean = (parts[0][i] + parts[1][i] + parts[2][i]) / 3;
      assert.ok(Math.abs(t.data[i] - mean) <= 1e-6 * (1 + Math.abs(mean)), `${name}[${i}]`);
      checked++;
    }
  }
  assert.ok(checked > 100, `checked ${checked} values`);
  // The members differ: an average of identical checkpoints would prove nothing.
  const w = [...best.entries()]
    .map(([n]) => n)
    .find((n) => best.get(n)!.data instanceof Float32Array && best.get(n)!.data.length > 50)!;
  assert.notDeepEqual(members[0].get(w)!.data, members[1].get(w)!.data);
});
