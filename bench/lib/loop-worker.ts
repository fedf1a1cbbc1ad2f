// Per-step time of K steps per run against one step per run, measured in ONE process so
// that the K values alternate within seconds of each other (the machine is shared and
// its load drifts; fresh processes per K, as in engine-worker.ts, are minutes apart):
//   node --import tsx --expose-gc bench/lib/loop-worker.ts <batch> <blocks> <k1,k2,...>
// Each block runs L = max(K) steps with every trainer, in rotating order; prints one JSON
// object with each block's per-step times. Peak memory needs fresh processes: engine-worker.ts.
import type { HostTensor } from '../../src/graph/index.js';
import { ParameterStore } from '../../src/graph/params.js';
import { Trainer } from '../../src/graph/train.js';
import * as ops from '../../src/graph/ops/index.js';
import { encoderLayer } from './bert-layer.js';

const [bArg, blocksArg, ksArg] = process.argv.slice(2);
const B = Number(bArg ?? 4);
const blocks = Number(blocksArg ?? 8);
const ks = (ksArg ?? '1,4,16').split(',').map(Number);
const S = 150;
const L = Math.max(...ks);
if (ks.some((k) => L % k !== 0)) throw new Error(`every K must divide the largest (${L})`);

// Deterministic data (values do not matter for timing); same padding as engine-worker.ts.
const x = new Float32Array(B * S * 768);
let s = 1;
for (let i = 0; i < x.length; i++)
  x[i] = ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const mask = new Float32Array(B * S);
for (let b = 0; b < B; b++) for (let t = S - ((b * 13) % 50); t < S; t++) mask[b * S + t] = -10000;
const batch: Record<string, HostTensor> = {
  x: { dtype: 'float32', shape: [B, S, 768], data: x },
  mask: { dtype: 'float32', shape: [B, 1, 1, S], data: mask },
};

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let params: ParameterStore | null = null;
const trainers = new Map<number, Trainer>();
for (const k of ks) {
  const t = await Trainer.create({
    inputs: {
      x: { dtype: 'float32', shape: ['batch', 'seq', 768] },
      mask: { dtype: 'float32', shape: ['batch', 1, 1, 'seq'] },
    },
    build: (g, i) => {
      const y = encoderLayer(g, i.x, i.mask);
      return { loss: ops.reduceMean(ops.mul(y, y), [0, 1, 2]) };
    },
    optimizer: { kind: 'adam', lr: 1e-4 },
    stepsPerRun: k,
    params: params ? params.clone() : undefined, // same start, own store
    runtime: { threads: 2 },
  });
  params ??= t.params.clone();
  trainers.set(k, t);
}
const runs = (k: number) => Array.from({ length: k }, () => batch);
/**
 * L steps in runs of k: wall and process CPU time inside the runs (gc between runs not
 * counted). CPU time is less sensitive to other processes on the machine than wall time.
 */
const stepsOf = async (k: number): Promise<{ wall: number; cpu: number }> => {
  const t = trainers.get(k)!;
  let wall = 0;
  let cpu = 0;
  for (let r = 0; r < L / k; r++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    if (k === 1) await t.step(batch);
    else await t.steps(runs(k));
    const c = process.cpuUsage(c0);
    wall += performance.now() - t0;
    cpu += (c.user + c.system) / 1000;
    gc(); // as measure.ts does: freed output arrays go back to the allocator between runs
  }
  return { wall, cpu };
};
for (const k of ks) await stepsOf(k); // warm-up: one block each
const perStep: Record<number, number[]> = Object.fromEntries(ks.map((k) => [k, []]));
const cpuPerStep: Record<number, number[]> = Object.fromEntries(ks.map((k) => [k, []]));
for (let b = 0; b < blocks; b++) {
  const order = ks.map((_, i) => ks[(i + b) % ks.length]);
  for (const k of order) {
    gc();
    await sleep(50); // let the previous session's spinning threads settle
    const { wall, cpu } = await stepsOf(k);
    perStep[k].push(wall / L);
    cpuPerStep[k].push(cpu / L);
  }
}
for (const t of trainers.values()) await t.release();
console.log(
  JSON.stringify({
    batch: B,
    seq: S,
    steps_per_block: L,
    blocks,
    per_step_ms: perStep,
    cpu_per_step_ms: cpuPerStep,
  }),
);
