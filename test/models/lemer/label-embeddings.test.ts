import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParameterStore } from '../../../src/graph/params.js';
import { Predictor } from '../../../src/graph/train.js';
import type { HostTensor } from '../../../src/graph/runtime.js';
import {
  codeAt,
  lemerModel,
  pickTraining,
  projectTextLabels,
  selectSpeechCodes,
  selectTextKeywords,
  speechCodeScores,
  speechLabelInit,
  textKeywords,
  textLabelInit,
  type LabelTokenizer,
} from '../../../src/models/lemer/index.js';
import { fl, i64, tinySpeechEncoder, tinyTextEncoder, uniform } from './helpers.js';

const CLASSES = ['ang', 'hap', 'sad'];
const DOCS = [
  { label: 'ang', text: 'I hate this, I hate it!' },
  { label: 'ang', text: 'Stop it now.' },
  { label: 'hap', text: 'I love this so much' },
  { label: 'hap', text: 'Great, great news' },
  { label: 'sad', text: 'I miss her' },
  { label: 'sad', text: 'so tired now' },
];

test('textKeywords: class TF-IDF by hand (tf in the class document, idf over utterances)', () => {
  const kw = textKeywords(DOCS, CLASSES, 3, { warn: () => {} });
  // ang document (stop words out): hate hate stop  -> 3 words; 'now' is a stop word.
  // hate: tf 2/3, df 1 of N = 6 -> 2/3 ln 6; stop: 1/3 ln 6.
  assert.deepEqual(
    kw[0].map((t) => t.token),
    ['hate', 'stop'],
  );
  assert.ok(Math.abs(kw[0][0].score - (2 / 3) * Math.log(6)) < 1e-12);
  assert.ok(Math.abs(kw[0][1].score - (1 / 3) * Math.log(6)) < 1e-12);
  // hap: love much great great news -> great 2/5 ln 6 first; then the 1/5 ln 6 ties by spelling.
  assert.deepEqual(
    kw[1].map((t) => t.token),
    ['great', 'love', 'much'],
  );
  assert.deepEqual(selectTextKeywords(DOCS, CLASSES, 1, 'en', { warn: () => {} }), [
    ['hate'],
    ['great'],
    ['miss'],
  ]);
});

test('bad input: a class with no training utterance is an error; K above the distinct words or codes warns', () => {
  assert.throws(
    () => selectTextKeywords(DOCS.slice(0, 4), CLASSES, 9),
    /class 'sad' has no training utterances \(4 training utterances; per class: ang 2, hap 2, sad 0\)/,
  );
  assert.throws(
    () => selectSpeechCodes([{ label: 'a', codes: [1] }], ['a', 'b'], 2),
    /class 'b' has no training/,
  );
  const warnings: string[] = [];
  selectTextKeywords(DOCS, CLASSES, 9, 'en', { warn: (m) => warnings.push(m) });
  assert.equal(warnings.length, 3);
  assert.match(warnings[0], /class 'ang' has only 2 distinct words .* fewer than K = 9/);
  const cw: string[] = [];
  selectSpeechCodes(
    [
      { label: 'a', codes: [1, 2, 2] },
      { label: 'b', codes: [3] },
    ],
    ['a', 'b'],
    100,
    { warn: (m) => cw.push(m) },
  );
  assert.match(cw[0], /class 'a' has only 2 distinct codes/);
  assert.throws(() => selectSpeechCodes([{ label: 'a', codes: [1.5] }], ['a'], 2), /not a whole number/);
  assert.throws(() => selectTextKeywords(DOCS, CLASSES, 0), /K must be/);
  assert.throws(() => pickTraining([1, 2], []), /no training utterances/);
  assert.throws(() => pickTraining([1, 2], [2]), /outside the 2/);
});

test('speechCodeScores: codes as tokens, idf over utterances', () => {
  const docs = [
    { label: 'a', codes: [1, 1, 2] },
    { label: 'a', codes: [1] },
    { label: 'b', codes: [2, 3] },
  ];
  const s = speechCodeScores(docs, ['a', 'b'], 2);
  // a doc: 1 1 2 1 (len 4); df(1) = 2, df(2) = 2, df(3) = 1; N = 3.
  assert.deepEqual(
    s[0].map((t) => t.token),
    [1, 2],
  );
  assert.ok(Math.abs(s[0][0].score - (3 / 4) * Math.log(3 / 2)) < 1e-12);
  assert.deepEqual(
    s[1].map((t) => t.token),
    [3, 2],
  );
  assert.ok(Math.abs(s[1][0].score - (1 / 2) * Math.log(3)) < 1e-12);
});

/** A word-level tokenizer over a fixed list (id = index + 3; 0 pad, 1 cls, 2 sep). */
function wordTokenizer(words: string[]): LabelTokenizer {
  return {
    clsId: 1,
    sepId: 2,
    padId: 0,
    encodeText: (t) =>
      t
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => 3 + Math.max(0, words.indexOf(w.toLowerCase()))),
  };
}
const WORDS = ['hate', 'stop', 'great', 'love', 'much', 'miss', 'tired', 'angry', 'happy', 'sad'];

/** The tiny text encoder's hidden state of one token, computed here: tanh(W E[id] + b). */
function tinyTextHidden(w: ParameterStore, id: number, d: number): number[] {
  const E = w.get('text_encoder.embeddings.word_embeddings.weight').data as Float32Array;
  const W = w.get('text_encoder.encoder.dense.weight').data as Float32Array;
  const b = w.get('text_encoder.encoder.dense.bias').data as Float32Array;
  return Array.from({ length: d }, (_, j) => {
    let s = b[j];
    for (let k = 0; k < d; k++) s += W[j * d + k] * E[id * d + k];
    return Math.tanh(s);
  });
}

async function textWeights(seed = 3): Promise<ParameterStore> {
  const m = lemerModel({
    kind: 'text',
    textEncoder: tinyTextEncoder(),
    numClasses: 3,
    useLabelEmbeddings: true,
  });
  const params = new ParameterStore();
  const p = await Predictor.create({ inputs: m.inputs, build: m.infer, params, seed });
  await p.release();
  // Non-zero biases, so that the check sees them.
  const b = params.get('text_encoder.encoder.dense.bias');
  params.set('text_encoder.encoder.dense.bias', { ...b, data: Float32Array.from(uniform(b.data.length, 9)) });
  return params;
}

test("textLabelInit: tfidf and label-words = mean hidden state over the words' tokens; wordpiece = mean embedding row", async () => {
  const w = await textWeights();
  const enc = tinyTextEncoder();
  const tok = wordTokenizer(WORDS);
  const keywords = selectTextKeywords(DOCS, CLASSES, 2, 'en', { warn: () => {} });
  const d = enc.hiddenSize;
  const expect = (words: string[][], f: (id: number) => number[]) =>
    words.flatMap((ws) => {
      const rows = ws.flatMap((x) => tok.encodeText(x)).map(f);
      return Array.from({ length: d }, (_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);
    });
  const near = (a: ArrayLike<number>, b: number[], what: string) => {
    assert.equal(a.length, b.length);
    for (let i = 0; i < b.length; i++)
      assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  };
  const base = { encoder: enc, tokenizer: tok, classes: CLASSES, weights: w };
  const tf = await textLabelInit({ ...base, mode: 'tfidf', keywords });
  assert.deepEqual(tf.missing, []);
  const lt = tf.params.get('head.label_embeddings.text')!;
  assert.deepEqual(lt.shape, [3, d]);
  near(
    lt.data as Float32Array,
    expect(keywords, (id) => tinyTextHidden(w, id, d)),
    'tfidf',
  );
  const lw = await textLabelInit({ ...base, mode: 'label-words' });
  assert.deepEqual(lw.sources, [['angry'], ['happy'], ['sad']]);
  near(
    lw.params.get('head.label_embeddings.text')!.data as Float32Array,
    expect([['angry'], ['happy'], ['sad']], (id) => tinyTextHidden(w, id, d)),
    'label-words',
  );
  const E = w.get('text_encoder.embeddings.word_embeddings.weight').data as Float32Array;
  const wp = await textLabelInit({ ...base, mode: 'tfidf', keywords, source: 'wordpiece' });
  near(
    wp.params.get('head.label_embeddings.text')!.data as Float32Array,
    expect(keywords, (id) => Array.from(E.subarray(id * d, (id + 1) * d))),
    'wordpiece',
  );
  assert.equal((await textLabelInit({ ...base, mode: 'random' })).params.size, 0);
  // Weights that lack the encoder's parameters: initialised from the seed, reported, the caller's store untouched.
  const empty = new ParameterStore();
  const r0 = await textLabelInit({ ...base, weights: empty, mode: 'tfidf', keywords });
  assert.ok(r0.missing.includes('text_encoder.encoder.dense.weight'));
  assert.equal(empty.names().length, 0);
  await assert.rejects(textLabelInit({ ...base, mode: 'tfidf' }), /keywords for each of the 3 classes/);
});

/** The tiny speech encoder's hidden state of one frame: tanh(W2 (W1 x + b1) + b2). */
function tinySpeechHidden(w: ParameterStore, x: number[], d: number): number[] {
  const g = (n: string) => w.get(`speech_encoder.${n}`).data as Float32Array;
  const [W1, b1, W2, b2] = [
    g('proj.weight'),
    g('proj.bias'),
    g('encoder.dense.weight'),
    g('encoder.dense.bias'),
  ];
  const p = Array.from(
    { length: d },
    (_, j) => b1[j] + x.reduce((s, v, k) => s + W1[j * x.length + k] * v, 0),
  );
  return Array.from({ length: d }, (_, j) =>
    Math.tanh(b2[j] + p.reduce((s, v, k) => s + W2[j * d + k] * v, 0)),
  );
}

interface SpeechItem {
  label: string;
  codes: number[];
  frames: number[][];
}
function speechItems(): SpeechItem[] {
  const u = uniform(200, 11);
  let k = 0;
  const mk = (label: string, codes: number[]) => ({
    label,
    codes,
    frames: codes.map(() => [u[k++], u[k++], u[k++], u[k++]]),
  });
  return [
    mk('ang', [1, 1, 2, 5]),
    mk('hap', [3, 4, 4]),
    mk('ang', [2, 1]),
    mk('sad', [6, 6, 5, 7, 3]),
    mk('hap', [4, 3]),
  ];
}
const feedOf = (it: SpeechItem): Record<string, HostTensor> => ({
  input_features: fl(it.frames.flat(), [1, it.frames.length, 4]),
  attention_mask: i64(
    it.frames.map(() => 1),
    [1, it.frames.length],
  ),
});

async function speechWeights(): Promise<ParameterStore> {
  const m = lemerModel({
    kind: 'speech',
    speechEncoder: tinySpeechEncoder(),
    numClasses: 3,
    useLabelEmbeddings: true,
  });
  const params = new ParameterStore();
  const p = await Predictor.create({ inputs: m.inputs, build: m.infer, params, seed: 4 });
  await p.release();
  return params;
}

test("speechLabelInit codebook: mean hidden state of the class's frames that carry its top codes", async () => {
  const w = await speechWeights();
  const items = speechItems();
  const top = selectSpeechCodes(items, CLASSES, 2, { warn: () => {} });
  const enc = tinySpeechEncoder();
  const r = await speechLabelInit({
    mode: 'codebook',
    encoder: enc,
    classes: CLASSES,
    weights: w,
    topCodes: top,
    utterances: items.map((it) => ({ label: it.label, codes: it.codes, feeds: feedOf(it) })),
  });
  const ls = r.params.get('head.label_embeddings.speech')!;
  assert.deepEqual(ls.shape, [3, 5]);
  CLASSES.forEach((c, k) => {
    const rows = items
      .filter((it) => it.label === c)
      .flatMap((it) => it.frames.filter((_, t) => top[k].includes(it.codes[t])))
      .map((x) => tinySpeechHidden(w, x, 5));
    assert.ok(rows.length > 0);
    for (let j = 0; j < 5; j++) {
      const want = rows.reduce((s, row) => s + row[j], 0) / rows.length;
      assert.ok(Math.abs((ls.data[k * 5 + j] as number) - want) < 1e-5, `${c}[${j}]`);
    }
  });
  // Projection mode: mean codebook vector of the top codes.
  const cv = (code: number) => [code, 2 * code, 1];
  const pr = await speechLabelInit({
    mode: 'codebook',
    codebookMode: 'projection',
    encoder: enc,
    classes: CLASSES,
    weights: w,
    topCodes: top,
    codeVector: cv,
  });
  const cb = pr.params.get('head.label_embeddings.speech_codebook')!;
  assert.deepEqual(cb.shape, [3, 3]);
  const m0 = top[0].reduce((s, c) => s + c, 0) / top[0].length;
  assert.deepEqual(
    Array.from(cb.data as Float32Array).slice(0, 3),
    [m0, 2 * m0, 1].map((v) => Math.fround(v)),
  );
  // bert: L_t as is when dims agree; a fixed projection otherwise.
  const lt: HostTensor = { dtype: 'float32', shape: [3, 6], data: Float32Array.from(uniform(18, 2)) };
  const b = await speechLabelInit({
    mode: 'bert',
    encoder: enc,
    classes: CLASSES,
    weights: w,
    textLabels: lt,
  });
  assert.deepEqual(b.params.get('head.label_embeddings.speech')!.shape, [3, 5]);
  assert.deepEqual(projectTextLabels(lt, 6).data, lt.data);
  assert.deepEqual(projectTextLabels(lt, 5, 1).data, projectTextLabels(lt, 5, 1).data);
  await assert.rejects(
    speechLabelInit({ mode: 'bert', encoder: enc, classes: CLASSES, weights: w }),
    /needs the text label embeddings/,
  );
  assert.equal(
    (await speechLabelInit({ mode: 'random', encoder: enc, classes: CLASSES, weights: w })).params.size,
    0,
  );
});

test('codeAt: same index when lengths agree, proportional position otherwise', () => {
  assert.equal(codeAt([5, 6, 7], 1, 3), 6);
  // 8 log-mel codes for 2 hidden frames (x4): frame 0 -> code 2, frame 1 -> code 6.
  assert.deepEqual(
    [0, 1].map((t) => codeAt([0, 1, 2, 3, 4, 5, 6, 7], t, 2)),
    [2, 6],
  );
});

test('no test-fold utterance shapes the label embeddings (change every test text and code: identical)', async () => {
  const tw = await textWeights();
  const sw = await speechWeights();
  const items = speechItems().map((s, i) => ({ ...s, text: DOCS[i % DOCS.length].text }));
  // Fold: train on items 0..3, test on item 4 (a 'hap' utterance).
  const fold = { train: [0, 1, 2, 3], test: [4] };
  items[1].text = 'Great, great news';
  const embed = async (all: typeof items) => {
    const train = pickTraining(all, fold.train);
    const keywords = selectTextKeywords(train, CLASSES, 3, 'en', { warn: () => {} });
    const t = await textLabelInit({
      mode: 'tfidf',
      encoder: tinyTextEncoder(),
      tokenizer: wordTokenizer(WORDS),
      classes: CLASSES,
      keywords,
      weights: tw,
    });
    const top = selectSpeechCodes(train, CLASSES, 2, { warn: () => {} });
    const s = await speechLabelInit({
      mode: 'codebook',
      encoder: tinySpeechEncoder(),
      classes: CLASSES,
      weights: sw,
      topCodes: top,
      utterances: train.map((it) => ({ label: it.label, codes: it.codes, feeds: feedOf(it) })),
    });
    return [...t.params.values(), ...s.params.values()].map((x) => Array.from(x.data as Float32Array));
  };
  const a = await embed(items);
  const changed = items.map((it, i) =>
    fold.test.includes(i)
      ? {
          ...it,
          text: 'hate hate love love miss',
          codes: [1, 2, 3, 4, 5, 6, 7].slice(0, it.codes.length),
          frames: it.frames.map((f) => f.map((v) => -v)),
        }
      : it,
  );
  assert.deepEqual(await embed(changed), a);
  // A training utterance does shape them.
  const trainChanged = items.map((it, i) => (i === 1 ? { ...it, text: 'stop stop stop hate' } : it));
  assert.notDeepEqual(await embed(trainChanged), a);
});
