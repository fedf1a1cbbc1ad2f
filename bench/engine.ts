// Engine benchmark: a BERT-base-sized encoder layer and wav2vec2's first conv layer,
// forward and training step, lemer against PyTorch in the same run.
//   npm run bench -- engine [--repeats N] [--rounds R] [--no-torch] [--batch16]
// Each figure comes from a fresh process (so peak memory is its own), lemer and PyTorch
// alternating, both under the same malloc settings and 2 threads. Ratios:
// *_ratio = PyTorch time / lemer time (> 1: lemer faster); peak_rss_ratio and
// *_working_set_ratio = lemer / PyTorch (< 1: lemer smaller).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir as here, type Json, median, runJson, runWorker } from './lib/spawn.js';

const lemer = (args: string[]): Json => runWorker('engine-worker.ts', args);

function python(): string | null {
  for (const p of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return p;
  }
  return null;
}

const torch = (py: string, args: string[]): Json => runJson(py, [join(here, 'torch_reference.py'), ...args]);

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

export default async function engine(argv: string[]): Promise<Json> {
  const flag = (n: string) => argv.includes(n);
  const val = (n: string, d: number) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
  const rounds = val('--rounds', 1);
  const repeats = String(val('--repeats', 20));
  const py = flag('--no-torch') ? null : python();
  if (!existsSync(join(here, 'torch_reference.py'))) throw new Error('bench/torch_reference.py is missing');

  // [label, lemer worker args, torch args]
  // Cases with no PyTorch args reuse the PyTorch figures of the case of the same batch.
  const cases: [string, string[], string[]][] = [
    ['layer_b4', ['layer', '4', '1', '1'], ['--only', 'layer', '--batch', '4', '--repeats', repeats]],
    ['layer_b4_k16', ['layer', '4', '1', '16'], []],
    ['conv_b4', ['conv', '4', '48000'], ['--only', 'conv', '--conv-batch', '4', '--repeats', repeats]],
  ];
  if (!flag('--no-batch16')) {
    cases.push([
      'layer_b16',
      ['layer', '16', '1', '1'],
      ['--only', 'layer', '--batch', '16', '--repeats', repeats],
    ]);
    cases.push(['layer_b16_micro4', ['layer', '16', '4', '1'], []]);
    cases.push(['layer_b16_micro4_k4', ['layer', '16', '4', '4'], []]);
  }
  const figures: Json = {};
  let torchVersion: string | null = null;
  for (const [label, la, ta] of cases) {
    const ours: Json[] = [];
    const theirs: Json[] = [];
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`engine bench: ${label} round ${r + 1}/${rounds} (lemer)\n`);
      ours.push(lemer(la));
      if (py && ta.length) {
        process.stderr.write(`engine bench: ${label} round ${r + 1}/${rounds} (PyTorch)\n`);
        theirs.push(torch(py, ta));
        torchVersion = theirs[0].torch_version;
      }
    }
    const kind = label.startsWith('layer') ? 'layer' : 'conv';
    const entry: Json = { lemer: {}, torch: theirs.length ? {} : null };
    for (const phase of ['forward', 'train']) {
      const key = `${kind}_${phase}`;
      entry.lemer[`${phase}_ms`] = median(ours.map((o) => o[key].median));
      entry.lemer[`${phase}_peak_rss_above_start_mb`] = median(
        ours.map((o) => o[key].peak_rss_above_start_mb),
      );
      entry.lemer[`${phase}_peak_rss_mb`] = median(ours.map((o) => o[key].peak_rss_mb));
      if (theirs.length) {
        entry.torch[`${phase}_ms`] = median(theirs.map((t) => t[`${key}_ms`]));
        entry.torch[`${phase}_peak_rss_above_start_mb`] = median(
          theirs.map((t) => t.stats[key].peak_rss_above_start_mb),
        );
        entry.torch[`${phase}_peak_rss_mb`] = median(theirs.map((t) => t.stats[key].peak_rss_mb));
      }
    }
    figures[label] = entry;
  }

  const ratio = (label: string, phase: string): number | null => {
    const e = figures[label];
    return e?.torch ? round(e.torch[`${phase}_ms`] / e.lemer[`${phase}_ms`]) : null;
  };
  // Peak RSS of the whole process during the training runs (runtime, model, state and
  // step), lemer / PyTorch; and the working set: the peak above the RSS just before the
  // first training step (what the step itself adds), where lemer's functional update
  // (new weights and Adam state handed back next to the old) costs about 2x the state.
  const memRatio = (label: string, key = 'train_peak_rss_mb'): number | null => {
    const e = figures[label];
    return e?.torch ? round(e.lemer[key] / e.torch[key]) : null;
  };
  const workingSet = (label: string) => memRatio(label, 'train_peak_rss_above_start_mb');
  for (const [label] of cases) {
    const same = label.replace(/_(micro|k)\d+/g, '');
    if (figures[label].torch === null && figures[same]?.torch) figures[label].torch = figures[same].torch;
  }
  return {
    torch: py ? { python: py, version: torchVersion } : null,
    threads: 2,
    layer_forward_ratio: ratio('layer_b4', 'forward'),
    layer_train_ratio: ratio('layer_b4', 'train'),
    conv_forward_ratio: ratio('conv_b4', 'forward'),
    conv_train_ratio: ratio('conv_b4', 'train'),
    peak_rss_ratio: memRatio('layer_b4'),
    train_working_set_ratio: workingSet('layer_b4'),
    // Other settings a user can pick (stepsPerRun K, micro-batches M), same PyTorch baseline:
    layer_k16_train_ratio: ratio('layer_b4_k16', 'train'),
    layer_k16_peak_rss_ratio: memRatio('layer_b4_k16'),
    layer_b16_train_ratio: ratio('layer_b16', 'train'),
    layer_b16_micro4_train_ratio: ratio('layer_b16_micro4', 'train'),
    layer_b16_micro4_k4_train_ratio: ratio('layer_b16_micro4_k4', 'train'),
    layer_b16_peak_rss_ratio: memRatio('layer_b16'),
    layer_b16_micro4_peak_rss_ratio: memRatio('layer_b16_micro4'),
    layer_b16_micro4_working_set_ratio: workingSet('layer_b16_micro4'),
    goals: { layer_train_ratio: '>= 1.0', layer_forward_ratio: '>= 1.2', peak_rss_ratio: '<= 1.0' },
    figures,
  };
}
