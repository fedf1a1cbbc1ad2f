import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig, loadConfig } from '../../src/config/load.js';
import { encoderTrainable, optimizerFor } from '../../src/train/model.js';
import { parseSets } from '../../src/cli/commands/cv.js';

test('top-N trainable layers: only the top N layers (and the norm above them) of an encoder train', () => {
  const top2 = encoderTrainable('text_encoder.', 4, { freeze: false, top: 2 });
  assert.equal(top2('text_encoder.embeddings.word_embeddings.weight'), false);
  assert.equal(top2('text_encoder.encoder.layer.1.output.dense.weight'), false);
  assert.equal(top2('text_encoder.encoder.layer.2.output.dense.weight'), true);
  assert.equal(top2('text_encoder.encoder.layer.3.attention.self.query.bias'), true);
  assert.equal(top2('head.classifier.weight'), true);
  assert.equal(
    top2('speech_encoder.encoder.layers.0.ffn.weight'),
    true,
    'other encoders are not its business',
  );
  const speech = encoderTrainable('speech_encoder.', 2, { freeze: false, top: 1 });
  assert.equal(speech('speech_encoder.encoder.layers.0.self_attn.q_proj.weight'), false);
  assert.equal(speech('speech_encoder.encoder.layers.1.self_attn.q_proj.weight'), true);
  assert.equal(speech('speech_encoder.encoder.layer_norm.weight'), true);
  assert.equal(speech('speech_encoder.subsampling.conv.0.weight'), false);
  const frozen = encoderTrainable('speech_encoder.', 2, { freeze: true, top: null });
  assert.equal(frozen('speech_encoder.encoder.layers.1.self_attn.q_proj.weight'), false);
  assert.equal(frozen('head.label_embeddings.speech'), true);
  const all = encoderTrainable('text_encoder.', 4, { freeze: false, top: null });
  assert.equal(all('text_encoder.embeddings.word_embeddings.weight'), true);
});

test('optimizer: a learning rate per module, warm-up from optim.warmupSteps or a share of the run', () => {
  const o = optimizerFor(defaultConfig(), 1000);
  assert.deepEqual(
    o.groups?.map((g) => [g.name, g.match, g.lr]),
    [
      ['text', 'text_encoder.', 5e-6],
      ['speech', 'speech_encoder.', 1e-6],
      ['head', 'head.', 1e-4],
    ],
  );
  assert.equal(o.schedule?.warmupSteps, 8000);
  assert.equal(o.maxGradNorm, 1);
  const f = optimizerFor(
    loadConfig(undefined, { train: { warmupFraction: 0.1 }, optim: { decay: 'linear' } }),
    1000,
  );
  assert.equal(f.schedule?.warmupSteps, 100);
  assert.equal(f.schedule?.totalSteps, 1000);
});

test('--set key=value: nested keys, values read as YAML', () => {
  assert.deepEqual(
    parseSets([
      'train.epochs=5',
      'optim.lr.head=3e-4',
      'classes=[a, b]',
      'encoders.text.path=null',
      'train.classBalanced=true',
    ]),
    {
      train: { epochs: 5, classBalanced: true },
      optim: { lr: { head: 3e-4 } },
      classes: ['a', 'b'],
      encoders: { text: { path: null } },
    },
  );
  assert.throws(() => parseSets(['epochs']), /expected key=value/);
});
