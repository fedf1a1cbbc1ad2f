import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Predictor, Trainer, buildTrainingGraph } from '../../../src/graph/train.js';
import { ParameterStore } from '../../../src/graph/params.js';
import { lemerModel, type LemerModelSpec, FUSIONS } from '../../../src/models/lemer/index.js';
import { feedsFor, tinyBatch, tinySpeechEncoder, tinyTextEncoder } from './helpers.js';

const spec = (over: Partial<LemerModelSpec> = {}): LemerModelSpec => ({
  kind: 'lemer',
  textEncoder: tinyTextEncoder(),
  speechEncoder: tinySpeechEncoder(4, 5, 2),
  numClasses: 3,
  useLabelEmbeddings: true,
  head: { dropout: 0 },
  ...over,
});

const optimizer = { kind: 'adam' as const, lr: 1e-2 };

test('lemerModel: agreed inputs, parameter names and outputs; a Trainer steps it and the loss falls', async () => {
  const m = lemerModel(spec());
  assert.deepEqual(Object.keys(m.inputs).sort(), [
    'speech.attention_mask',
    'speech.input_features',
    'text.attention_mask',
    'text.input_ids',
  ]);
  assert.deepEqual(m.trainInputs.labels, { dtype: 'int64', shape: ['batch'] });
  const batch = tinyBatch();
  const tr = await Trainer.create({
    inputs: m.trainInputs,
    build: m.train,
    optimizer,
    seed: 1,
    runtime: { threads: 1 },
  });
  const names = [...tr.graph.params.keys()].filter((n) => n.startsWith('head.')).sort();
  assert.deepEqual(names, [
    'head.classifier.bias',
    'head.classifier.weight',
    'head.cross_attention.weight',
    'head.label_embeddings.speech',
    'head.label_embeddings.text',
  ]);
  assert.deepEqual(tr.graph.params.get('head.classifier.weight')!.spec.shape, [3, 11]);
  assert.deepEqual(tr.graph.params.get('head.cross_attention.weight')!.spec.shape, [6, 5]);
  assert.ok([...tr.graph.params.keys()].some((n) => n.startsWith('text_encoder.embeddings.')));
  assert.ok([...tr.graph.params.keys()].some((n) => n.startsWith('speech_encoder.proj.')));
  const feeds = feedsFor(m.trainInputs, batch);
  const first = await tr.step(feeds);
  assert.deepEqual(Object.keys(first.metrics).sort(), [
    'accuracy',
    'loss_constraint',
    'loss_main',
    'loss_speech_label',
    'loss_text_label',
  ]);
  const mm = first.metrics;
  const eq12 =
    mm.loss_main + 0.5 * mm.loss_constraint + 0.2 * mm.loss_text_label + 0.2 * mm.loss_speech_label;
  assert.ok(Math.abs(first.loss - eq12) < 1e-5, `loss ${first.loss} vs Eq 12 ${eq12}`);
  let last = first;
  for (let i = 0; i < 30; i++) last = await tr.step(feeds);
  assert.ok(last.loss < first.loss * 0.7, `loss ${first.loss} -> ${last.loss}`);
  const pred = await tr.predictor(m.inputs, m.infer);
  const out = await pred.run(feedsFor(m.inputs, batch));
  assert.deepEqual(out.logits.shape, [3, 3]);
  assert.deepEqual(out.text_label_attention.shape, [3, 4, 3]);
  assert.deepEqual(out.speech_label_attention.shape, [3, 3, 3]);
  assert.deepEqual(out.cross_attention.shape, [3, 4, 3]);
  for (const k of ['probs', 'text_mask', 'speech_mask', 'label_attention', 'fused_attention'])
    assert.ok(k in out, k);
  await pred.release();
  await tr.release();
});

test('lemerModel: micro-batches, label scope and layer weights build and run', async () => {
  const m = lemerModel(spec({ labelScope: 'current', layerWeights: true }));
  assert.ok('text.label_mask' in m.inputs);
  const b = tinyBatch();
  const extra = { ...b, 'text.input_ids': b['text.input_ids'] };
  const feeds = feedsFor(m.trainInputs, extra);
  // Batch of 3 does not split in 2: take 2 rows by building a 2-row batch.
  const two = Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => {
      const per = t.data.length / t.shape[0];
      return [k, { ...t, shape: [2, ...t.shape.slice(1)], data: t.data.slice(0, 2 * per) }];
    }),
  ) as typeof feeds;
  const tr = await Trainer.create({
    inputs: m.trainInputs,
    build: m.train,
    optimizer,
    microBatches: 2,
    seed: 1,
    runtime: { threads: 1 },
  });
  assert.ok(tr.graph.params.has('head.layer_weights.text'));
  assert.ok(tr.graph.params.has('head.layer_weights.speech'));
  const r = await tr.step(two);
  assert.ok(Number.isFinite(r.loss));
  await tr.release();
});

test('unimodal models: with label embeddings the label loss joins, without it only L_m', async () => {
  for (const kind of ['text', 'speech'] as const)
    for (const useLabelEmbeddings of [true, false]) {
      const m = lemerModel(spec({ kind, useLabelEmbeddings }));
      const built = buildTrainingGraph({ inputs: m.trainInputs, build: m.train, optimizer });
      const head = [...built.graph.params.keys()].filter((n) => n.startsWith('head.')).sort();
      const want = ['head.classifier.bias', 'head.classifier.weight'];
      if (useLabelEmbeddings) want.push(`head.label_embeddings.${kind}`);
      assert.deepEqual(head, want.sort(), `${kind} ${useLabelEmbeddings}`);
      assert.ok(Object.keys(m.inputs).every((k) => k.startsWith(`${kind}.`)));
      const loss = useLabelEmbeddings ? [`loss_${kind}_label`] : [];
      assert.deepEqual(built.metricNames.sort(), ['accuracy', 'loss_main', ...loss].sort());
      const tr = await Trainer.create({
        inputs: m.trainInputs,
        build: m.train,
        optimizer,
        runtime: { threads: 1 },
      });
      const r = await tr.step(feedsFor(m.trainInputs, tinyBatch()));
      const mu = kind === 'text' ? 0.2 : 0.2;
      const want2 = r.metrics.loss_main + (useLabelEmbeddings ? mu * r.metrics[`loss_${kind}_label`] : 0);
      assert.ok(Math.abs(r.loss - want2) < 1e-5);
      await tr.release();
    }
});

test('fusion variants: C2 and C4 drop L_c, C3 has no A_r nor its weight, C2 fuses with A_r + A_l', async () => {
  const batch = tinyBatch();
  const params = new ParameterStore();
  for (const fusion of FUSIONS) {
    const m = lemerModel(spec({ head: { fusion, dropout: 0 } }));
    const built = buildTrainingGraph({ inputs: m.trainInputs, build: m.train, optimizer });
    assert.equal(built.metricNames.includes('loss_constraint'), fusion === 'constraint', fusion);
    assert.equal(built.graph.params.has('head.cross_attention.weight'), fusion !== 'label-only', fusion);
    const pred = await Predictor.create({ inputs: m.inputs, build: m.infer, params, seed: 3 });
    const o = await pred.run(feedsFor(m.inputs, batch));
    const fa = o.fused_attention.data as Float32Array;
    const la = o.label_attention.data as Float32Array;
    const ca = o.cross_attention?.data as Float32Array | undefined;
    assert.equal(ca === undefined, fusion === 'label-only', fusion);
    for (let i = 0; i < fa.length; i++) {
      const want = fusion === 'sum' ? ca![i] + la[i] : fusion === 'label-only' ? la[i] : ca![i];
      assert.ok(Math.abs(fa[i] - want) < 1e-6, `${fusion}[${i}]`);
    }
    await pred.release();
  }
});

test('lemerModel: bad specs are clear errors', () => {
  assert.throws(() => lemerModel(spec({ speechEncoder: undefined })), /needs a speech encoder/);
  assert.throws(() => lemerModel(spec({ useLabelEmbeddings: false })), /always has label embeddings/);
  assert.throws(() => lemerModel(spec({ numClasses: 1 })), /numClasses/);
  assert.throws(() => lemerModel(spec({ classWeights: [1, 2] })), /classWeights needs 3/);
  assert.throws(() => lemerModel(spec({ textEncoder: tinySpeechEncoder() })), /is a speech encoder/);
  assert.throws(() => lemerModel(spec({ head: { fusion: 'nope' as never } })), /head.fusion/);
});

/** Row r of a batch, cut to `tokens` / `frames` (no padding). */
function alone(b: ReturnType<typeof tinyBatch>, r: number, tokens: number, frames: number) {
  const out: Record<string, (typeof b)[string]> = {};
  for (const [k, t] of Object.entries(b)) {
    const per = t.data.length / t.shape[0];
    const row = t.data.slice(r * per, (r + 1) * per);
    if (t.shape.length === 1) out[k] = { ...t, shape: [1], data: row };
    else {
      const keep = k.startsWith('text.') ? tokens : frames;
      const inner = per / t.shape[1];
      out[k] = { ...t, shape: [1, keep, ...t.shape.slice(2)], data: row.slice(0, keep * inner) };
    }
  }
  return out;
}

test('lemerModel masks: padded ids and frames change nothing; a padded row equals the row alone', async () => {
  for (const fusion of FUSIONS) {
    const m = lemerModel(spec({ head: { fusion, dropout: 0 }, labelScope: 'current' }));
    const params = new ParameterStore();
    const pred = await Predictor.create({
      inputs: m.inputs,
      build: m.infer,
      params,
      seed: 5,
      floatType: 'float64',
    });
    const tr = await Trainer.create({
      inputs: m.trainInputs,
      build: m.train,
      optimizer,
      params,
      floatType: 'float64',
      runtime: { threads: 1 },
    });
    const a = tinyBatch();
    const b = tinyBatch({ padId: 7, padValue: 1e3 });
    const oa = await pred.run(feedsFor(m.inputs, a));
    const ob = await pred.run(feedsFor(m.inputs, b));
    for (const k of ['logits', 'probs', 'text_label_probs', 'speech_label_probs', 'fused_attention'])
      assert.deepEqual(
        Array.from(ob[k].data as Float64Array),
        Array.from(oa[k].data as Float64Array),
        `${fusion} ${k}`,
      );
    const ea = await tr.evaluate(feedsFor(m.trainInputs, a));
    const eb = await tr.evaluate(feedsFor(m.trainInputs, b));
    assert.equal(eb.loss, ea.loss, fusion);
    // Row 1: 2 tokens, 3 frames (its speech has 2 frames after the encoder's stride 2).
    const o1 = await pred.run(feedsFor(m.inputs, alone(a, 1, 2, 3)));
    const l = Array.from(oa.logits.data as Float64Array).slice(3, 6);
    Array.from(o1.logits.data as Float64Array).forEach((v, i) =>
      assert.ok(Math.abs(v - l[i]) < 1e-12, `${fusion} row 1`),
    );
    await pred.release();
    await tr.release();
  }
});

test('class weights weight the CE terms (torch convention); logged terms stay plain means', async () => {
  const params = new ParameterStore();
  const batch = tinyBatch();
  const res = [];
  for (const classWeights of [null, [1, 1, 1], [0.5, 1, 3]]) {
    const m = lemerModel(spec({ classWeights }));
    const tr = await Trainer.create({
      inputs: m.trainInputs,
      build: m.train,
      optimizer,
      params,
      floatType: 'float64',
      seed: 2,
    });
    res.push(await tr.evaluate(feedsFor(m.trainInputs, batch)));
    await tr.release();
  }
  assert.ok(Math.abs(res[0].loss - res[1].loss) < 1e-12, 'unit weights = no weights');
  assert.ok(Math.abs(res[0].loss - res[2].loss) > 1e-6, 'weights change the loss');
  assert.equal(res[2].metrics.loss_main, res[0].metrics.loss_main);
});

test('speech label embeddings from codebook vectors through a learned projection (codebookMode projection)', async () => {
  const m = lemerModel(spec({ head: { dropout: 0, speechCodebookDim: 3 } }));
  const tr = await Trainer.create({
    inputs: m.trainInputs,
    build: m.train,
    optimizer,
    runtime: { threads: 1 },
  });
  const p = tr.graph.params;
  assert.ok(!p.has('head.label_embeddings.speech'));
  assert.deepEqual(p.get('head.label_embeddings.speech_codebook')!.spec.shape, [3, 3]);
  assert.equal(p.get('head.label_embeddings.speech_codebook')!.spec.trainable, false);
  assert.deepEqual(p.get('head.label_embeddings.speech_projection.weight')!.spec.shape, [5, 3]);
  const trained = tr.built.trained.map((s) => s.name);
  assert.ok(trained.includes('head.label_embeddings.speech_projection.weight'));
  assert.ok(!trained.includes('head.label_embeddings.speech_codebook'));
  const before = Array.from(tr.params.get('head.label_embeddings.speech_codebook').data as Float32Array);
  await tr.step(feedsFor(m.trainInputs, tinyBatch()));
  assert.deepEqual(
    Array.from(tr.params.get('head.label_embeddings.speech_codebook').data as Float32Array),
    before,
  );
  await tr.release();
});
