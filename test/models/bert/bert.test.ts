// BERT and RoBERTa against the float64 PyTorch reference of tools/make_bert_fixtures.py:
// every hidden state, every checkpoint layout, padded rows against the same rows alone,
// gradients (against PyTorch and against float64 finite differences).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../../src/graph/autodiff.js';
import { Graph, type Tensor } from '../../../src/graph/graph.js';
import { randn } from '../../../src/graph/gradcheck.js';
import { CompiledGraph, type HostTensor } from '../../../src/graph/runtime.js';
import { ConfigError } from '../../../src/config/load.js';
import { loadEncoder, createEncoder } from '../../../src/models/encoders.js';
import {
  bertArch,
  bertEncoder,
  bertParamSpecs,
  parseBertConfig,
  type BertEncoder,
} from '../../../src/models/bert/index.js';
import { fixtureDir, maxAbsDiff, reference, rowOf, rowPrefix, runEncoder, textFeeds } from './helpers.js';

const TOL = 1e-4;

async function checkAgainstReference(folder: string, refName = 'bert-tiny'): Promise<void> {
  const enc = loadEncoder(fixtureDir(folder));
  const ref = reference(refName);
  const out = await runEncoder(enc, textFeeds(enc, ref));
  const n = enc.numLayers + 1;
  for (let i = 0; i < n; i++) {
    const d = maxAbsDiff(
      out[`hidden_states.${i}`],
      ref.get(`hidden_states.${i}`)!,
      `${folder} hidden_states.${i}`,
    );
    assert.ok(d < TOL, `${folder}: hidden_states.${i} differs by ${d}`);
  }
  assert.equal(out[`hidden_states.${n}`], undefined);
}

test('BERT defaults are bert-base: 12 layers, hidden 768, 109,482,240 parameters without the pooler', () => {
  const arch = bertArch(parseBertConfig({ model_type: 'bert' }));
  assert.equal(arch.numLayers, 12);
  assert.equal(arch.hiddenSize, 768);
  const n = bertParamSpecs(arch).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  // bert-base-uncased has 109,482,240 parameters, 590,592 of them in the pooler (768 x 768 + 768).
  assert.equal(n, 109_482_240 - 590_592);
  const r = bertArch(parseBertConfig({ model_type: 'roberta' }));
  assert.equal(r.padTokenId, 1);
  assert.equal(r.maxLength, 510);
});

test('config: graph-changing values lemer does not build are refused naming file and key', () => {
  assert.throws(
    () => parseBertConfig({ model_type: 'bert', position_embedding_type: 'relative_key' }, 'x/config.json'),
    (e: Error) =>
      e instanceof ConfigError &&
      /x\/config\.json/.test(e.message) &&
      /position_embedding_type/.test(e.message),
  );
  assert.throws(() => parseBertConfig({ model_type: 'bert', is_decoder: true }), /is_decoder/);
  assert.throws(() => parseBertConfig({ hidden_size: 30, num_attention_heads: 4 }), /not divisible/);
  assert.throws(() => parseBertConfig({ hidden_act: 'swishy' }), /hidden_act/);
  // Keys that do not change the graph pass through.
  const c = parseBertConfig({ model_type: 'bert', id2label: { 0: 'a' }, architectures: ['BertModel'] });
  assert.deepEqual(c.architectures, ['BertModel']);
});

test('BertModel safetensors: every hidden state matches PyTorch to 1e-4 (padded batch)', async () => {
  await checkAgainstReference('bert-tiny');
});

test('BertForSequenceClassification: bert. prefix stripped, pooler and classifier listed as unused', async () => {
  const enc = loadEncoder(fixtureDir('bert-tiny-cls'));
  assert.deepEqual(enc.unused.sort(), [
    'bert.pooler.dense.bias',
    'bert.pooler.dense.weight',
    'classifier.bias',
    'classifier.weight',
  ]);
  await checkAgainstReference('bert-tiny-cls');
});

test('sharded safetensors (index + 2 shards) load and match', async () => {
  const enc = loadEncoder(fixtureDir('bert-tiny-sharded'));
  assert.equal(enc.files.length, 4, 'config.json, the index and two shards');
  await checkAgainstReference('bert-tiny-sharded');
});

test('fp16 and bf16 safetensors load as float32 and match their references', async () => {
  for (const f of ['bert-tiny-fp16', 'bert-tiny-bf16']) {
    const enc = loadEncoder(fixtureDir(f));
    assert.deepEqual(Object.keys(enc.storedDtypes), [f.endsWith('fp16') ? 'F16' : 'BF16']);
    assert.equal(enc.weights!.get('embeddings.word_embeddings.weight')!.dtype, 'float32');
    await checkAgainstReference(f, f);
  }
});

test('pytorch_model.bin (BertForMaskedLM, ZIP): tied decoder and position_ids buffer set aside; matches', async () => {
  const enc = loadEncoder(fixtureDir('bert-tiny-bin'));
  assert.ok(enc.unused.includes('cls.predictions.decoder.weight'));
  assert.ok(enc.unused.includes('bert.embeddings.position_ids'));
  await checkAgainstReference('bert-tiny-bin');
});

test('pytorch_model.bin, legacy layout: gamma/beta names, a non-contiguous tensor; matches', async () => {
  await checkAgainstReference('bert-tiny-bin-legacy');
});

test('RoBERTa (RobertaForMaskedLM): padding-offset positions, no token types; matches PyTorch', async () => {
  const enc = loadEncoder(fixtureDir('roberta-tiny'));
  assert.equal(enc.modelType, 'roberta');
  assert.deepEqual(Object.keys(enc.inputs).sort(), ['attention_mask', 'input_ids']);
  assert.ok(enc.unused.every((n) => n.startsWith('lm_head.')));
  await checkAgainstReference('roberta-tiny', 'roberta-tiny');
});

test('padded rows equal the same rows run alone (BERT and RoBERTa)', async () => {
  for (const f of ['bert-tiny', 'roberta-tiny']) {
    const enc = loadEncoder(fixtureDir(f));
    const ref = reference(f);
    const feeds = textFeeds(enc, ref);
    const batch = await runEncoder(enc, feeds);
    const mask = ref.get('attention_mask')!;
    const T = mask.shape[1];
    for (let b = 1; b < mask.shape[0]; b++) {
      let n = 0;
      for (let t = 0; t < T; t++) n += Number((mask.data as BigInt64Array)[b * T + t]);
      assert.ok(n < T, 'the row is padded');
      const alone: Record<string, HostTensor> = {};
      for (const [k, v] of Object.entries(feeds)) alone[k] = rowOf(v, b, n);
      const one = await runEncoder(enc, alone);
      const last = `hidden_states.${enc.numLayers}`;
      const d = maxAbsDiff(rowPrefix(batch[last], b, n), one[last], `${f} row ${b}`);
      assert.ok(d < 1e-5, `${f} row ${b}: padded vs alone differ by ${d}`);
    }
  }
});

test('gradients of a projection of the last hidden state match PyTorch for every parameter', async () => {
  const enc = loadEncoder(fixtureDir('bert-tiny'));
  const ref = reference('bert-tiny');
  const g = new Graph({ name: 'bert-grad' });
  const inputs: Record<string, Tensor> = {};
  for (const [k, d] of Object.entries(enc.inputs)) inputs[k] = g.input(k, d.dtype, d.shape);
  const out = enc.build(g, inputs, { training: false });
  const proj = g.input('projection', 'float32', out.hidden.shape);
  const loss = out.hidden.mul(proj).sum([0, 1, 2]);
  const names = [...g.params.keys()];
  const grads = gradients(
    loss,
    names.map((n) => g.params.get(n)!.tensor),
  );
  names.forEach((n, i) => g.output(`grad.${n}`, grads[i]!));
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const feeds: Record<string, HostTensor> = { ...textFeeds(enc, ref), projection: ref.get('projection')! };
  for (const [k, v] of enc.weights!) feeds[k] = v;
  const res = await cg.run(feeds);
  await cg.release();
  for (const n of names) {
    const want = ref.get(`grad.${n}`)!;
    let scale = 0;
    for (const v of want.data as Float32Array) scale = Math.max(scale, Math.abs(v));
    const d = maxAbsDiff(res[`grad.${n}`], want, n);
    assert.ok(d <= 1e-4 * Math.max(1, scale), `grad of ${n} differs by ${d} (scale ${scale})`);
  }
});

test('float64 finite differences through a tiny BERT and a tiny RoBERTa: every parameter', async () => {
  for (const model_type of ['bert', 'roberta'] as const) {
    const enc = createEncoder(model_type, {
      vocab_size: 11,
      hidden_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 12,
      max_position_embeddings: 12,
      type_vocab_size: model_type === 'bert' ? 2 : 1,
    }) as BertEncoder;
    const [B, T] = [2, 4];
    const g = new Graph({ name: 'bert-fd', floatType: 'float64' });
    const ins: Record<string, Tensor> = {};
    for (const [k, d] of Object.entries(enc.inputs)) ins[k] = g.input(k, d.dtype, [B, T]);
    const out = enc.build(g, ins, { training: false });
    const r = g.input('projection', 'float64', [B, T, 8]);
    const loss = out.hidden.mul(r).sum([0, 1, 2]);
    const params = g.trainableParams();
    const grads = gradients(
      loss,
      params.map((p) => p.tensor),
    );
    g.output('loss', loss);
    grads.forEach((gr, k) => g.output(`grad.${k}`, gr!));
    const cg = await CompiledGraph.create(g, { threads: 1 });
    const feeds: Record<string, HostTensor> = {
      input_ids: {
        dtype: 'int64',
        shape: [B, T],
        data: BigInt64Array.from(
          model_type === 'bert' ? [2n, 5n, 7n, 3n, 2n, 9n, 0n, 0n] : [0n, 5n, 7n, 2n, 0n, 9n, 1n, 1n],
        ),
      },
      attention_mask: {
        dtype: 'int64',
        shape: [B, T],
        data: BigInt64Array.from([1n, 1n, 1n, 1n, 1n, 1n, 0n, 0n]),
      },
      projection: { dtype: 'float64', shape: [B, T, 8], data: randn(B * T * 8, 5) },
    };
    if (enc.inputs.token_type_ids)
      feeds.token_type_ids = {
        dtype: 'int64',
        shape: [B, T],
        data: BigInt64Array.from([0n, 0n, 1n, 1n, 0n, 1n, 0n, 0n]),
      };
    params.forEach((p, k) => {
      const n = p.spec.shape.reduce((a, b) => a * b, 1);
      // Larger than the 0.02 init so that every term matters; LayerNorm scales near 1.
      const v = randn(n, 11 + k);
      if (p.spec.init.kind === 'ones') for (let i = 0; i < n; i++) v[i] = 1 + 0.1 * v[i];
      else for (let i = 0; i < n; i++) v[i] *= 0.3;
      feeds[p.spec.name] = { dtype: 'float64', shape: [...p.spec.shape], data: v };
    });
    const analytic = await cg.run(feeds);
    const lossAt = async () => (await cg.run(feeds, ['loss'])).loss.data[0] as number;
    let worst = 0;
    let where = '';
    const eps = 1e-6;
    for (let k = 0; k < params.length; k++) {
      const x = feeds[params[k].spec.name].data as Float64Array;
      const ga = analytic[`grad.${k}`].data as Float64Array;
      // A spread of elements of each tensor (all of the small ones).
      const step = Math.max(1, Math.floor(x.length / 6));
      for (let i = 0; i < x.length; i += step) {
        const orig = x[i];
        x[i] = orig + eps;
        const lp = await lossAt();
        x[i] = orig - eps;
        const lm = await lossAt();
        x[i] = orig;
        const num = (lp - lm) / (2 * eps);
        const err = Math.abs(ga[i] - num) / Math.max(Math.abs(num), 1e-3);
        if (err > worst) [worst, where] = [err, `${params[k].spec.name}[${i}]: ${ga[i]} vs ${num}`];
      }
    }
    await cg.release();
    assert.ok(worst < 1e-5, `${model_type}: finite differences differ by ${worst} at ${where}`);
  }
});

test('an in-place BERT from a config object builds, runs and gives every hidden state', async () => {
  const enc = createEncoder('bert', {
    vocab_size: 30,
    hidden_size: 16,
    num_hidden_layers: 3,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 20,
  });
  assert.equal(enc.weights, null);
  const ids: HostTensor = { dtype: 'int64', shape: [1, 4], data: BigInt64Array.from([2n, 7n, 9n, 3n]) };
  const ones: HostTensor = { dtype: 'int64', shape: [1, 4], data: new BigInt64Array(4).fill(1n) };
  const zeros: HostTensor = { dtype: 'int64', shape: [1, 4], data: new BigInt64Array(4) };
  const out = await runEncoder(enc, { input_ids: ids, attention_mask: ones, token_type_ids: zeros });
  assert.deepEqual(out['hidden_states.3'].shape, [1, 4, 16]);
  assert.throws(() => createEncoder('gpt2', {}), /unknown model_type "gpt2" \(known: .*bert.*roberta/);
  void bertEncoder;
});
