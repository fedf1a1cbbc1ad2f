// Score fusion (Table 2) from two finished unimodal cross-validations: the sum of the text
// and the speech model's test logits, fold by fold, scored as `lemer cv --model score-fusion`
// does (which trains the same two models again: with the same config and seed the fold
// results are the same, so this saves the second training). Folds found in both runs only.
//   npx tsx experiments/score-fusion.ts <text cv folder> <speech cv folder> [--json out.json]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeFolds } from '../src/eval/metrics.js';
import type { FoldResult } from '../src/train/cv.js';
import { writeFileAtomic } from '../src/util/fs.js';

const [textDir, speechDir] = process.argv.slice(2);
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : null;
if (!textDir || !speechDir) {
  console.error('usage: score-fusion.ts <text cv folder> <speech cv folder> [--json out.json]');
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
const text = read(textDir);
const speech = read(speechDir);
const folds = [...text.keys()].filter((f) => speech.has(f)).sort();
if (folds.length === 0) throw new Error('no fold is finished in both runs');
const rows = folds.map((f) => {
  const t = text.get(f)!;
  const s = speech.get(f)!;
  if (t.ids.join() !== s.ids.join()) throw new Error(`fold ${f}: the two runs tested different utterances`);
  if (t.labels.join() !== s.labels.join()) throw new Error(`fold ${f}: different label sets`);
  const yPred = t.logits.map((row, i) => {
    const sum = row.map((v, j) => v + s.logits[i][j]);
    return sum.indexOf(Math.max(...sum));
  });
  return { name: f, yTrue: t.yTrue, yPred };
});
const labels = text.get(folds[0])!.labels;
const sum = summarizeFolds(rows, labels);
const pct = (x: number) => Math.round(x * 1e4) / 100;
const result = {
  model: 'score-fusion',
  text: textDir,
  speech: speechDir,
  labels,
  folds: sum.folds.map((f, i) => ({ name: folds[i], wa: pct(f.wa), ua: pct(f.ua), n: rows[i].yTrue.length })),
  mean: { wa: pct(sum.mean.wa), ua: pct(sum.mean.ua) },
  pooled: { wa: pct(sum.pooled.wa), ua: pct(sum.pooled.ua), n: sum.pooled.n },
};
console.log(JSON.stringify(result, null, 2));
if (jsonOut) writeFileAtomic(jsonOut, JSON.stringify(result, null, 2) + '\n');
