// The wav2vec2 family through the user's loader: a Hugging Face folder in, an encoder out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEncoder, encoderModelTypes, loadEncoder } from '../../../src/models/encoders.js';
import { FIXTURES, loadFixture, maxAbsDiff, runEncoder } from './helpers.js';

test('loadEncoder reads each fixture folder; the outputs match PyTorch', async () => {
  for (const t of ['wav2vec2', 'hubert', 'wavlm', 'wav2vec2-conformer'])
    assert.ok(encoderModelTypes().includes(t), t);
  for (const name of ['wav2vec2-tiny', 'hubert-tiny', 'wavlm-tiny', 'w2v2-conformer-rel']) {
    const dir = join(FIXTURES, name);
    const enc = loadEncoder(dir, { freezeFeatureEncoder: true });
    assert.equal(enc.modality, 'speech');
    assert.equal(enc.hiddenSize, 16);
    assert.equal(enc.source, dir);
    if (name === 'wav2vec2-tiny')
      assert.deepEqual(enc.unused.sort(), ['lm_head.bias', 'lm_head.weight', 'wav2vec2.masked_spec_embed']);
    if (name === 'w2v2-conformer-rel') assert.ok(enc.unused.includes('encoder.pos_conv_embed.conv.weight_g'));
    const fx = loadFixture(name);
    const out = await runEncoder(enc, {
      input_values: fx.ref.get('input_values')!,
      attention_mask: fx.ref.get('attention_mask')!,
    });
    assert.ok(maxAbsDiff(out['hidden_states.2'], fx.ref.get('hidden_states.2')!, name) <= 1e-4, name);
  }
});

test('createEncoder builds a random wav2vec2-family encoder in place; bad folders name the file', () => {
  const enc = createEncoder('wavlm', { hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 1 });
  assert.equal(enc.modelType, 'wavlm');
  assert.equal(enc.weights, null);
  const dir = mkdtempSync(join(tmpdir(), 'w2v2-bad-'));
  const fx = loadFixture('wav2vec2-tiny');
  copyFileSync(join(fx.dir, 'model.safetensors'), join(dir, 'model.safetensors'));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({ ...fx.config, hidden_size: 24, num_attention_heads: 2 }),
  );
  assert.throws(
    () => loadEncoder(dir),
    (e: Error) =>
      e.message.startsWith(`${join(dir, 'model.safetensors')}: the weights do not fit`) &&
      /wrong-shaped/.test(e.message),
  );
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...fx.config, feat_extract_norm: 'instance' }));
  assert.throws(
    () => loadEncoder(dir),
    (e: Error) => e.message.startsWith(`${join(dir, 'config.json')}: feat_extract_norm`),
  );
});
