// LE-MER over the project's own encoders (BERT, the log-mel conformer), random init, tiny sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Predictor, Trainer } from '../../../src/graph/train.js';
import { ParameterStore } from '../../../src/graph/params.js';
import { createEncoder } from '../../../src/models/encoders.js';
import { conformerEncoder } from '../../../src/models/conformer/index.js';
import {
  lemerModel,
  selectSpeechCodes,
  speechLabelInit,
  textLabelInit,
} from '../../../src/models/lemer/index.js';
import { fl, i64, uniform } from './helpers.js';

const bert = () =>
  createEncoder('bert', {
    vocab_size: 40,
    hidden_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 16,
    max_position_embeddings: 32,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
  });
const BINS = 8;
const conformer = () =>
  conformerEncoder({
    num_mel_bins: BINS,
    hidden_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 16,
    conv_depthwise_kernel_size: 3,
    conv_norm: 'layer_norm',
    hidden_dropout: 0,
    activation_dropout: 0,
    attention_dropout: 0,
    conformer_conv_dropout: 0,
  });

/** Batch of 2: tokens 5 and 3 (of 5); frames 30 and 20 (of 30). */
function batch(padId = 0, padValue = 0) {
  const ids = [2, 5, 9, 11, 3, 2, 7, 3, padId, padId];
  const am = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
  const f = uniform(2 * 30 * BINS, 7);
  const fm: number[] = [];
  for (let b = 0; b < 2; b++)
    for (let t = 0; t < 30; t++) {
      const real = t < (b === 0 ? 30 : 20);
      fm.push(real ? 1 : 0);
      if (!real) for (let k = 0; k < BINS; k++) f[(b * 30 + t) * BINS + k] = padValue;
    }
  return {
    'text.input_ids': i64(ids, [2, 5]),
    'text.attention_mask': i64(am, [2, 5]),
    'text.token_type_ids': i64(new Array<number>(10).fill(0), [2, 5]),
    'speech.input_features': fl(f, [2, 30, BINS]),
    'speech.attention_mask': i64(fm, [2, 30]),
    labels: i64([1, 0], [2]),
  };
}

test('LE-MER over BERT + the log-mel conformer: trains, and padding changes nothing', async () => {
  const m = lemerModel({
    kind: 'lemer',
    textEncoder: bert(),
    speechEncoder: conformer(),
    numClasses: 2,
    useLabelEmbeddings: true,
    head: { dropout: 0 },
  });
  const params = new ParameterStore();
  const tr = await Trainer.create({
    inputs: m.trainInputs,
    build: m.train,
    optimizer: { kind: 'adam', lr: 3e-3 },
    params,
    seed: 1,
    runtime: { threads: 1 },
  });
  const feeds = (b: ReturnType<typeof batch>) =>
    Object.fromEntries(Object.keys(m.trainInputs).map((k) => [k, b[k as keyof typeof b]]));
  const first = await tr.step(feeds(batch()));
  let last = first;
  for (let i = 0; i < 8; i++) last = await tr.step(feeds(batch()));
  assert.ok(last.loss < first.loss, `${first.loss} -> ${last.loss}`);
  const pred = await Predictor.create({ inputs: m.inputs, build: m.infer, params });
  const ins = (b: ReturnType<typeof batch>) =>
    Object.fromEntries(Object.keys(m.inputs).map((k) => [k, b[k as keyof typeof b]]));
  const a = await pred.run(ins(batch()));
  const b = await pred.run(ins(batch(17, 50)));
  const la = Array.from(a.logits.data as Float32Array);
  Array.from(b.logits.data as Float32Array).forEach((v, i) =>
    assert.ok(Math.abs(v - la[i]) < 1e-5, `logit ${i}: ${v} vs ${la[i]}`),
  );
  await pred.release();
  await tr.release();
});

test('label init over BERT (tfidf words) and the conformer (codes at log-mel rate, proportional alignment)', async () => {
  const text = bert();
  const speech = conformer();
  const m = lemerModel({
    kind: 'lemer',
    textEncoder: text,
    speechEncoder: speech,
    numClasses: 2,
    useLabelEmbeddings: true,
  });
  const params = new ParameterStore();
  const p = await Predictor.create({ inputs: m.inputs, build: m.infer, params, seed: 2 });
  await p.release();
  const tok = { clsId: 2, sepId: 3, padId: 0, encodeText: (w: string) => [4 + (w.length % 30)] };
  const t = await textLabelInit({
    mode: 'tfidf',
    encoder: text,
    tokenizer: tok,
    classes: ['a', 'b'],
    keywords: [['xx', 'yyy'], ['zzzz']],
    weights: params,
  });
  assert.deepEqual(t.missing, []);
  assert.deepEqual(t.params.get('head.label_embeddings.text')!.shape, [2, 8]);
  const utts = [0, 1, 2, 3].map((i) => {
    const frames = 24 + 4 * i;
    const codes = Array.from({ length: frames }, (_, f) => (f * (i + 1)) % 5);
    return {
      label: i % 2 ? 'b' : 'a',
      codes,
      feeds: {
        input_features: fl(uniform(frames * BINS, 20 + i), [1, frames, BINS]),
        attention_mask: i64(new Array<number>(frames).fill(1), [1, frames]),
      },
    };
  });
  const top = selectSpeechCodes(utts, ['a', 'b'], 2, { warn: () => {} });
  const s = await speechLabelInit({
    mode: 'codebook',
    encoder: speech,
    classes: ['a', 'b'],
    topCodes: top,
    utterances: utts,
    weights: params,
  });
  const ls = s.params.get('head.label_embeddings.speech')!;
  assert.deepEqual(ls.shape, [2, 8]);
  assert.ok(Array.from(ls.data as Float32Array).every(Number.isFinite));
});
