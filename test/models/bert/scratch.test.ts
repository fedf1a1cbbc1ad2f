// A tiny BERT built in place from a config object, over a vocabulary made by
// src/text/vocab.ts from the training texts: how lemer trains text encoders from scratch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linear } from '../../../src/graph/layers/linear.js';
import { crossEntropy } from '../../../src/graph/layers/losses.js';
import { maskedMean } from '../../../src/graph/layers/pooling.js';
import { Trainer } from '../../../src/graph/train.js';
import type { HostTensor } from '../../../src/graph/runtime.js';
import { createEncoder } from '../../../src/models/encoders.js';
import type { BertEncoder } from '../../../src/models/bert/index.js';
import { buildWordPieceVocab } from '../../../src/text/vocab.js';
import { padBatch, tokenizerFromJson } from '../../../src/text/tokenizer.js';

const TEXTS: [string, number][] = [
  ['i am so happy today', 1],
  ['what a wonderful happy day', 1],
  ['happy to see you', 1],
  ['this is great and happy', 1],
  ['i am so angry today', 0],
  ['what a terrible angry day', 0],
  ['angry to see you', 0],
  ['this is bad and angry', 0],
];

test('tiny BERT from a config and a built vocabulary: trains with dropout, loss falls', async () => {
  const tok = tokenizerFromJson(
    buildWordPieceVocab(
      TEXTS.map((t) => t[0]),
      { vocabSize: 120, minFrequency: 1 },
    ),
  );
  const enc = createEncoder('bert', {
    vocab_size: tok.vocabSize,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 64,
  }) as BertEncoder;
  const encoded = TEXTS.map(([t], i) => tok.encode(t, { history: i % 2 ? ['hello there'] : [] }));
  const b = padBatch(encoded, tok.padId);
  const batch: Record<string, HostTensor> = {
    input_ids: { dtype: 'int64', shape: [...b.shape], data: b.ids },
    attention_mask: {
      dtype: 'int64',
      shape: [...b.shape],
      data: BigInt64Array.from(b.mask, (m) => BigInt(m)),
    },
    token_type_ids: { dtype: 'int64', shape: [...b.shape], data: b.typeIds },
    labels: { dtype: 'int64', shape: [TEXTS.length], data: BigInt64Array.from(TEXTS, (t) => BigInt(t[1])) },
  };
  assert.ok(
    [...b.typeIds].some((t) => t === 1n),
    'history rows carry type 1 on the current utterance',
  );
  enc.checkInputs(batch);
  const tr = await Trainer.create({
    inputs: { ...enc.inputs, labels: { dtype: 'int64', shape: ['batch'] } },
    build: (g, i, ctx) => {
      const out = enc.build(g, i, { training: ctx.training });
      return { loss: crossEntropy(linear(maskedMean(out.hidden, out.mask), 'classifier', 2), i.labels) };
    },
    optimizer: { kind: 'adamw', lr: 3e-3 },
    runtime: { threads: 1 },
  });
  const losses: number[] = [];
  for (let s = 0; s < 40; s++) losses.push((await tr.step(batch)).loss);
  await tr.release();
  assert.ok(losses[39] < 0.5 * losses[0], `loss ${losses[0]} -> ${losses[39]}`);
});
