// One encoder benchmark figure in a fresh process (so peak memory is its own):
//   node --import tsx --expose-gc bench/lib/encoders-worker.ts <bert|w2v2> <forward|train|train-frozen> [repeats]
//   node --import tsx --expose-gc bench/lib/encoders-worker.ts <bert|w2v2> dump <dir>
//   node --import tsx --expose-gc bench/lib/encoders-worker.ts matmul <n>
// Prints one JSON object. `dump` writes the random weights, the inputs and lemer's last
// hidden state as safetensors for bench/torch_encoders.py --diff. The inputs mirror
// bench/torch_encoders.py (same shapes, padding and loss).
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph, HostTensor, Tensor } from '../../src/graph/index.js';
import { ParameterStore } from '../../src/graph/params.js';
import { writeSafetensors } from '../../src/graph/safetensors.js';
import { Predictor, Trainer } from '../../src/graph/train.js';
import * as ops from '../../src/graph/ops/index.js';
import type { Encoder } from '../../src/models/encoder.js';
import { measure, rssMb } from './measure.js';
import { BERT_SHAPE, W2V2_SHAPE, bertBatch, w2v2Batch } from './encoder-inputs.js';

const THREADS = 2;
// LEMER_BENCH_PROFILE=<prefix>: ORT profiling of the measured runs, summarised by op type.
const profilePrefix = process.env.LEMER_BENCH_PROFILE;
const runtime = { threads: THREADS, ...(profilePrefix ? { profilePrefix } : {}) };

/** Kernel time per op type (ms per run) from an ORT trace, largest first. */
function profileSummary(file: string | null, runs: number): Record<string, number> | null {
  if (!file) return null;
  const events = JSON.parse(readFileSync(file, 'utf8')) as {
    cat?: string;
    name?: string;
    dur?: number;
    args?: { op_name?: string };
  }[];
  const by = new Map<string, number>();
  for (const e of events)
    if (e.cat === 'Node' && e.name?.endsWith('_kernel_time') && e.args?.op_name)
      by.set(e.args.op_name, (by.get(e.args.op_name) ?? 0) + (e.dur ?? 0));
  return Object.fromEntries(
    [...by.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([k, v]) => [k, Math.round(v / 1000 / runs)]),
  );
}
const adam = { kind: 'adam' as const, lr: 1e-4, betas: [0.9, 0.999] as const, eps: 1e-8 };

type Model = 'bert' | 'w2v2';

/** The encoder from the colleagues' registry; null with the reason when it is not there (yet). */
async function encoderOf(
  model: Model,
  freezeFeatureEncoder: boolean,
): Promise<{ enc: Encoder } | { missing: string }> {
  const type = model === 'bert' ? 'bert' : 'wav2vec2';
  try {
    const reg = await import('../../src/models/encoders.js');
    if (reg.encoderModelTypes().includes(type))
      return { enc: reg.createEncoder(type, {}, { freezeFeatureEncoder }) };
  } catch (err) {
    if (model === 'bert') return { missing: `src/models/encoders.ts: ${(err as Error).message}` };
  }
  if (model === 'w2v2')
    try {
      // Not (yet) in the registry: the family's own builder.
      const w = await import('../../src/models/wav2vec2/index.js');
      return { enc: w.wav2vec2Encoder({}, { freezeFeatureEncoder }) };
    } catch (err) {
      return { missing: `src/models/wav2vec2: ${(err as Error).message}` };
    }
  return { missing: `model_type '${type}' is not registered in src/models/encoders.ts` };
}

const batchOf = (model: Model): Record<string, HostTensor> => (model === 'bert' ? bertBatch() : w2v2Batch());

/** Feeds for exactly the inputs the encoder declares (RoBERTa-style configs have no token types). */
function feedsFor(enc: Encoder, batch: Record<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const n of Object.keys(enc.inputs)) {
    if (!batch[n]) throw new Error(`bench: the encoder wants input '${n}', the bench has none`);
    out[n] = batch[n];
  }
  return out;
}

const hidden = (enc: Encoder, training: boolean) => (g: Graph, x: Record<string, Tensor>) =>
  enc.build(g, x, { training }).hidden;

async function figure(model: Model, phase: string, repeats: number): Promise<Record<string, unknown>> {
  const got = await encoderOf(model, phase === 'train-frozen');
  if ('missing' in got) return { available: false, reason: got.missing };
  const { enc } = got;
  const batch = feedsFor(enc, batchOf(model));
  const params = new ParameterStore();
  // BERT-base steps take seconds: one warm-up (graph set-up, first-touch pages), then `repeats`.
  const timing = { warmup: 1, repeats, maxSeconds: 60 };
  const t0 = performance.now();
  if (phase === 'forward') {
    const p = await Predictor.create({
      inputs: enc.inputs,
      build: (g, x) => ({ y: hidden(enc, false)(g, x) }),
      params,
      runtime,
    });
    const setup = performance.now() - t0;
    const baseline = rssMb();
    const t = await measure(() => p.run(batch), timing);
    const profile = profilePrefix
      ? profileSummary(p.compiled.endProfiling(), t.runs + timing.warmup)
      : undefined;
    await p.release();
    return {
      available: true,
      phase,
      setup_ms: Math.round(setup),
      baseline_rss_mb: baseline,
      timing: t,
      profile,
    };
  }
  const trainer = await Trainer.create({
    inputs: enc.inputs,
    // Same loss as the PyTorch side: mean of the squared last hidden state.
    build: (g, x) => {
      const h = hidden(enc, true)(g, x);
      return { loss: ops.reduceMean(ops.mul(h, h), [0, 1, 2]) };
    },
    optimizer: adam,
    params,
    runtime,
  });
  const setup = performance.now() - t0;
  const baseline = rssMb();
  const t = await measure(() => trainer.step(batch), timing);
  const profile = profilePrefix
    ? profileSummary(trainer.compiled.endProfiling(), t.runs + timing.warmup)
    : undefined;
  const trained = trainer.built.trained.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  await trainer.release();
  return {
    available: true,
    phase,
    setup_ms: Math.round(setup),
    baseline_rss_mb: baseline,
    trained_parameters: trained,
    timing: t,
    profile,
  };
}

/** Random weights, inputs and lemer's last hidden state (eval mode), for the PyTorch comparison. */
async function dump(model: Model, dir: string): Promise<Record<string, unknown>> {
  const got = await encoderOf(model, false);
  if ('missing' in got) return { available: false, reason: got.missing };
  const { enc } = got;
  mkdirSync(dir, { recursive: true });
  const batch = feedsFor(enc, batchOf(model));
  const params = new ParameterStore();
  const p = await Predictor.create({
    inputs: enc.inputs,
    build: (g, x) => ({ y: hidden(enc, false)(g, x) }),
    params,
    runtime,
  });
  const y = (await p.run(batch)).y;
  await p.release();
  writeSafetensors(join(dir, 'weights.safetensors'), params.toRecord());
  writeSafetensors(join(dir, 'inputs.safetensors'), batch);
  writeSafetensors(join(dir, 'hidden.safetensors'), { last_hidden_state: y });
  return { available: true, dir, parameters: params.size, hidden_shape: y.shape };
}

/** GFLOP/s of one large square matmul (the machine's practical peak for ORT at 2 threads). */
async function matmul(n: number): Promise<Record<string, unknown>> {
  const rnd = (k: number) => Float32Array.from({ length: k }, (_, i) => Math.sin(i * 12.9898) * 0.5);
  const p = await Predictor.create({
    inputs: { a: { dtype: 'float32', shape: [n, n] }, b: { dtype: 'float32', shape: [n, n] } },
    // Reduced in the graph so the output copy is not timed.
    build: (_g, x) => ({ s: ops.reduceSum(ops.matmul(x.a, x.b), [0, 1]) }),
    runtime,
  });
  const feeds = {
    a: { dtype: 'float32' as const, shape: [n, n], data: rnd(n * n) },
    b: { dtype: 'float32' as const, shape: [n, n], data: rnd(n * n) },
  };
  const t = await measure(() => p.run(feeds), { warmup: 3, repeats: 10 });
  await p.release();
  return { n, timing: t, gflops: Math.round(((2 * n ** 3) / (t.median / 1000) / 1e9) * 10) / 10 };
}

const [what, a, b] = process.argv.slice(2);
let result: Record<string, unknown> | null = null;
if (what === 'matmul') result = await matmul(Number(a ?? 2048));
else if ((what === 'bert' || what === 'w2v2') && a === 'dump') result = await dump(what, b);
else if ((what === 'bert' || what === 'w2v2') && ['forward', 'train', 'train-frozen'].includes(a))
  result = await figure(what, a, Number(b ?? 3));
if (!result) {
  console.error(
    'usage: encoders-worker.ts <bert|w2v2> <forward|train|train-frozen> [repeats] | <bert|w2v2> dump <dir> | matmul <n>',
  );
  process.exit(2);
}
result.shape = what === 'bert' ? BERT_SHAPE : what === 'w2v2' ? W2V2_SHAPE : undefined;
console.log(JSON.stringify(result));
