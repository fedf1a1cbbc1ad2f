/**
 * The optimiser in the graph against an independent float64 reference written in plain
 * JS (forward, hand-derived gradients, clip_grad_norm_, torch's Adam / AdamW update with
 * bias correction and the warm-up / decay schedule), plus schedules, clipping, parameter
 * groups, frozen parameters and the no-decay rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn } from '../../src/graph/gradcheck.js';
import type { Graph, Tensor } from '../../src/graph/graph.js';
import { linear } from '../../src/graph/layers/linear.js';
import * as ops from '../../src/graph/ops/index.js';
import { DEFAULT_NO_DECAY, type OptimizerConfig, scheduleFactor } from '../../src/graph/optim.js';
import { ParameterStore } from '../../src/graph/params.js';
import type { HostTensor } from '../../src/graph/runtime.js';
import { Trainer } from '../../src/graph/train.js';

const [B, D, H, C] = [6, 5, 4, 3];

// ---------------------------------------------------------------- the reference ----
type Arr = Float64Array;
interface RefParams {
  'encoder.fc.weight': Arr; // [H, D]
  'encoder.fc.bias': Arr; // [H]
  'head.weight': Arr; // [C, H]
  'head.bias': Arr; // [C]
}

/** Loss and gradients of mean CE(softmax(tanh(x W1^T + b1) W2^T + b2), y), by hand. */
function refForwardBackward(p: RefParams, x: Arr, y: number[]): { loss: number; grads: RefParams } {
  const [W1, b1, W2, b2] = [p['encoder.fc.weight'], p['encoder.fc.bias'], p['head.weight'], p['head.bias']];
  const g = {
    'encoder.fc.weight': new Float64Array(H * D),
    'encoder.fc.bias': new Float64Array(H),
    'head.weight': new Float64Array(C * H),
    'head.bias': new Float64Array(C),
  };
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const h = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      let a = b1[j];
      for (let k = 0; k < D; k++) a += x[i * D + k] * W1[j * D + k];
      h[j] = Math.tanh(a);
    }
    const z = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let s = b2[c];
      for (let j = 0; j < H; j++) s += h[j] * W2[c * H + j];
      z[c] = s;
    }
    const mx = Math.max(...z);
    const e = Array.from(z, (v) => Math.exp(v - mx));
    const se = e.reduce((a, b) => a + b, 0);
    loss += -(z[y[i]] - mx - Math.log(se)) / B;
    const dz = e.map((v, c) => (v / se - (c === y[i] ? 1 : 0)) / B);
    const dh = new Float64Array(H);
    for (let c = 0; c < C; c++) {
      g['head.bias'][c] += dz[c];
      for (let j = 0; j < H; j++) {
        g['head.weight'][c * H + j] += dz[c] * h[j];
        dh[j] += dz[c] * W2[c * H + j];
      }
    }
    for (let j = 0; j < H; j++) {
      const da = dh[j] * (1 - h[j] * h[j]);
      g['encoder.fc.bias'][j] += da;
      for (let k = 0; k < D; k++) g['encoder.fc.weight'][j * D + k] += da * x[i * D + k];
    }
  }
  return { loss, grads: g };
}

interface RefOpt {
  kind: 'adam' | 'adamw';
  lr: number;
  encoderLr: number;
  beta1: number;
  beta2: number;
  eps: number;
  wd: number;
  warmup: number;
  total: number;
  maxNorm: number;
}

/** The schedule by hand: linear warm-up t/warmup, then linear decay to 0 at `total`. */
const refFactor = (o: RefOpt, t: number): number =>
  Math.min(1, t / o.warmup) * Math.max(0, Math.min(1, 1 - (t - o.warmup) / (o.total - o.warmup)));

/** One optimiser step exactly as torch.nn.utils.clip_grad_norm_ + torch.optim.Adam(W) do it. */
function refUpdate(
  o: RefOpt,
  p: RefParams,
  m: RefParams,
  v: RefParams,
  grads: RefParams,
  t: number,
): { norm: number; lr: number } {
  const names = Object.keys(p) as (keyof RefParams)[];
  let sq = 0;
  for (const n of names) for (const gv of grads[n]) sq += gv * gv;
  const norm = Math.sqrt(sq);
  const coef = Math.min(1, o.maxNorm / (norm + 1e-6));
  const f = refFactor(o, t);
  for (const n of names) {
    const lr = (n.startsWith('encoder.') ? o.encoderLr : o.lr) * f;
    const decay = n.endsWith('.bias') ? 0 : o.wd;
    const bc1 = 1 - o.beta1 ** t;
    const bc2 = 1 - o.beta2 ** t;
    for (let i = 0; i < p[n].length; i++) {
      let gi = grads[n][i] * coef;
      if (o.kind === 'adam') gi += decay * p[n][i];
      else p[n][i] *= 1 - lr * decay;
      m[n][i] = o.beta1 * m[n][i] + (1 - o.beta1) * gi;
      v[n][i] = o.beta2 * v[n][i] + (1 - o.beta2) * gi * gi;
      const denom = Math.sqrt(v[n][i]) / Math.sqrt(bc2) + o.eps;
      p[n][i] -= (lr / bc1) * (m[n][i] / denom);
    }
  }
  return { norm, lr: o.lr * f };
}

// ---------------------------------------------------------------- the engine ----
function mlp(g: Graph, i: Record<string, Tensor>): { loss: Tensor; metrics: Record<string, Tensor> } {
  const h = ops.tanh(linear(i.x, 'encoder.fc', H));
  const z = linear(h, 'head', C);
  const onehot = ops.cast(ops.equal(ops.unsqueeze(i.y, -1), g.int64s([0, 1, 2])), z.dtype);
  const loss = ops.neg(ops.reduceMean(ops.reduceSum(ops.mul(onehot, ops.logSoftmax(z, -1)), -1), 0));
  return { loss, metrics: { zmean: z.mean([0, 1]) } };
}

const shapes: Record<keyof RefParams, number[]> = {
  'encoder.fc.weight': [H, D],
  'encoder.fc.bias': [H],
  'head.weight': [C, H],
  'head.bias': [C],
};

function initialParams(): RefParams {
  const p = {} as RefParams;
  let seed = 11;
  for (const [n, s] of Object.entries(shapes))
    p[n as keyof RefParams] = randn(
      s.reduce((a, b) => a * b, 1),
      seed++,
    ).map((v) => v * 0.7);
  return p;
}

const X = randn(B * D, 3);
const Y = [0, 2, 1, 1, 0, 2];

function batch(ft: 'float32' | 'float64'): Record<string, HostTensor> {
  return {
    x: { dtype: ft, shape: [B, D], data: ft === 'float64' ? X.slice() : Float32Array.from(X) },
    y: { dtype: 'int64', shape: [B], data: BigInt64Array.from(Y.map(BigInt)) },
  };
}

function engineConfig(o: RefOpt): OptimizerConfig {
  return {
    kind: o.kind,
    lr: o.lr,
    betas: [o.beta1, o.beta2],
    eps: o.eps,
    weightDecay: o.wd,
    groups: [{ name: 'encoder', match: 'encoder.', lr: o.encoderLr }],
    schedule: { warmupSteps: o.warmup, decay: 'linear', totalSteps: o.total },
    maxGradNorm: o.maxNorm,
  };
}

async function compareWithReference(
  o: RefOpt,
  ft: 'float32' | 'float64',
  steps: number,
): Promise<{ worst: number; norms: number[] }> {
  const p0 = initialParams();
  const params = new ParameterStore();
  for (const [n, s] of Object.entries(shapes))
    params.put(n, {
      dtype: ft,
      shape: s,
      data: ft === 'float64' ? p0[n as keyof RefParams].slice() : Float32Array.from(p0[n as keyof RefParams]),
    });
  // The reference starts from exactly the engine's (possibly rounded) values.
  const ref = {} as RefParams;
  const m = {} as RefParams;
  const v = {} as RefParams;
  for (const n of Object.keys(shapes) as (keyof RefParams)[]) {
    ref[n] = Float64Array.from(params.get(n).data as Float32Array | Float64Array);
    m[n] = new Float64Array(ref[n].length);
    v[n] = new Float64Array(ref[n].length);
  }
  const trainer = await Trainer.create({
    inputs: { x: { dtype: ft, shape: ['batch', D] }, y: { dtype: 'int64', shape: ['batch'] } },
    build: mlp,
    optimizer: engineConfig(o),
    params,
    floatType: ft,
    runtime: { threads: 1 },
  });
  const x64 = Float64Array.from(batch(ft).x.data as Float32Array);
  let worst = 0;
  let where = '';
  const norms: number[] = [];
  const note = (err: number, what: string) => {
    if (err > worst) [worst, where] = [err, what];
  };
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b));
  for (let t = 1; t <= steps; t++) {
    const { loss, grads } = refForwardBackward(ref, x64, Y);
    const { norm, lr } = refUpdate(o, ref, m, v, grads, t);
    norms.push(norm);
    const r = await trainer.step(batch(ft));
    note(rel(r.loss, loss), `loss at step ${t}`);
    note(rel(r.gradNorm, norm), `grad_norm at step ${t}`);
    note(rel(r.lr, lr), `lr at step ${t}`);
    note(rel(r.lrs.encoder, o.encoderLr * refFactor(o, t)), `lr.encoder at step ${t}`);
    for (const n of Object.keys(shapes) as (keyof RefParams)[]) {
      const got = [
        params.get(n),
        trainer.optimizerState.get(`${n}.adam_m`),
        trainer.optimizerState.get(`${n}.adam_v`),
      ];
      [ref[n], m[n], v[n]].forEach((want, k) => {
        // Normwise: max |got - want| / max |want| over the tensor.
        const data = got[k].data as Float64Array | Float32Array;
        const scale = Math.max(...want.map(Math.abs));
        const err = Math.max(...want.map((w, i) => Math.abs(data[i] - w))) / scale;
        note(err, `${['', 'adam_m of ', 'adam_v of '][k]}${n} at step ${t}`);
      });
    }
  }
  console.log(`  ${o.kind} ${ft}: worst relative error ${worst.toExponential(2)} (${where})`);
  await trainer.release();
  return { worst, norms };
}

const BASE: RefOpt = {
  kind: 'adamw',
  lr: 0.05,
  encoderLr: 0.02,
  beta1: 0.9,
  beta2: 0.99,
  eps: 1e-8,
  wd: 0.1,
  warmup: 2,
  total: 6,
  maxNorm: 0.3,
};

test('one AdamW step (clipped, warm-up, groups) matches the float64 reference: float64 graph to 1e-10', async () => {
  const { worst, norms } = await compareWithReference(BASE, 'float64', 3);
  assert.ok(
    norms.every((n) => n > BASE.maxNorm),
    `clipping must be active in this case: norms ${norms}`,
  );
  assert.ok(worst < 1e-10, `worst relative error ${worst}`);
});

test('Adam with L2 weight decay, no clipping (norm below max), float32 graph, matches the reference to 1e-5', async () => {
  const o: RefOpt = { ...BASE, kind: 'adam', maxNorm: 100, wd: 0.05 };
  const { worst, norms } = await compareWithReference(o, 'float32', 3);
  assert.ok(
    norms.every((n) => n < o.maxNorm),
    `no clipping in this case: norms ${norms}`,
  );
  assert.ok(worst < 1e-5, `worst relative error ${worst}`);
});

test('AdamW float32 with clipping matches the reference to 1e-5', async () => {
  const { worst } = await compareWithReference(BASE, 'float32', 3);
  assert.ok(worst < 1e-5, `worst relative error ${worst}`);
});

// ---------------------------------------------------------------- schedules ----

/** A one-parameter model whose loss is w^2: steps are cheap; lr comes back per step. */
async function lrsFor(cfg: OptimizerConfig, steps: number): Promise<number[]> {
  const trainer = await Trainer.create({
    inputs: { x: { dtype: 'float64', shape: ['batch', 1] } },
    build: (g, i) => {
      const w = g.param('w', [1], { init: { kind: 'ones' } });
      return { loss: ops.mul(i.x, w).mul(w).mean([0, 1]) };
    },
    optimizer: cfg,
    floatType: 'float64',
    runtime: { threads: 1 },
  });
  const out: number[] = [];
  for (let s = 0; s < steps; s++)
    out.push(
      (await trainer.step({ x: { dtype: 'float64', shape: [1, 1], data: new Float64Array([1]) } })).lr,
    );
  await trainer.release();
  return out;
}

test('learning-rate schedules computed in the graph equal the hand formulas', async () => {
  const lr = 0.1;
  const close = (got: number[], want: number[]) =>
    got.forEach((g, i) =>
      assert.ok(Math.abs(g - want[i]) < 1e-12, `update ${i + 1}: lr ${g}, expected ${want[i]}`),
    );
  // Warm-up 4 then constant: t/4 * lr, then lr.
  close(await lrsFor({ lr, schedule: { warmupSteps: 4 } }, 6), [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]);
  // Warm-up 2, linear decay to 0 at 6, clamped after.
  close(
    await lrsFor({ lr, schedule: { warmupSteps: 2, decay: 'linear', totalSteps: 6 } }, 8),
    [0.05, 0.1, 0.075, 0.05, 0.025, 0, 0, 0],
  );
  // Cosine from update 0 (no warm-up) to 0.2 * lr at 4: lr (0.2 + 0.8 * (1 + cos(pi t / 4)) / 2).
  const cos = [1, 2, 3, 4, 5].map((t) => lr * (0.2 + 0.4 * (1 + Math.cos((Math.PI * Math.min(t, 4)) / 4))));
  close(await lrsFor({ lr, schedule: { decay: 'cosine', totalSteps: 4, finalLrRatio: 0.2 } }, 5), cos);
  // The JS reference function agrees with the same formulas.
  assert.equal(scheduleFactor({ warmupSteps: 2, decay: 'linear', totalSteps: 6 }, 4), 0.5);
  assert.ok(Math.abs(scheduleFactor({ warmupSteps: 10, decay: 'cosine', totalSteps: 20 }, 15) - 0.5) < 1e-15);
  assert.equal(scheduleFactor({ warmupSteps: 8000 }, 4000), 0.5);
});

test('schedule config errors are named', async () => {
  await assert.rejects(
    Trainer.create({
      inputs: { x: { dtype: 'float32', shape: [1] } },
      build: () => ({ loss: null as never }),
      optimizer: { lr: 1, schedule: { decay: 'linear' } },
    }),
    /needs totalSteps > warmupSteps/,
  );
});

// ---------------------------------------------------------------- groups, frozen, decay rule ----

test('parameter groups get their own learning rate; frozen parameters stay unchanged and have no optimiser state', async () => {
  const trainer = await Trainer.create({
    inputs: { x: { dtype: 'float64', shape: ['batch', 3] }, y: { dtype: 'float64', shape: ['batch', 2] } },
    build: (g, i) => {
      const speech = linear(i.x, 'speech.proj', 3, { init: { kind: 'normal', std: 0.5 } });
      const text = linear(speech, 'text.proj', 3, { init: { kind: 'normal', std: 0.5 } });
      const fixed = linear(text, 'frozen.proj', 3, { init: { kind: 'normal', std: 0.5 } });
      const buf = g.param('buffer', [3], { init: { kind: 'ones' }, trainable: false });
      const head = linear(ops.mul(fixed, buf), 'head', 2, { init: { kind: 'normal', std: 0.5 } });
      const d = ops.sub(head, i.y);
      return { loss: d.mul(d).mean([0, 1]) };
    },
    optimizer: {
      lr: 1e-2,
      groups: [
        { name: 'speech', match: 'speech.', lr: 1e-6 },
        { name: 'text', match: /^text\./, lr: 5e-6 },
      ],
    },
    trainable: (n) => !n.startsWith('frozen.'),
    floatType: 'float64',
    seed: 3,
    runtime: { threads: 1 },
  });
  const inputNames = trainer.graph.inputs.map((t) => t.name);
  assert.deepEqual(trainer.built.frozen.sort(), ['buffer', 'frozen.proj.bias', 'frozen.proj.weight']);
  for (const n of trainer.built.frozen) {
    assert.ok(
      !inputNames.includes(`${n}.adam_m`) && !inputNames.includes(`${n}.adam_v`),
      `${n} must have no state input`,
    );
    assert.ok(!trainer.optimizerState.has(`${n}.adam_m`));
    assert.ok(!trainer.graph.outputs.some((o) => o.name === `${n}.next`), `${n} must have no update output`);
  }
  const before = trainer.params.clone();
  const r = await trainer.step({
    x: { dtype: 'float64', shape: [4, 3], data: randn(12, 1) },
    y: { dtype: 'float64', shape: [4, 2], data: randn(8, 2) },
  });
  assert.deepEqual(r.lrs, { speech: 1e-6, text: 5e-6 });
  assert.equal(r.lr, 1e-2);
  // Adam's first update is lr * g / (|g| + eps) ~ lr in size for every element.
  const maxStep = (n: string) => {
    const a = before.get(n).data as Float64Array;
    const b = trainer.params.get(n).data as Float64Array;
    return Math.max(...a.map((x, i) => Math.abs(b[i] - x)));
  };
  const near = (got: number, lr: number) =>
    assert.ok(Math.abs(got - lr) / lr < 1e-3, `step ${got}, lr ${lr}`);
  near(maxStep('speech.proj.weight'), 1e-6);
  near(maxStep('text.proj.weight'), 5e-6);
  near(maxStep('head.weight'), 1e-2);
  for (const n of trainer.built.frozen)
    assert.deepEqual(trainer.params.get(n).data, before.get(n).data, `${n} changed`);
  await trainer.release();
});

test('the default no-decay rule: biases and LayerNorm weights', () => {
  for (const n of [
    'a.bias',
    'bias',
    'encoder.layer.0.attention.output.LayerNorm.weight',
    'encoder.layer_norm.weight',
    'layers.0.final_layer_norm.weight',
    'h.0.ln_1.weight',
    'blocks.norm1.weight',
  ])
    assert.ok(DEFAULT_NO_DECAY.test(n), n);
  for (const n of [
    'a.weight',
    'encoder.layer.0.attention.self.query.weight',
    'embeddings.word_embeddings.weight',
    'normalizer.scale',
    'bias_proj.weight',
  ])
    assert.ok(!DEFAULT_NO_DECAY.test(n), n);
});

test('AdamW decays weights but not excluded names (zero gradient isolates the decay)', async () => {
  const trainer = await Trainer.create({
    inputs: { x: { dtype: 'float64', shape: ['batch', 2] } },
    build: (g, i) => {
      const w = g.param('lin.weight', [2], { init: { kind: 'constant', value: 2 } });
      const b = g.param('lin.bias', [2], { init: { kind: 'constant', value: 2 } });
      const n = g.param('norm.weight', [2], { init: { kind: 'constant', value: 2 } });
      // x is fed as zeros: every gradient is 0, so only the decay moves anything.
      return { loss: ops.mul(i.x, ops.add(ops.add(w, b), n)).mean([0, 1]) };
    },
    optimizer: { kind: 'adamw', lr: 0.1, weightDecay: 0.5 },
    floatType: 'float64',
    runtime: { threads: 1 },
  });
  await trainer.step({ x: { dtype: 'float64', shape: [1, 2], data: new Float64Array(2) } });
  assert.deepEqual(Array.from(trainer.params.get('lin.weight').data as Float64Array), [
    2 * (1 - 0.05),
    2 * (1 - 0.05),
  ]);
  assert.deepEqual(Array.from(trainer.params.get('lin.bias').data as Float64Array), [2, 2]);
  assert.deepEqual(Array.from(trainer.params.get('norm.weight').data as Float64Array), [2, 2]);
  await trainer.release();
});
