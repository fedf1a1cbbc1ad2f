import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InputDecl } from '../../src/graph/train.js';
import { tokenizerFromJson } from '../../src/text/tokenizer.js';
import { buildWordPieceVocab } from '../../src/text/vocab.js';
import type { Corpus } from '../../src/data/types.js';
import { encodeText, epochBatches, evalBatches, makeBatch, type Example } from '../../src/train/data.js';

const decls: Record<string, InputDecl> = {
  'text.input_ids': { dtype: 'int64', shape: ['batch', 'tokens'] },
  'text.attention_mask': { dtype: 'int64', shape: ['batch', 'tokens'] },
  'text.token_type_ids': { dtype: 'int64', shape: ['batch', 'tokens'] },
  'text.label_mask': { dtype: 'float32', shape: ['batch', 'tokens'] },
  'speech.input_features': { dtype: 'float32', shape: ['batch', 'frames', 2] },
  'speech.attention_mask': { dtype: 'int64', shape: ['batch', 'frames'] },
  labels: { dtype: 'int64', shape: ['batch'] },
};

function ex(index: number, tokens: number, frames: number, label = 0): Example {
  return {
    index,
    id: `u${index}`,
    label,
    text: {
      ids: Array.from({ length: tokens }, (_, i) => 10 + i),
      typeIds: Array.from({ length: tokens }, (_, i) => (i >= 2 ? 1 : 0)),
      currentStart: 2,
      currentEnd: tokens - 1,
    },
    speech: { data: Float32Array.from({ length: frames * 2 }, (_, i) => index + i / 100), frames, bins: 2 },
  };
}

test('makeBatch pads on the right, masks padding, typed as the model declares', () => {
  const b = makeBatch([ex(0, 5, 3, 1), ex(1, 3, 4, 0)], { decls, labelScope: 'current', padId: 0 });
  assert.deepEqual(b['text.input_ids'].shape, [2, 5]);
  assert.equal(b['text.input_ids'].dtype, 'int64');
  assert.deepEqual(
    Array.from(b['text.input_ids'].data as BigInt64Array, Number),
    [10, 11, 12, 13, 14, 10, 11, 12, 0, 0],
  );
  assert.deepEqual(
    Array.from(b['text.attention_mask'].data as BigInt64Array, Number),
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
  );
  // label scope 'current': only the current utterance's tokens (2 .. end-1)
  assert.deepEqual(Array.from(b['text.label_mask'].data as Float32Array), [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]);
  assert.equal(b['text.label_mask'].dtype, 'float32');
  assert.deepEqual(b['speech.input_features'].shape, [2, 4, 2]);
  const f = b['speech.input_features'].data as Float32Array;
  assert.equal(f[3 * 2], 0); // row 0, frame 3 is padding
  assert.ok(Math.abs(f[4 * 2 + 3 * 2] - (1 + 6 / 100)) < 1e-6); // row 1, frame 3, bin 0
  assert.deepEqual(
    Array.from(b['speech.attention_mask'].data as BigInt64Array, Number),
    [1, 1, 1, 0, 1, 1, 1, 1],
  );
  assert.deepEqual(Array.from(b.labels.data as BigInt64Array, Number), [1, 0]);
  const ctx = makeBatch([ex(0, 5, 3)], { decls, labelScope: 'context', padId: 0 });
  assert.deepEqual(Array.from(ctx['text.label_mask'].data as Float32Array), [1, 1, 1, 1, 1]);
  const padded = makeBatch([ex(0, 5, 3)], {
    decls,
    labelScope: 'context',
    padId: 0,
    padTo: { tokens: 8, frames: 6 },
  });
  assert.deepEqual(padded['text.input_ids'].shape, [1, 8]);
  assert.deepEqual(padded['speech.attention_mask'].shape, [1, 6]);
});

test('makeBatch: SpecAugment only when asked, seeded per utterance', () => {
  const e = [ex(0, 3, 50), ex(1, 3, 50)];
  const aug = { timeMasks: 2, timeMaskMax: 10, freqMasks: 0, seed: 5 };
  const a = makeBatch(e, { decls, labelScope: 'context', padId: 0, augment: aug });
  const b = makeBatch(e, { decls, labelScope: 'context', padId: 0, augment: aug });
  const plain = makeBatch(e, { decls, labelScope: 'context', padId: 0 });
  assert.deepEqual(a['speech.input_features'].data, b['speech.input_features'].data);
  assert.notDeepEqual(a['speech.input_features'].data, plain['speech.input_features'].data);
  const c = makeBatch(e, { decls, labelScope: 'context', padId: 0, augment: { ...aug, seed: 6 } });
  assert.notDeepEqual(a['speech.input_features'].data, c['speech.input_features'].data);
});

test('makeBatch names an input the pipeline cannot make', () => {
  assert.throws(
    () =>
      makeBatch([ex(0, 3, 3)], {
        decls: { ...decls, 'speech.codes': { dtype: 'int64', shape: ['batch'] } },
        labelScope: 'context',
        padId: 0,
      }),
    /speech\.codes/,
  );
});

test('epochBatches: every example once per epoch (whole micro-batches), seeded, new order each epoch, length-bucketed', () => {
  const all = Array.from({ length: 37 }, (_, i) => ex(i, 3, 10 + ((i * 7) % 23)));
  const e0 = epochBatches(all, { batchSize: 8, seed: 1, epoch: 0, multipleOf: 2, bucket: 8 });
  const seen = e0.flat().map((e) => e.index);
  assert.equal(new Set(seen).size, seen.length);
  assert.ok(seen.length >= 36 && seen.length <= 37);
  for (const b of e0) assert.equal(b.length % 2, 0);
  // bucketed: inside a batch, lengths are sorted
  for (const b of e0)
    for (let i = 1; i < b.length; i++) assert.ok(b[i].speech!.frames >= b[i - 1].speech!.frames);
  const again = epochBatches(all, { batchSize: 8, seed: 1, epoch: 0, multipleOf: 2, bucket: 8 });
  assert.deepEqual(
    again.map((b) => b.map((e) => e.index)),
    e0.map((b) => b.map((e) => e.index)),
  );
  const e1 = epochBatches(all, { batchSize: 8, seed: 1, epoch: 1, multipleOf: 2, bucket: 8 });
  assert.notDeepEqual(
    e1.map((b) => b.map((e) => e.index)),
    e0.map((b) => b.map((e) => e.index)),
  );
  const ev = evalBatches(all, 10);
  assert.deepEqual(
    ev
      .flat()
      .map((e) => e.index)
      .sort((a, b) => a - b),
    all.map((e) => e.index),
  );
});

test('encodeText: [CLS] history [SEP] current [SEP], history from the dialogue, oldest cut first', () => {
  const tok = tokenizerFromJson(
    buildWordPieceVocab(['one two three four five six seven eight'], { vocabSize: 200, minFrequency: 1 }),
  );
  const utts = ['one two', 'three four', 'five six', 'seven eight'].map((text, turn) => ({
    id: `t${turn}`,
    audioPath: null,
    text,
    label: 'x',
    speaker: 'a',
    session: 's',
    dialogue: 'd',
    turn,
  }));
  const corpus: Corpus = { name: 'c', labels: ['x'], utterances: utts, warnings: [] };
  const e = encodeText(corpus, 3, tok, { maxTokens: 150, history: 10, labelScope: 'context' });
  const words = e.ids.map((i) => tok.idToToken(i));
  assert.equal(words[0], '[CLS]');
  assert.equal(words[words.length - 1], '[SEP]');
  assert.deepEqual(words.slice(e.currentStart, e.currentEnd), ['seven', 'eight']);
  assert.ok(words.includes('one'));
  // a budget that fits one history turn keeps the most recent one
  const short = encodeText(corpus, 3, tok, { maxTokens: 8, history: 10, labelScope: 'context' });
  const sw = short.ids.map((i) => tok.idToToken(i));
  assert.ok(sw.includes('five') && !sw.includes('one'), sw.join(' '));
  assert.ok(short.ids.length <= 8);
  const none = encodeText(corpus, 3, tok, { maxTokens: 150, history: 0, labelScope: 'context' });
  assert.deepEqual(
    none.ids.map((i) => tok.idToToken(i)),
    ['[CLS]', 'seven', 'eight', '[SEP]'],
  );
});
