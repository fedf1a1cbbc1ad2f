import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Graph, type Tensor } from '../../../src/graph/graph.js';
import { CompiledGraph, type HostTensor } from '../../../src/graph/runtime.js';
import { gradients } from '../../../src/graph/autodiff.js';
import { gradcheck } from '../../../src/graph/gradcheck.js';
import * as ops from '../../../src/graph/ops/index.js';
import {
  classificationLoss,
  constraintLoss,
  fusedHead,
  rowWeights,
  scopeMask,
  totalLoss,
  unimodalHead,
  type Fusion,
  type HeadParams,
} from '../../../src/models/lemer/index.js';
import { i64 } from './helpers.js';

interface Case {
  fusion: Fusion;
  alNorm: 'softmax' | 'raw';
  classWeights: number[] | null;
  labelScope: 'context' | 'current';
  outputs: Record<string, number[]>;
  grads: Record<string, number[]>;
}
const fx = JSON.parse(
  readFileSync(new URL('../../fixtures/models/lemer/head.json', import.meta.url), 'utf8'),
) as {
  sizes: Record<string, number>;
  scale: number;
  mu: [number, number, number, number];
  text_mask: number[];
  speech_mask: number[];
  label_mask: number[];
  labels: number[];
  inputs: Record<string, { shape: number[]; data: number[] }>;
  cases: Case[];
};
const { B, LT, LS } = fx.sizes;
const PARAM_NAMES = [
  'text',
  'speech',
  'text_labels',
  'speech_labels',
  'cross_weight',
  'classifier_weight',
  'classifier_bias',
] as const;
const mu = { fusion: fx.mu[0], constraint: fx.mu[1], textLabel: fx.mu[2], speechLabel: fx.mu[3] };

/** The head over graph inputs as the model wires it: terms and Eq 12. */
function buildHead(
  g: Graph,
  t: Record<string, Tensor>,
  c: Pick<Case, 'fusion' | 'alNorm' | 'classWeights' | 'labelScope'>,
) {
  const p: HeadParams = {
    textLabels: t.text_labels,
    speechLabels: t.speech_labels,
    crossWeight: c.fusion === 'label-only' ? undefined : t.cross_weight,
    classifierWeight: t.classifier_weight,
    classifierBias: t.classifier_bias,
  };
  const labelMask = c.labelScope === 'current' ? scopeMask(t.text_mask, t.label_mask) : undefined;
  const h = fusedHead(
    { hidden: t.text, mask: t.text_mask, labelMask },
    { hidden: t.speech, mask: t.speech_mask },
    p,
    { fusion: c.fusion, alNorm: c.alNorm, labelTemperature: fx.scale, dropout: 0 },
  );
  const cw = c.classWeights
    ? g.constant(Float64Array.from(c.classWeights), [c.classWeights.length])
    : undefined;
  const w = rowWeights(cw, t.labels);
  const terms = {
    main: classificationLoss(h.logits, t.labels, w),
    constraint:
      c.fusion === 'constraint' ? constraintLoss(h.labelAttention, h.crossAttention!, h.pairMask) : undefined,
    textLabel: classificationLoss(h.text.logits, t.labels, w),
    speechLabel: classificationLoss(h.speech.logits, t.labels, w),
  };
  return { h, terms, loss: totalLoss(terms, mu) };
}

function feeds(over: Partial<Record<string, number[]>> = {}): Record<string, HostTensor> {
  const f: Record<string, HostTensor> = {};
  for (const n of PARAM_NAMES) {
    const x = fx.inputs[n];
    f[n] = { dtype: 'float64', shape: x.shape, data: Float64Array.from(over[n] ?? x.data) };
  }
  f.text_mask = { dtype: 'float64', shape: [B, LT], data: Float64Array.from(fx.text_mask) };
  f.speech_mask = { dtype: 'float64', shape: [B, LS], data: Float64Array.from(fx.speech_mask) };
  f.label_mask = { dtype: 'float64', shape: [B, LT], data: Float64Array.from(fx.label_mask) };
  f.labels = i64(fx.labels, [B]);
  return f;
}

function declare(g: Graph, f: Record<string, HostTensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, g.input(k, v.dtype, v.shape)]));
}

async function runCase(c: Case, over: Partial<Record<string, number[]>> = {}) {
  const f = feeds(over);
  const g = new Graph({ floatType: 'float64' });
  const t = declare(g, f);
  const { h, terms, loss } = buildHead(g, t, c);
  const outs: Record<string, Tensor> = {
    text_label_attention: h.text.attention,
    speech_label_attention: h.speech.attention,
    text_label_probs: ops.softmax(h.text.logits, -1),
    speech_label_probs: ops.softmax(h.speech.logits, -1),
    label_attention: h.labelAttention,
    logits: h.logits,
    loss_main: terms.main,
    loss_text_label: terms.textLabel,
    loss_speech_label: terms.speechLabel,
    loss,
  };
  if (h.crossAttention) outs.cross_attention = h.crossAttention;
  if (terms.constraint) outs.loss_constraint = terms.constraint;
  const wrt = PARAM_NAMES.filter((n) => n !== 'cross_weight' || c.fusion !== 'label-only');
  const gs = gradients(
    loss,
    wrt.map((n) => t[n]),
  );
  for (const [k, v] of Object.entries(outs)) g.output(k, v);
  wrt.forEach((n, i) => g.output(`grad_${n}`, gs[i]!));
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const out = await cg.run(f);
  await cg.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float64Array)]));
}

function close(a: number[], b: number[], tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++)
    assert.ok(
      Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
}

const label = (c: Case) =>
  `${c.fusion}/${c.alNorm}${c.classWeights ? '/weighted' : ''}${c.labelScope === 'current' ? '/current' : ''}`;

test('head matches PyTorch: every output, loss term and gradient, each fusion variant, A_l norm, class weights, label scope', async () => {
  assert.equal(fx.cases.length, 20);
  for (const c of fx.cases) {
    const out = await runCase(c);
    for (const [k, want] of Object.entries(c.outputs)) {
      if (k === 'cross_attention' && c.fusion === 'label-only') continue;
      if (k === 'loss_constraint' && c.fusion !== 'constraint') continue;
      close(out[k], want, 1e-10, `${label(c)} ${k}`);
    }
    for (const [k, want] of Object.entries(c.grads))
      close(out[`grad_${k}`], want, 1e-9, `${label(c)} grad ${k}`);
  }
});

test('masks: padded tokens and frames change no output, loss or (real) gradient', async () => {
  const mt = fx.text_mask;
  const ms = fx.speech_mask;
  const x = fx.inputs.text;
  const s = fx.inputs.speech;
  const D = x.shape[2];
  const Ds = s.shape[2];
  const text = x.data.map((v, i) => (mt[Math.floor(i / D)] ? v : -123.4 + i));
  const speech = s.data.map((v, i) => (ms[Math.floor(i / Ds)] ? v : 55.5 - i));
  for (const c of fx.cases.filter((k) => !k.classWeights)) {
    const a = await runCase(c);
    const b = await runCase(c, { text, speech });
    for (const k of Object.keys(a)) {
      if (
        k === 'text_label_attention' ||
        k === 'speech_label_attention' ||
        k === 'grad_text' ||
        k === 'grad_speech'
      )
        continue; // these hold the padded positions' own (unused) values
      close(b[k], a[k], 1e-12, `${label(c)} ${k}`);
    }
    // Gradients at padded positions are exactly 0; at real ones unchanged.
    b.grad_text.forEach((v, i) =>
      assert.ok(mt[Math.floor(i / D)] ? Math.abs(v - a.grad_text[i]) < 1e-12 : v === 0),
    );
    b.grad_speech.forEach((v, i) =>
      assert.ok(ms[Math.floor(i / Ds)] ? Math.abs(v - a.grad_speech[i]) < 1e-12 : v === 0),
    );
  }
});

test('float64 gradcheck of the head (Eq 12 total and the logits), every fusion variant', async () => {
  for (const fusion of ['constraint', 'sum', 'label-only', 'vanilla'] as const)
    for (const alNorm of ['softmax', 'raw'] as const) {
      const c = { fusion, alNorm, classWeights: [0.5, 1, 2], labelScope: 'current' as const };
      const f = feeds();
      const names = Object.keys(f);
      const res = await gradcheck(
        (g, ...ts) => {
          const t = Object.fromEntries(names.map((n, i) => [n, ts[i]]));
          const { h, loss } = buildHead(g, t, c);
          return ops.add(ops.mul(loss, 3), ops.reduceSum(h.logits, [0, 1]));
        },
        names.map((n) => ({
          name: n,
          shape: [...f[n].shape],
          data: f[n].dtype === 'float64' ? (f[n].data as Float64Array) : undefined,
          raw: f[n].dtype === 'int64' ? f[n].data : undefined,
          dtype: f[n].dtype,
          differentiate:
            (PARAM_NAMES as readonly string[]).includes(n) &&
            !(n === 'cross_weight' && fusion === 'label-only'),
        })),
      );
      assert.ok(res.maxError < 1e-5, `${fusion}/${alNorm}: ${res.worst}`);
    }
});

test('loss terms on a hand-computed case', async () => {
  // One sample, 2 tokens (second padded), 2 frames, 2 classes, dims 2.
  // H_t row 0 = (1, 0); L_t = [(1, 0), (0, 1)]  => G_t row 0 = (1, 0); mean = (1, 0); scale 1.
  // L_g^t (label 0) = -log(e / (e + 1)) = log(1 + e^-1).
  // H_s = [(0, 2), (3, 0)]; L_s = [(1, 0), (0, 1)] => G_s = [(0, 1), (1, 0)]; mean (0.5, 0.5) => L_g^s = log 2.
  // A_r: W = 0 => scores 0 => A_r row 0 = (0.5, 0.5).
  // A_l raw row 0 = G_t0 . G_s^T = (0, 1); softmax => (1/(1+e), e/(1+e)).
  // L_c = mean over the 2 valid cells of (A_l - A_r)^2 = (e/(1+e) - 0.5)^2.
  // H_m row 0 = [1, 0, 1.5, 1] (A_r H_s = 0.5 (0,2) + 0.5 (3,0)); classifier W = I-ish picks:
  // logits = [1 + 1.5, 0 + 1] with Wc = [[1,0,1,0],[0,1,0,1]], b = 0 => L_m = log(1 + e^(1 - 2.5)).
  const e = Math.E;
  const want = {
    loss_text_label: Math.log(1 + 1 / e),
    loss_speech_label: Math.log(2),
    loss_constraint: (e / (1 + e) - 0.5) ** 2,
    loss_main: Math.log(1 + Math.exp(1 - 2.5)),
  };
  const f: Record<string, HostTensor> = {
    text: { dtype: 'float64', shape: [1, 2, 2], data: Float64Array.from([1, 0, 8, 9]) },
    speech: { dtype: 'float64', shape: [1, 2, 2], data: Float64Array.from([0, 2, 3, 0]) },
    tm: { dtype: 'float64', shape: [1, 2], data: Float64Array.from([1, 0]) },
    sm: { dtype: 'float64', shape: [1, 2], data: Float64Array.from([1, 1]) },
    labels: i64([0], [1]),
  };
  const g = new Graph({ floatType: 'float64' });
  const t = declare(g, f);
  const c = (v: number[], shape: number[]) => g.constant(Float64Array.from(v), shape);
  const h = fusedHead(
    { hidden: t.text, mask: t.tm },
    { hidden: t.speech, mask: t.sm },
    {
      textLabels: c([1, 0, 0, 1], [2, 2]),
      speechLabels: c([1, 0, 0, 1], [2, 2]),
      crossWeight: c([0, 0, 0, 0], [2, 2]),
      classifierWeight: c([1, 0, 1, 0, 0, 1, 0, 1], [2, 4]),
      classifierBias: c([0, 0], [2]),
    },
    { fusion: 'constraint', alNorm: 'softmax', labelTemperature: 1, dropout: 0 },
  );
  g.output('loss_text_label', classificationLoss(h.text.logits, t.labels));
  g.output('loss_speech_label', classificationLoss(h.speech.logits, t.labels));
  g.output('loss_constraint', constraintLoss(h.labelAttention, h.crossAttention!, h.pairMask));
  g.output('loss_main', classificationLoss(h.logits, t.labels));
  const total = totalLoss(
    {
      main: g.outputs[3].tensor,
      constraint: g.outputs[2].tensor,
      textLabel: g.outputs[0].tensor,
      speechLabel: g.outputs[1].tensor,
    },
    { fusion: 1, constraint: 0.5, textLabel: 0.2, speechLabel: 0.2 },
  );
  g.output('total', total);
  const cg = await CompiledGraph.create(g);
  const out = await cg.run(f);
  await cg.release();
  for (const [k, v] of Object.entries(want))
    assert.ok(Math.abs((out[k].data[0] as number) - v) < 1e-12, `${k}: ${out[k].data[0]} vs ${v}`);
  const eq12 =
    want.loss_main + 0.5 * want.loss_constraint + 0.2 * want.loss_text_label + 0.2 * want.loss_speech_label;
  assert.ok(Math.abs((out.total.data[0] as number) - eq12) < 1e-12);
});

test('unimodal head: pooled classifier plus label attention; labels absent = no label term', async () => {
  const f = feeds();
  const g = new Graph({ floatType: 'float64' });
  const t = declare(g, f);
  const p: HeadParams = {
    classifierWeight: ops.slice(t.classifier_weight, [0], [3], [1]),
    classifierBias: t.classifier_bias,
  };
  const withL = unimodalHead(
    { hidden: t.text, mask: t.text_mask },
    p,
    { labelTemperature: 2, dropout: 0 },
    t.text_labels,
  );
  const without = unimodalHead(
    { hidden: t.text, mask: t.text_mask },
    p,
    { labelTemperature: 2, dropout: 0 },
    undefined,
  );
  assert.equal(without.label, null);
  g.output('a', withL.logits);
  g.output('b', without.logits);
  g.output('G', withL.label!.attention);
  const cg = await CompiledGraph.create(g);
  const out = await cg.run(f);
  await cg.release();
  assert.deepEqual(Array.from(out.a.data as Float64Array), Array.from(out.b.data as Float64Array));
  // G_t equals the fused head's (same cosine), from the PyTorch fixture.
  close(Array.from(out.G.data as Float64Array), fx.cases[0].outputs.text_label_attention, 1e-12, 'G_t');
  // logits = max-pool over real tokens of H_t, times W[:, :3]^T + b, checked by hand here.
  const x = fx.inputs.text.data;
  const W = fx.inputs.classifier_weight.data;
  const bias = fx.inputs.classifier_bias.data;
  const logits: number[] = [];
  for (let b = 0; b < B; b++) {
    const v = [0, 1, 2].map((d) => {
      let m = -Infinity;
      for (let tt = 0; tt < LT; tt++)
        if (fx.text_mask[b * LT + tt]) m = Math.max(m, x[(b * LT + tt) * 3 + d]);
      return m;
    });
    for (let k = 0; k < 3; k++) logits.push(bias[k] + v.reduce((s, vd, d) => s + vd * W[k * 5 + d], 0));
  }
  close(Array.from(out.a.data as Float64Array), logits, 1e-12, 'unimodal logits');
});
