// Experiment: the text front end and the graph engine together on real data. A small
// transformer trained from scratch (no pretrained weights reach this machine) on MELD
// text, 4 classes, with up to 10 previous turns of the dialogue as context; trained on
// the train split, scored on dev (WA / UA), report written to runs/meld-text/.
//   npx tsx experiments/meld-text.ts [--epochs 3] [--data ../shared/data/meld] [--no-history]
// Not a test (minutes of CPU); its figures go in the session notes.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { historyFor } from '../src/data/context.js';
import { readMeld } from '../src/data/meld.js';
import type { Corpus, Utterance } from '../src/data/types.js';
import { summarizeFolds } from '../src/eval/metrics.js';
import { writeReport } from '../src/eval/report.js';
import type { HostTensor } from '../src/graph/runtime.js';
import { Trainer } from '../src/graph/train.js';
import {
  toyTransformer,
  toyTransformerLoss,
  toyTransformerTrainInputs,
} from '../src/models/toy/transformer.js';
import { padBatch, tokenizerFromJson, type TextTokenizer } from '../src/text/tokenizer.js';
import { buildWordPieceVocab } from '../src/text/vocab.js';
import { createProgress } from '../src/util/progress.js';
import { Rng } from '../src/util/random.js';

const arg = (name: string, dflt: string): string =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt;
const epochs = Number(arg('--epochs', '3'));
const dir = resolve(arg('--data', '../shared/data/meld'));
const useHistory = !process.argv.includes('--no-history');
const BATCH = 32;
if (!existsSync(dir)) {
  console.error(`meld-text: no MELD data at ${dir} (see ../shared/data/README.md)`);
  process.exit(1);
}

const train = await readMeld(dir, { split: 'train', classes: '4' });
const dev = await readMeld(dir, { split: 'dev', classes: '4' });
const labels = train.labels;
const tok: TextTokenizer = tokenizerFromJson(
  buildWordPieceVocab(
    train.utterances.map((u) => u.text),
    { vocabSize: 8000 },
  ),
);

function encode(corpus: Corpus, utts: Utterance[]) {
  return utts.map((u) => {
    const history = useHistory ? historyFor(corpus, u, { countTokens: (s) => tok.countTokens(s) }) : [];
    return { enc: tok.encode(u.text, { history, maxLength: 150 }), label: labels.indexOf(u.label) };
  });
}

function batchOf(items: ReturnType<typeof encode>): Record<string, HostTensor> {
  const p = padBatch(
    items.map((i) => i.enc),
    tok.padId,
  );
  return {
    input_ids: { dtype: 'int64', shape: p.shape, data: p.ids },
    attention_mask: { dtype: 'int64', shape: p.shape, data: BigInt64Array.from(p.mask, (m) => BigInt(m)) },
    labels: {
      dtype: 'int64',
      shape: [items.length],
      data: BigInt64Array.from(items, (i) => BigInt(i.label)),
    },
  };
}

const trainSet = encode(train, train.utterances);
const devSet = encode(dev, dev.utterances);
const model = {
  vocabSize: tok.vocabSize,
  hiddenSize: 128,
  numHeads: 4,
  numLayers: 2,
  intermediateSize: 256,
  numClasses: labels.length,
  maxPositions: 160,
  dropout: 0.1,
};
const stepsPerEpoch = Math.floor(trainSet.length / BATCH);
const trainer = await Trainer.create({
  inputs: toyTransformerTrainInputs(),
  build: (g, i) => toyTransformerLoss(g, i, model),
  optimizer: {
    kind: 'adamw',
    lr: 1e-3,
    schedule: { warmupSteps: 100, decay: 'linear', totalSteps: stepsPerEpoch * epochs },
    maxGradNorm: 1,
  },
  seed: 1,
});
const rng = new Rng(7);
const t0 = performance.now();
for (let e = 0; e < epochs; e++) {
  const order = trainSet.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const bar = createProgress({ total: stepsPerEpoch, label: `epoch ${e + 1}/${epochs}` });
  let loss = 0;
  for (let s = 0; s < stepsPerEpoch; s++) {
    loss += (await trainer.step(batchOf(order.slice(s * BATCH, (s + 1) * BATCH).map((k) => trainSet[k]))))
      .loss;
    bar.tick();
  }
  bar.stop();
  console.error(`epoch ${e + 1}: mean train loss ${(loss / stepsPerEpoch).toFixed(4)}`);
}
const trainSeconds = (performance.now() - t0) / 1000;

const predictor = await trainer.predictor(
  {
    input_ids: { dtype: 'int64', shape: ['batch', 'seq'] },
    attention_mask: { dtype: 'int64', shape: ['batch', 'seq'] },
  },
  (g, i) => ({
    logits: toyTransformer(g, { input_ids: i.input_ids, attention_mask: i.attention_mask }, model),
  }),
);
const yPred: number[] = [];
for (let s = 0; s < devSet.length; s += BATCH) {
  const b = batchOf(devSet.slice(s, s + BATCH));
  const { logits } = await predictor.run({ input_ids: b.input_ids, attention_mask: b.attention_mask });
  const c = labels.length;
  for (let r = 0; r < logits.shape[0]; r++) {
    const row = Array.from(logits.data.slice(r * c, (r + 1) * c) as Float32Array);
    yPred.push(row.indexOf(Math.max(...row)));
  }
}
const summary = summarizeFolds([{ name: 'dev', yTrue: devSet.map((d) => d.label), yPred }], labels);
const out = resolve('runs/meld-text');
await writeReport(out, summary, {
  title: `MELD text, 4 classes, small transformer from scratch${useHistory ? ', 10-turn history' : ''}`,
});
console.log(
  JSON.stringify({
    train: trainSet.length,
    dev: devSet.length,
    epochs,
    history: useHistory,
    train_seconds: Math.round(trainSeconds),
    wa: summary.pooled.wa,
    ua: summary.pooled.ua,
    report: out,
  }),
);
