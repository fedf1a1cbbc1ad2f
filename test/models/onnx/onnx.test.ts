// Frozen ONNX encoders in the transformers.js layout: lemer inference graphs exported with
// the real input / output names, run directly on ONNX Runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Graph, Tensor } from '../../../src/graph/graph.js';
import { conv1dLayer } from '../../../src/graph/layers/conv.js';
import * as ops from '../../../src/graph/ops/index.js';
import { initTensor } from '../../../src/graph/params.js';
import type { HostTensor } from '../../../src/graph/runtime.js';
import { loadEncoder } from '../../../src/models/encoders.js';
import type { Encoder } from '../../../src/models/encoder.js';
import { FrozenOnnxEncoder, findOnnxFile, loadOnnxEncoder } from '../../../src/models/onnx/index.js';
import { fixtureDir, maxAbsDiff, reference } from '../bert/helpers.js';
import { writeOnnxFolder } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'lemer-onnx-'));

test('a BERT export (input_ids, attention_mask, token_type_ids -> last_hidden_state) runs frozen and matches PyTorch', async () => {
  const enc = loadEncoder(fixtureDir('bert-tiny'));
  const dir = join(tmp(), 'bert-onnx');
  writeOnnxFolder(enc, dir, { from: fixtureDir('bert-tiny') });
  const frozen = await loadOnnxEncoder(dir, { threads: 1 });
  assert.equal(frozen.modality, 'text');
  assert.equal(frozen.modelType, 'bert');
  assert.equal(frozen.hiddenSize, 32);
  assert.deepEqual([...frozen.inputNames].sort(), ['attention_mask', 'input_ids', 'token_type_ids']);
  const ref = reference('bert-tiny');
  const out = await frozen.run({
    input_ids: ref.get('input_ids')!,
    attention_mask: ref.get('attention_mask')!,
    token_type_ids: ref.get('token_type_ids')!,
  });
  const d = maxAbsDiff(out.hidden, ref.get('hidden_states.2')!, 'last_hidden_state');
  assert.ok(d < 1e-4, `differs by ${d}`);
  assert.deepEqual(out.mask.data, ref.get('attention_mask')!.data);
  await frozen.release();
});

test('variants: model_quantized.onnx alone is picked; with several and no model.onnx a variant must be named', async () => {
  const enc = loadEncoder(fixtureDir('roberta-tiny'));
  const dir = join(tmp(), 'roberta-onnx');
  writeOnnxFolder(enc, dir, {
    from: fixtureDir('roberta-tiny'),
    file: 'model_quantized.onnx',
    quantize: true,
  });
  assert.ok(findOnnxFile(dir).endsWith('onnx/model_quantized.onnx'));
  const frozen = await FrozenOnnxEncoder.load(dir, { threads: 1 });
  assert.deepEqual([...frozen.inputNames].sort(), ['attention_mask', 'input_ids']);
  const ref = reference('roberta-tiny');
  const out = await frozen.run({
    input_ids: ref.get('input_ids')!,
    attention_mask: ref.get('attention_mask')!,
  });
  const d = maxAbsDiff(out.hidden, ref.get('hidden_states.2')!, 'quantized');
  // 8-bit weights and activations: close, not exact.
  assert.ok(d > 1e-6 && d < 0.5, `quantized export differs by ${d}`);
  await frozen.release();
  writeOnnxFolder(enc, dir, { file: 'model_fp16.onnx' });
  assert.throws(() => findOnnxFile(dir), /several ONNX files and no model\.onnx: pick one with a variant/);
  assert.ok(findOnnxFile(dir, 'fp16').endsWith('model_fp16.onnx'));
  assert.ok(findOnnxFile(dir, 'quantized').endsWith('model_quantized.onnx'));
  assert.throws(() => findOnnxFile(dir, 'q4'), /no ONNX file model_q4\.onnx for variant 'q4'/);
  const empty = tmp();
  writeFileSync(join(empty, 'config.json'), '{"model_type": "bert"}');
  await assert.rejects(loadOnnxEncoder(empty), /no ONNX export \(expected onnx\/model\.onnx/);
  mkdirSync(join(empty, 'onnx'));
  writeFileSync(join(empty, 'onnx', 'model.onnx'), 'not a model');
  await assert.rejects(loadOnnxEncoder(empty), /model\.onnx: ONNX Runtime cannot load it/);
});

/** A tiny speech encoder with wav2vec2's conv arithmetic (kernels 10, 3; strides 5, 2): input_values -> frames. */
function tinySpeechEncoder(): Encoder {
  const enc: Encoder = {
    modality: 'speech',
    modelType: 'wav2vec2',
    hiddenSize: 6,
    numLayers: 0,
    inputs: {
      input_values: { dtype: 'float32', shape: ['batch', 'samples'] },
      attention_mask: { dtype: 'int64', shape: ['batch', 'samples'] },
    },
    build(g: Graph, i: Record<string, Tensor>) {
      const x = ops.unsqueeze(i.input_values, [1]);
      const h1 = ops.relu(conv1dLayer(x, 'conv0', { outChannels: 4, kernel: 10, stride: 5 }));
      const h2 = conv1dLayer(h1, 'conv1', { outChannels: 6, kernel: 3, stride: 2 });
      const hidden = ops.transpose(h2, [0, 2, 1]);
      void g;
      return { hidden, hiddenStates: [hidden], mask: i.attention_mask };
    },
    weights: new Map(),
    config: {},
    source: 'test',
  };
  const specs = [
    { name: 'conv0.weight', shape: [4, 1, 10] },
    { name: 'conv0.bias', shape: [4] },
    { name: 'conv1.weight', shape: [6, 4, 3] },
    { name: 'conv1.bias', shape: [6] },
  ];
  specs.forEach((s, k) =>
    enc.weights!.set(
      s.name,
      initTensor({ ...s, dtype: 'float32', init: { kind: 'normal', std: 0.3 }, trainable: true }, k + 1),
    ),
  );
  return enc;
}

test('a speech export (input_values, attention_mask -> last_hidden_state): frames and the frame mask by HF arithmetic', async () => {
  const dir = join(tmp(), 'speech-onnx');
  writeOnnxFolder(tinySpeechEncoder(), dir, {
    config: { model_type: 'wav2vec2', conv_kernel: [10, 3], conv_stride: [5, 2], hidden_size: 6 },
  });
  writeFileSync(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({ sampling_rate: 16000, do_normalize: true }),
  );
  const frozen = await loadOnnxEncoder(dir, { threads: 1 });
  assert.equal(frozen.modality, 'speech');
  assert.deepEqual(frozen.preprocessor, { sampling_rate: 16000, do_normalize: true });
  const [B, S] = [2, 100];
  const wave = new Float32Array(B * S).map((_, i) => Math.sin(i * 0.3));
  const mask = new BigInt64Array(B * S);
  mask.fill(1n, 0, 100);
  mask.fill(1n, 100, 160); // row 1: 60 samples
  const out = await frozen.run({
    input_values: { dtype: 'float32', shape: [B, S], data: wave } as HostTensor,
    attention_mask: { dtype: 'int64', shape: [B, S], data: mask },
  });
  // 100 samples: (100 - 10) / 5 + 1 = 19, (19 - 3) / 2 + 1 = 9 frames; 60: 11 then 5.
  assert.deepEqual(out.hidden.shape, [2, 9, 6]);
  assert.equal(frozen.outputLength(60), 5);
  assert.deepEqual(
    [...(out.mask.data as BigInt64Array)].map(Number),
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
  );
  await frozen.release();
});
