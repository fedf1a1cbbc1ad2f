// Score fusion (Table 2) from two finished unimodal cross-validations: the sum of the text
// and the speech model's test logits, fold by fold, scored as `lemer cv --model score-fusion`
// does (which trains the same two models again: with the same config and seed the fold
// results are the same, so this saves the second training). Folds found in every run only.
// --weighting validation-ua | temperature weights each model's logits by what its validation
// part shows (src/train/score-fusion.ts; not the paper's score fusion, which is `none`).
// More than two folders sum them all: runs of one model under several seeds make a seed
// ensemble (the sum of logits, i.e. their mean up to a factor that leaves the argmax alone).
//   npx tsx experiments/score-fusion.ts <text cv folder> <speech cv folder> [more cv folders] [--weighting none] [--json out.json]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeFolds } from '../src/eval/metrics.js';
import type { FoldResult } from '../src/train/cv.js';
import { writeFileAtomic } from '../src/util/fs.js';
import { fuseScores, type ScoreFusionWeighting } from '../src/train/score-fusion.js';

const args = process.argv.slice(2);
const flag = (name: string): string | null =>
  args.includes(name) ? (args[args.indexOf(name) + 1] ?? null) : null;
const jsonOut = flag('--json');
const weighting = (flag('--weighting') ?? 'none') as ScoreFusionWeighting;
const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
const dirs = positional;
if (dirs.length < 2 || !['none', 'validation-ua', 'temperature'].includes(weighting)) {
  console.error(
    'usage: score-fusion.ts <text cv folder> <speech cv folder> [more cv folders] [--weighting none|validation-ua|temperature] [--json out.json]',
  );
  process.exit(2);
}
const read = (dir: string): Map<string, FoldResult> => {
  const root = join(dir, 'folds');
  if (!existsSync(root)) throw new Error(`${dir}: no folds/ folder (not a lemer cv result)`);
  const out = new Map<string, FoldResult>();
  for (const f of readdirSync(root)) {
    const p = join(root, f, 'result.json');
    if (existsSync(p)) out.set(f, JSON.parse(readFileSync(p, 'utf8')) as FoldResult);
  }
  return out;
};
const runs = dirs.map(read);
const folds = [...runs[0].keys()].filter((f) => runs.every((r) => r.has(f))).sort();
if (folds.length === 0) throw new Error('no fold is finished in every run');
const rows = folds.map((f) => {
  const results = runs.map((r) => r.get(f)!);
  const t = results[0];
  for (const [i, s] of results.entries()) {
    if (t.ids.join() !== s.ids.join())
      throw new Error(`fold ${f}: ${dirs[0]} and ${dirs[i]} tested different utterances`);
    if (t.labels.join() !== s.labels.join())
      throw new Error(`fold ${f}: ${dirs[0]} and ${dirs[i]} have different label sets`);
  }
  const valid = (r: FoldResult, dir: string) => {
    const v = r.fits[0]?.valid;
    if (!v && weighting !== 'none')
      throw new Error(
        `${dir}, fold ${f}: the result holds no validation logits (a run made before they were kept): rerun it`,
      );
    return v;
  };
  const fused = fuseScores(
    results.map((r, i) => ({ test: r.logits, valid: valid(r, dirs[i]) })),
    weighting,
    t.labels.length,
  );
  const yPred = fused.logits.map((row) => row.indexOf(Math.max(...row)));
  return { name: f, yTrue: t.yTrue, yPred, factors: fused.factors };
});
const labels = runs[0].get(folds[0])!.labels;
const sum = summarizeFolds(rows, labels);
const pct = (x: number) => Math.round(x * 1e4) / 100;
const result = {
  model: 'score-fusion',
  weighting,
  runs: dirs,
  labels,
  folds: sum.folds.map((f, i) => ({
    name: folds[i],
    wa: pct(f.wa),
    ua: pct(f.ua),
    n: rows[i].yTrue.length,
    factors: rows[i].factors,
  })),
  mean: { wa: pct(sum.mean.wa), ua: pct(sum.mean.ua) },
  pooled: { wa: pct(sum.pooled.wa), ua: pct(sum.pooled.ua), n: sum.pooled.n },
};
console.log(JSON.stringify(result, null, 2));
if (jsonOut) writeFileAtomic(jsonOut, JSON.stringify(result, null, 2) + '\n');
