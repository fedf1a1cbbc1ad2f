// Training benchmark: utterances per second of LE-MER training, lemer against PyTorch in the
// same run where torch is importable.
//   npm run bench -- train [--repeats N] [--micro M] [--no-torch] [--no-finetune] [--no-demo-cv] [--train-cnn]
//                          [--placement graph|host] [--cpu-arena on|off]
// (a) `cached`: the LE-MER head (constraint fusion) trained on cached features of frozen
//     base-size encoders: text [16, 150, 768] (BERT-base) and speech [16, 249, 768]
//     (wav2vec2-base on 5 s); the features are random tensors of those shapes and padding
//     (the head's cost does not depend on their values; extracting them is a one-off pass).
// (b) `finetune`: BERT-base (createEncoder('bert')) + wav2vec2-base (wav2vec2Encoder) + the
//     head, trained end to end, batch 16 x (150 tokens, 5 s), M micro-batches of 16 / M
//     (gradient accumulation inside the step), Adam with the paper's per-module learning
//     rates, warm-up and clipping (the config defaults). wav2vec2's CNN feature encoder is
//     frozen as in Hugging Face's and SpeechBrain's fine-tuning recipes (--train-cnn trains
//     it too). PyTorch: the same head in bench/torch_lemer.py over bench/torch_encoders.py's
//     BERT nn.Module and torchaudio's wav2vec2_base, same batch, micro-batches and optimiser.
//     The optimiser placement is the config default's choice (optim.placement auto: host for
//     this model's ~200 M trained parameters; --placement forces one; finetune_placement).
// (c) `demo_cv_s`: wall time of the README's main command `lemer cv` (the demo corpus).
// Each figure comes from a fresh process (peak RSS is its own). Ratios: *_ratio = PyTorch
// time / lemer time (> 1: lemer faster); *_peak_rss_ratio = lemer / PyTorch (< 1: lemer smaller).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchDir as here, benchEnv, type Json, runJson } from './lib/spawn.js';

const BATCH = 16;
const TOKENS = 150;
const SAMPLES = 80000; // 5 s at 16 kHz
const FRAMES = 249; // wav2vec2's frames for 5 s
const DIM = 768;
const CLASSES = 4;

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

function python(): string | null {
  for (const p of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(p, ['-c', 'import torch, torchaudio'], { encoding: 'utf8' });
    if (r.status === 0) return p;
  }
  return null;
}

const self = fileURLToPath(import.meta.url);
const lemerWorker = (args: string[]): Json =>
  runJson(process.execPath, ['--import', 'tsx', '--expose-gc', self, '--worker', ...args]);

// ------------------------------------------------------------------ worker (one figure)

async function worker(args: string[]): Promise<Json> {
  const [which, repeatsArg, microArg, cnnArg, placementArg, arenaArg] = args;
  const repeats = Number(repeatsArg ?? 2);
  const micro = Number(microArg ?? 4);
  const { Trainer } = await import('../src/graph/train.js');
  const { lemerModel } = await import('../src/models/lemer/index.js');
  const { parseConfig } = await import('../src/config/load.js');
  const { optimizerFor } = await import('../src/train/model.js');
  const { measure, rssMb } = await import('./lib/measure.js');
  const { bertBatch, w2v2Batch } = await import('./lib/encoder-inputs.js');
  type Encoder = import('../src/models/encoder.js').Encoder;
  type HostTensor = import('../src/graph/runtime.js').HostTensor;

  const lcg = (seed: number) => {
    let s = seed >>> 0;
    return () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return (s + 0.5) / 2 ** 32 - 0.5;
    };
  };
  const text = bertBatch();
  const labels: HostTensor = {
    dtype: 'int64',
    shape: [BATCH],
    data: BigInt64Array.from({ length: BATCH }, (_, i) => BigInt(i % CLASSES)),
  };
  let textEnc: Encoder;
  let speechEnc: Encoder;
  const batch: Record<string, HostTensor> = { labels };
  if (which === 'cached') {
    // A frozen encoder's cached output fed straight in: hidden = the features.
    const cached = (modality: 'text' | 'speech', time: string): Encoder => ({
      modality,
      modelType: 'cached-features',
      hiddenSize: DIM,
      numLayers: 0,
      inputs: {
        features: { dtype: 'float32', shape: ['batch', time, DIM] },
        attention_mask: { dtype: 'int64', shape: ['batch', time] },
      },
      build: (_g, x) => ({ hidden: x.features, hiddenStates: [x.features], mask: x.attention_mask }),
      weights: null,
      config: { hidden_size: DIM },
      source: `cached ${modality} features`,
    });
    textEnc = cached('text', 'tokens');
    speechEnc = cached('speech', 'frames');
    const r = lcg(3);
    const feats = (n: number) => Float32Array.from({ length: BATCH * n * DIM }, r);
    batch['text.features'] = { dtype: 'float32', shape: [BATCH, TOKENS, DIM], data: feats(TOKENS) };
    batch['text.attention_mask'] = text.attention_mask;
    batch['speech.features'] = { dtype: 'float32', shape: [BATCH, FRAMES, DIM], data: feats(FRAMES) };
    batch['speech.attention_mask'] = {
      dtype: 'int64',
      shape: [BATCH, FRAMES],
      data: new BigInt64Array(BATCH * FRAMES).fill(1n),
    };
  } else {
    const { createEncoder } = await import('../src/models/encoders.js');
    const { wav2vec2Encoder } = await import('../src/models/wav2vec2/index.js');
    textEnc = createEncoder('bert', {});
    speechEnc = wav2vec2Encoder({}, { freezeFeatureEncoder: cnnArg !== 'train-cnn' });
    for (const [k, v] of Object.entries(text)) if (k in textEnc.inputs) batch[`text.${k}`] = v;
    // bench/lib/encoder-inputs.ts gives 4 x 5 s; the bench's batch is 16 of them.
    const w = w2v2Batch();
    const wave = new Float32Array(BATCH * SAMPLES);
    const per = w.input_values.data.length;
    for (let i = 0; i < wave.length; i += per)
      wave.set((w.input_values.data as Float32Array).subarray(0, Math.min(per, wave.length - i)), i);
    batch['speech.input_values'] = { dtype: 'float32', shape: [BATCH, SAMPLES], data: wave };
    batch['speech.attention_mask'] = {
      dtype: 'int64',
      shape: [BATCH, SAMPLES],
      data: new BigInt64Array(BATCH * SAMPLES).fill(1n),
    };
  }
  const model = lemerModel({
    kind: 'lemer',
    textEncoder: textEnc,
    speechEncoder: speechEnc,
    numClasses: CLASSES,
    head: {},
    useLabelEmbeddings: true,
    labelScope: 'context',
    classWeights: null,
  });
  for (const k of Object.keys(model.trainInputs))
    if (!(k in batch)) throw new Error(`bench train: the model wants input '${k}', the bench has none`);
  const cfg = parseConfig({ optim: { warmupSteps: 100 } });
  const M = which === 'cached' ? 1 : micro;
  const t0 = performance.now();
  const trainer = await Trainer.create({
    inputs: model.trainInputs,
    build: model.train,
    optimizer: optimizerFor(cfg, 1000),
    microBatches: M,
    seed: 1,
    optimizerPlacement:
      placementArg === 'graph' || placementArg === 'host' ? placementArg : cfg.optim.placement,
    runtime: {
      threads: 2,
      ...(arenaArg === 'on' || arenaArg === 'off' ? { enableCpuMemArena: arenaArg === 'on' } : {}),
    },
  });
  const setup = performance.now() - t0;
  const baseline = rssMb();
  const feeds = Object.fromEntries(Object.keys(model.trainInputs).map((k) => [k, batch[k]]));
  const t = await measure(() => trainer.step(feeds), {
    warmup: 1,
    repeats: which === 'cached' ? Math.max(repeats, 10) : repeats,
    maxSeconds: which === 'cached' ? 30 : 1,
  });
  const trained = trainer.built.trained.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  await trainer.release();
  return {
    case: which,
    batch: BATCH,
    micro_batches: M,
    placement: trainer.optimizerPlacement,
    cpu_arena: arenaArg === 'on' || arenaArg === 'off' ? arenaArg : 'default',
    setup_ms: Math.round(setup),
    baseline_rss_mb: round(baseline, 1),
    trained_parameters: trained,
    step_ms: t.median,
    utterances_per_s: round((BATCH * 1000) / t.median, 2),
    timing: t,
  };
}

// ------------------------------------------------------------------ the demo's `lemer cv`

function demoCv(): Json {
  const cache = mkdtempSync(join(tmpdir(), 'lemer-bench-demo-'));
  const out = join(cache, 'run');
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(here, '..', 'src', 'cli', 'main.ts'), 'cv', '--out', out, '--log-level', 'warn'],
    { env: { ...benchEnv, LEMER_CACHE: cache }, encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  const seconds = (performance.now() - t0) / 1000;
  rmSync(cache, { recursive: true, force: true });
  if (r.status !== 0) return { ok: false, seconds: round(seconds, 1), error: r.stderr.slice(-1500) };
  const mean = /mean of \d+\s+\d+\s+([\d.]+) ± [\d.]+\s+([\d.]+)/.exec(r.stdout);
  return {
    ok: true,
    seconds: round(seconds, 1),
    mean_wa: mean ? Number(mean[1]) : null,
    mean_ua: mean ? Number(mean[2]) : null,
  };
}

// ------------------------------------------------------------------ the runner

export default async function train(argv: string[]): Promise<Json> {
  const flag = (n: string) => argv.includes(n);
  const val = (n: string, d: number) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
  const repeats = String(val('--repeats', 2));
  const micro = String(val('--micro', 4));
  const cnn = flag('--train-cnn') ? 'train-cnn' : 'frozen-cnn';
  const str = (n: string, allowed: string[]): string => {
    if (!argv.includes(n)) return 'default';
    const v = argv[argv.indexOf(n) + 1];
    if (!allowed.includes(v)) throw new Error(`bench train: ${n} takes ${allowed.join(' | ')}, got '${v}'`);
    return v;
  };
  const placement = str('--placement', ['graph', 'host']);
  const arena = str('--cpu-arena', ['on', 'off']);
  const py = flag('--no-torch') ? null : python();
  if (!existsSync(join(here, 'torch_lemer.py'))) throw new Error('bench/torch_lemer.py is missing');
  const torch = (args: string[]): Json =>
    runJson(py!, [join(here, 'torch_lemer.py'), ...args, '--repeats', repeats, '--micro', micro]);
  const log = (m: string) => process.stderr.write(`train bench: ${m}\n`);

  log('cached features (lemer)');
  const cached = lemerWorker(['cached', repeats, micro, cnn, placement, arena]);
  let cachedTorch: Json | null = null;
  if (py) {
    log('cached features (PyTorch)');
    cachedTorch = torch(['--case', 'cached']);
  }
  let finetune: Json | null = null;
  let finetuneTorch: Json | null = null;
  if (!flag('--no-finetune')) {
    log(`fine-tuning BERT-base + wav2vec2-base, ${micro} micro-batches (lemer)`);
    finetune = lemerWorker(['finetune', repeats, micro, cnn, placement, arena]);
    if (py) {
      log('fine-tuning (PyTorch)');
      finetuneTorch = torch(['--case', 'finetune', ...(cnn === 'train-cnn' ? ['--train-cnn'] : [])]);
    }
  }
  let demo: Json | null = null;
  if (!flag('--no-demo-cv')) {
    log('demo lemer cv');
    demo = demoCv();
  }
  const ratio = (ours: Json | null, theirs: Json | null) =>
    ours && theirs ? round(theirs.step_ms / ours.step_ms) : null;
  const rss = (ours: Json | null, theirs: Json | null) =>
    ours?.timing?.peak_rss_mb && theirs?.timing?.peak_rss_mb
      ? round(ours.timing.peak_rss_mb / theirs.timing.peak_rss_mb)
      : null;
  return {
    torch: py ? { python: py, version: cachedTorch?.torch_version ?? null } : null,
    threads: 2,
    batch: BATCH,
    shapes: { tokens: TOKENS, samples: SAMPLES, frames: FRAMES, hidden: DIM },
    cached_utterances_per_s: cached.utterances_per_s,
    cached_peak_rss_mb: cached.timing.peak_rss_mb,
    cached_ratio: ratio(cached, cachedTorch),
    cached_peak_rss_ratio: rss(cached, cachedTorch),
    finetune_utterances_per_s: finetune?.utterances_per_s ?? null,
    finetune_step_ms: finetune?.step_ms ?? null,
    finetune_peak_rss_mb: finetune?.timing.peak_rss_mb ?? null,
    finetune_torch_utterances_per_s: finetuneTorch?.utterances_per_s ?? null,
    finetune_torch_peak_rss_mb: finetuneTorch?.timing.peak_rss_mb ?? null,
    finetune_ratio: ratio(finetune, finetuneTorch),
    finetune_peak_rss_ratio: rss(finetune, finetuneTorch),
    finetune_placement: finetune?.placement ?? null,
    feature_encoder: cnn,
    demo_cv_s: demo?.seconds ?? null,
    goals: { finetune_ratio: '>= 1.2', finetune_peak_rss_ratio: '<= 1.0' },
    figures: { cached, cached_torch: cachedTorch, finetune, finetune_torch: finetuneTorch, demo_cv: demo },
  };
}

if (process.argv[2] === '--worker' && process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await worker(process.argv.slice(3));
  console.log(JSON.stringify(r));
}
