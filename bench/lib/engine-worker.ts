// One engine benchmark in a fresh process (so peak memory is its own):
//   node --import tsx --expose-gc bench/lib/engine-worker.ts layer <batch> [microBatches] [stepsPerRun]
//   node --import tsx --expose-gc bench/lib/engine-worker.ts conv <batch> [samples]
// Prints one JSON object. The computations mirror bench/torch_reference.py.
import type { Graph, HostTensor, InputDecl, Tensor } from '../../src/graph/index.js';
import { ParameterStore } from '../../src/graph/params.js';
import { Predictor, Trainer } from '../../src/graph/train.js';
import * as ops from '../../src/graph/ops/index.js';
import { encoderLayer } from './bert-layer.js';
import { convLayer0 } from './conv-layer.js';
import { measure, rssMb } from './measure.js';

const THREADS = 2;
const runtime = {
  threads: THREADS,
  // Experiments: LEMER_BENCH_ARENA=0 turns ORT's CPU arena off.
  ...(process.env.LEMER_BENCH_ARENA === '0' ? { enableCpuMemArena: false } : {}),
};
const adam = { kind: 'adam' as const, lr: 1e-4, betas: [0.9, 0.999] as const, eps: 1e-8 };

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = (s + 0.5) / 2 ** 32;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = (s + 0.5) / 2 ** 32;
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** Forward (Predictor, eval mode) then training steps (Trainer) of one model over the same weights. */
async function forwardAndTrain(
  inputs: Record<string, InputDecl>,
  batch: Record<string, HostTensor>,
  forwardOut: (g: Graph, x: Record<string, Tensor>) => Tensor,
  loss: (g: Graph, x: Record<string, Tensor>) => Tensor,
  opts: { microBatches?: number; stepsPerRun?: number } = {},
) {
  const params = new ParameterStore();
  const fwd = await Predictor.create({ inputs, build: (g, x) => ({ y: forwardOut(g, x) }), params, runtime });
  const baseline = rssMb();
  const forward = await measure(() => fwd.run(batch));
  await fwd.release();
  const K = opts.stepsPerRun ?? 1;
  const trainer = await Trainer.create({
    inputs,
    build: (g, x) => ({ loss: loss(g, x) }),
    optimizer: adam,
    microBatches: opts.microBatches ?? 1,
    stepsPerRun: K,
    params,
    runtime,
  });
  // K > 1: K steps per run (an ONNX Loop); times are per step (run time / K).
  const run = await measure(() =>
    K > 1 ? trainer.steps(Array.from({ length: K }, () => batch)) : trainer.step(batch),
  );
  const perStep = (x: number) => Math.round((x / K) * 1000) / 1000;
  await trainer.release();
  return {
    baseline,
    forward,
    train: { ...run, median: perStep(run.median), min: perStep(run.min), p90: perStep(run.p90) },
  };
}

async function layer(B: number, micro: number, K = 1): Promise<Record<string, unknown>> {
  const S = 150;
  // Same padding as the PyTorch side: sequence b keeps S - (b * 13) % (S / 3) tokens.
  const mask = new Float32Array(B * S);
  for (let b = 0; b < B; b++) {
    const n = S - ((b * 13) % Math.max(1, Math.floor(S / 3)));
    for (let t = n; t < S; t++) mask[b * S + t] = -10000;
  }
  const batch: Record<string, HostTensor> = {
    x: { dtype: 'float32', shape: [B, S, 768], data: randn(B * S * 768, 1) },
    mask: { dtype: 'float32', shape: [B, 1, 1, S], data: mask },
  };
  const inputs = {
    x: { dtype: 'float32' as const, shape: ['batch', 'seq', 768] },
    mask: { dtype: 'float32' as const, shape: ['batch', 1, 1, 'seq'] },
  };

  const { baseline, forward, train } = await forwardAndTrain(
    inputs,
    batch,
    (g, x) => encoderLayer(g, x.x, x.mask),
    (g, x) => {
      const y = encoderLayer(g, x.x, x.mask);
      return ops.reduceMean(ops.mul(y, y), [0, 1, 2]);
    },
    { microBatches: micro, stepsPerRun: K },
  );
  return {
    batch: B,
    seq: S,
    micro_batches: micro,
    steps_per_run: K,
    baseline_rss_mb: baseline,
    layer_forward: forward,
    layer_train: train,
  };
}

async function conv(B: number, samples: number): Promise<Record<string, unknown>> {
  const batch: Record<string, HostTensor> = {
    wav: { dtype: 'float32', shape: [B, 1, samples], data: randn(B * samples, 2) },
  };
  const inputs = { wav: { dtype: 'float32' as const, shape: ['batch', 1, 'samples'] } };
  // The layer's [B, 512, frames] output is reduced to its mean in the graph: in a model the
  // next layer reads it in place, whereas handing 78 MB back to JS would add a copy
  // (~25 ms) that no model pays. The reduction itself (one more pass) is counted.
  const meanOut = (_g: Graph, x: Record<string, Tensor>) => ops.reduceMean(convLayer0(x.wav), [0, 1, 2]);
  const { baseline, forward, train } = await forwardAndTrain(inputs, batch, meanOut, meanOut);
  return {
    conv_batch: B,
    conv_samples: samples,
    baseline_rss_mb: baseline,
    conv_forward: forward,
    conv_train: train,
  };
}

const [what, a, b, c] = process.argv.slice(2);
const result =
  what === 'layer'
    ? await layer(Number(a ?? 4), Number(b ?? 1), Number(c ?? 1))
    : what === 'conv'
      ? await conv(Number(a ?? 4), Number(b ?? 48000))
      : null;
if (!result) {
  console.error(
    'usage: engine-worker.ts layer <batch> [microBatches] [stepsPerRun] | conv <batch> [samples]',
  );
  process.exit(2);
}
console.log(JSON.stringify(result));
