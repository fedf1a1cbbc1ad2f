// Encoder benchmark: BERT-base (batch 16 x 150 tokens) and wav2vec2-base (batch 4 x 5 s),
// forward and training step (wav2vec2: feature encoder frozen, and trained), lemer
// against PyTorch in the same run; peak RSS of each; the largest difference of the last
// hidden states on the same random weights; each figure's share of the matmul peak.
//   npm run bench -- encoders [--repeats N] [--no-torch] [--only bert|w2v2]
// (each figure: 1 warm-up + N timed runs, default 3: a BERT-base step takes seconds on 2 cores;
// LEMER_BENCH_PROFILE=<prefix> adds ORT's kernel time per op type to lemer's figures)
// Each figure comes from a fresh process (bench/lib/encoders-worker.ts, bench/torch_encoders.py)
// under the same malloc settings and 2 threads (bench/lib/spawn.ts). Ratios:
// *_ratio = PyTorch time / lemer time (> 1: lemer faster); *_peak_rss_ratio = lemer / PyTorch
// (< 1: lemer smaller), over the training figures (the larger of the two). An encoder not
// (yet) in the tree is reported as unavailable, not as a failure.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { BERT_SHAPE, W2V2_SHAPE } from './lib/encoder-inputs.js';
import { bertFlops, w2v2Flops, w2v2TrainFlops } from './lib/encoder-flops.js';
import { benchDir as here, type Json, runJson, runWorker } from './lib/spawn.js';

function python(): string | null {
  for (const p of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(p, ['-c', 'import torch, torchaudio'], { encoding: 'utf8' });
    if (r.status === 0) return p;
  }
  return null;
}

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

/** Runs one figure; a failure becomes { error } in the JSON instead of ending the bench. */
function attempt(what: string, fn: () => Json): Json {
  process.stderr.write(`encoders bench: ${what} (load ${loadavg()[0].toFixed(1)})\n`);
  try {
    return { ...fn(), loadavg_1m_after: round(loadavg()[0], 2) };
  } catch (err) {
    return { error: (err as Error).message.slice(0, 2000) };
  }
}

type Figure = { label: string; model: 'bert' | 'w2v2'; phase: string; flops: number };

export default async function encoders(argv: string[]): Promise<Json> {
  const val = (n: string, d: string) => (argv.includes(n) ? argv[argv.indexOf(n) + 1] : d);
  const repeats = val('--repeats', '3');
  const only = val('--only', '');
  const py = argv.includes('--no-torch') ? null : python();
  const torch = (args: string[]): Json => runJson(py!, [join(here, 'torch_encoders.py'), ...args]);
  const lemer = (args: string[]): Json => runWorker('encoders-worker.ts', args);

  const bert = bertFlops(BERT_SHAPE.batch, BERT_SHAPE.tokens);
  const w2v2 = w2v2Flops(W2V2_SHAPE.batch, W2V2_SHAPE.samples);
  const all: Figure[] = [
    { label: 'bert_forward', model: 'bert', phase: 'forward', flops: bert.forward },
    { label: 'bert_train', model: 'bert', phase: 'train', flops: bert.train },
    { label: 'w2v2_forward', model: 'w2v2', phase: 'forward', flops: w2v2.forward },
    {
      label: 'w2v2_train_frozen_features',
      model: 'w2v2',
      phase: 'train-frozen',
      flops: w2v2TrainFlops(W2V2_SHAPE.batch, W2V2_SHAPE.samples, true),
    },
    {
      label: 'w2v2_train',
      model: 'w2v2',
      phase: 'train',
      flops: w2v2TrainFlops(W2V2_SHAPE.batch, W2V2_SHAPE.samples, false),
    },
  ];
  const cases = all.filter((c) => !only || c.model === only);

  // The machine's matmul peak, measured by each engine in this run (2048^3, 2 threads).
  const peak = {
    lemer: attempt('matmul peak (lemer)', () => lemer(['matmul', '2048'])),
    torch: py ? attempt('matmul peak (PyTorch)', () => torch(['--model', 'bert', '--matmul', '2048'])) : null,
  };
  const peakGflops = Math.max(peak.lemer.gflops ?? 0, peak.torch?.gflops ?? 0) || null;

  const figures: Json = {};
  for (const c of cases) {
    const ours = attempt(`${c.label} (lemer)`, () => lemer([c.model, c.phase, repeats]));
    const theirs = py
      ? attempt(`${c.label} (PyTorch)`, () =>
          torch(['--model', c.model, '--phase', c.phase, '--repeats', repeats]),
        )
      : null;
    const side = (r: Json | null) => {
      if (!r) return null;
      if (r.error || r.available === false) return r;
      const ms = r.timing.median as number;
      const gflops = c.flops / (ms / 1000) / 1e9;
      return {
        ms,
        min_ms: r.timing.min,
        runs: r.timing.runs,
        peak_rss_mb: r.timing.peak_rss_mb,
        baseline_rss_mb: round(r.baseline_rss_mb, 1),
        gflops: round(gflops, 1),
        share_of_matmul_peak: peakGflops ? round(gflops / peakGflops) : null,
        ...(r.trained_parameters ? { trained_parameters: r.trained_parameters } : {}),
        ...(r.setup_ms ? { setup_ms: r.setup_ms } : {}),
        loadavg_1m_after: r.loadavg_1m_after,
      };
    };
    figures[c.label] = { gflop: round(c.flops / 1e9, 1), lemer: side(ours), torch: side(theirs) };
    // Each figure as it lands: a run cut short still leaves its figures.
    process.stderr.write(`encoders bench: ${JSON.stringify({ [c.label]: figures[c.label] })}\n`);
  }

  // Same random weights: lemer writes its weights, inputs and last hidden state; PyTorch loads them.
  const diffs: Json = {};
  for (const model of ['bert', 'w2v2'] as const) {
    if (only && only !== model) continue;
    const dir = mkdtempSync(join(tmpdir(), `lemer-bench-${model}-`));
    try {
      const dumped = attempt(`${model} same-weights dump (lemer)`, () => lemer([model, 'dump', dir]));
      diffs[model] =
        dumped.available === false || dumped.error || !py
          ? { ...dumped, ...(py ? {} : { reason: 'no PyTorch' }) }
          : attempt(`${model} same-weights diff (PyTorch)`, () => torch(['--model', model, '--diff', dir]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const ratio = (label: string): number | null => {
    const f = figures[label];
    return f?.lemer?.ms && f?.torch?.ms ? round(f.torch.ms / f.lemer.ms) : null;
  };
  const rss = (labels: string[]): number | null => {
    const peakOf = (s: 'lemer' | 'torch') =>
      Math.max(...labels.map((l) => figures[l]?.[s]?.peak_rss_mb ?? NaN).filter((x) => Number.isFinite(x)));
    const a = peakOf('lemer');
    const b = peakOf('torch');
    return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? round(a / b) : null;
  };
  const available = (model: string) => {
    const r = figures[`${model}_forward`]?.lemer;
    return r
      ? r.available === false
        ? r.reason
        : r.error
          ? `error: ${r.error.slice(0, 200)}`
          : true
      : 'not run';
  };
  return {
    torch: py ? { python: py, version: peak.torch?.torch_version ?? null } : null,
    threads: 2,
    encoders_available: { bert: available('bert'), w2v2: available('w2v2') },
    bert_forward_ratio: ratio('bert_forward'),
    bert_train_ratio: ratio('bert_train'),
    w2v2_forward_ratio: ratio('w2v2_forward'),
    w2v2_train_ratio: ratio('w2v2_train'),
    w2v2_train_frozen_features_ratio: ratio('w2v2_train_frozen_features'),
    bert_peak_rss_ratio: rss(['bert_forward', 'bert_train']),
    w2v2_peak_rss_ratio: rss(['w2v2_forward', 'w2v2_train_frozen_features', 'w2v2_train']),
    bert_max_abs_diff: diffs.bert?.max_abs_diff ?? null,
    w2v2_max_abs_diff: diffs.w2v2?.max_abs_diff ?? null,
    matmul_peak_gflops: {
      lemer: peak.lemer.gflops ?? null,
      torch: peak.torch?.gflops ?? null,
      used: peakGflops,
    },
    goals: {
      forward_ratio: '>= 1.5',
      train_ratio: '>= 1.2',
      peak_rss_ratio: '<= 1.0',
      max_abs_diff: '<= 1e-4',
    },
    note: 'shares of the matmul peak use approximate FLOP counts (bench/lib/encoder-flops.ts); the machine is shared: see loadavg_1m_after per figure',
    figures,
    same_weights: diffs,
  };
}
