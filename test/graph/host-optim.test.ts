/**
 * Host optimiser placement (host-optim.ts): the training graph outputs gradients and the
 * host runs clipping, weight decay, the schedule and Adam / AdamW in place. The reference
 * is the in-graph update (placement 'graph') of the same model: losses, rates, gradient
 * norms, weights, m and v agree over several steps (parameter groups with their own rates
 * and weight decay, clipping active, warm-up + linear decay, 2 micro-batches), checkpoints
 * move between placements, BatchNorm buffers still update, shared weights are not changed
 * under their holder, and the K-steps Loop refuses host placement. Also the micro-batch
 * order the Trainer imposes on ONNX Runtime (chunk i after chunk i - 1's gradients).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { linear } from '../../src/graph/layers/linear.js';
import { crossEntropyTerm } from '../../src/graph/layers/losses.js';
import { batchNorm1d } from '../../src/graph/layers/norm.js';
import * as ops from '../../src/graph/ops/index.js';
import {
  HOST_PLACEMENT_MIN_PARAMS,
  type OptimizerConfig,
  gradName,
  nextName,
  resolvePlacement,
} from '../../src/graph/optim.js';
import { ParameterStore, type TensorStore } from '../../src/graph/params.js';
import type { HostTensor } from '../../src/graph/runtime.js';
import type { NodeRecord } from '../../src/graph/graph.js';
import { Trainer, type TrainerOptions, buildTrainingGraph } from '../../src/graph/train.js';
import { Rng } from '../../src/util/random.js';

const root = mkdtempSync(join(tmpdir(), 'lemer-host-optim-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const IN = 24;
const HID = 40;
const OUT = 6;
const B = 8;

type Float = 'float32' | 'float64';

/** Two linear layers (an "encoder" and a "head") and a squared error; the head also has a LayerNorm-named weight. */
function options(
  optimizer: OptimizerConfig,
  over: Partial<TrainerOptions> = {},
  ft: Float = 'float32',
): TrainerOptions {
  return {
    inputs: { x: { dtype: ft, shape: ['batch', IN] }, y: { dtype: ft, shape: ['batch', OUT] } },
    build: (g, i) => {
      const h = ops.tanh(linear(i.x, 'enc.l1', HID, { init: { kind: 'normal', std: 0.3 } }));
      const s = g.param('head.layer_norm.weight', [HID], { init: { kind: 'constant', value: 1 } });
      const o = linear(ops.mul(h, s), 'head.l2', OUT, { init: { kind: 'normal', std: 0.3 } });
      const d = ops.sub(o, i.y);
      return { loss: ops.mul(d, d).mean([0, 1]) };
    },
    optimizer,
    microBatches: 2,
    floatType: ft,
    seed: 7,
    runtime: { threads: 1 },
    ...over,
  };
}

const groups: OptimizerConfig['groups'] = [
  { name: 'enc', match: 'enc.', lr: 3e-2, weightDecay: 0.2 },
  { name: 'head', match: /^head\./, lr: 1e-2 },
];
const schedule = { warmupSteps: 3, decay: 'linear' as const, totalSteps: 12, finalLrRatio: 0.1 };
const configs: Record<string, OptimizerConfig> = {
  adam: { kind: 'adam', lr: 5e-3, weightDecay: 0.05, groups, schedule, maxGradNorm: 0.5 },
  adamw: { kind: 'adamw', lr: 5e-3, weightDecay: 0.1, groups, schedule, maxGradNorm: 0.5 },
};

function batches(n: number, ft: Float = 'float32'): Record<string, HostTensor>[] {
  const r = new Rng(11);
  const arr = (k: number, scale: number) => {
    const a = Float64Array.from({ length: k }, () => scale * r.normal());
    return ft === 'float32' ? Float32Array.from(a) : a;
  };
  return Array.from({ length: n }, () => ({
    x: { dtype: ft, shape: [B, IN], data: arr(B * IN, 1) },
    y: { dtype: ft, shape: [B, OUT], data: arr(B * OUT, 2) },
  }));
}

/** Every value of two stores within `rel` relative (of the larger magnitude, floor 1e-30). Returns how many differ at all. */
function close(a: TensorStore, b: TensorStore, what: string, rel: number): number {
  assert.deepEqual(a.names().sort(), b.names().sort(), what);
  let differ = 0;
  for (const n of a.names()) {
    const x = a.get(n).data as Float32Array;
    const y = b.get(n).data as Float32Array;
    assert.equal(x.length, y.length, `${what} '${n}'`);
    for (let i = 0; i < x.length; i++) {
      if (x[i] === y[i]) continue;
      differ++;
      const tol = rel * Math.max(Math.abs(x[i]), Math.abs(y[i]), 1e-30);
      assert.ok(Math.abs(x[i] - y[i]) <= tol, `${what} '${n}'[${i}]: graph ${x[i]}, host ${y[i]}`);
    }
  }
  return differ;
}

for (const ft of ['float32', 'float64'] as const)
  for (const kind of ['adam', 'adamw'] as const)
    test(`host placement = graph placement over 8 steps (${kind}, ${ft}: groups, decay, clipping, warm-up + linear decay, 2 micro-batches)`, async () => {
      const graph = await Trainer.create(options(configs[kind], { optimizerPlacement: 'graph' }, ft));
      const host = await Trainer.create(options(configs[kind], { optimizerPlacement: 'host' }, ft));
      assert.equal(graph.optimizerPlacement, 'graph');
      assert.equal(host.optimizerPlacement, 'host');
      // The host graph ends at the gradients: no state inputs, no new-state outputs.
      const outs = host.graph.outputs.map((o) => o.name);
      assert.ok(outs.includes(gradName('enc.l1.weight')) && !outs.includes(nextName('enc.l1.weight')));
      assert.ok(!host.graph.inputs.some((t) => t.name.endsWith('.adam_m')));
      assert.equal(host.writes.length, 0);
      let clipped = 0;
      const rel = ft === 'float32' ? 1e-6 : 1e-12;
      for (const [s, batch] of batches(8, ft).entries()) {
        const a = await graph.step(batch);
        const b = await host.step(batch);
        assert.equal(b.loss, a.loss, `step ${s} loss`); // the same weights went in
        assert.equal(b.gradNorm, a.gradNorm, `step ${s} grad norm`);
        assert.equal(b.lr, a.lr, `step ${s} lr`);
        assert.deepEqual(b.lrs, a.lrs, `step ${s} group rates`);
        if (a.gradNorm > 0.5) clipped++;
      }
      assert.ok(clipped >= 2, `clipping was active in ${clipped} of 8 steps`);
      const differ =
        close(graph.params, host.params, 'weights', rel) +
        close(graph.optimizerState, host.optimizerState, 'Adam state', rel);
      // The float32 kernel rounds as the float32 nodes do: bitwise the same on this machine.
      if (ft === 'float32') assert.equal(differ, 0, `${differ} values differ from the graph's`);
      // The update moved every trained tensor (weight decay and groups took part).
      for (const n of host.params.names())
        assert.ok(
          (host.optimizerState.get(`${n}.adam_v`).data as Float32Array).some((x) => x > 0),
          n,
        );
      await graph.release();
      await host.release();
    });

test('a checkpoint saved under one placement resumes under the other, as an uninterrupted run', async () => {
  const data = batches(6);
  for (const [first, second] of [
    ['host', 'graph'],
    ['graph', 'host'],
  ] as const) {
    const whole = await Trainer.create(options(configs.adamw, { optimizerPlacement: second }));
    for (const b of data) await whole.step(b);
    const a = await Trainer.create(options(configs.adamw, { optimizerPlacement: first }));
    for (const b of data.slice(0, 3)) await a.step(b);
    const dir = a.saveCheckpoint(join(root, `from-${first}`));
    const b = await Trainer.create(options(configs.adamw, { optimizerPlacement: second }));
    b.restore(dir);
    assert.equal(b.state.step, 3);
    for (const batch of data.slice(3)) await b.step(batch);
    close(whole.params, b.params, `${first} -> ${second} weights`, 1e-6);
    close(whole.optimizerState, b.optimizerState, `${first} -> ${second} Adam state`, 1e-6);
    for (const t of [whole, a, b]) await t.release();
  }
});

test('host placement: BatchNorm running statistics still update as with graph placement', async () => {
  const r = new Rng(3);
  const C = 3;
  const T = 5;
  const opts = (placement: 'graph' | 'host'): TrainerOptions => ({
    inputs: {
      x: { dtype: 'float32', shape: ['batch', C, T] },
      t: { dtype: 'float32', shape: ['batch', C, T] },
    },
    build: (_g, i) => {
      const y = batchNorm1d(i.x, 'bn', { trackBatches: true });
      return { loss: y.mul(i.t).mean([0, 1, 2]) };
    },
    optimizer: { lr: 0.05 },
    microBatches: 2,
    runtime: { threads: 1 },
    optimizerPlacement: placement,
  });
  const graph = await Trainer.create(opts('graph'));
  const host = await Trainer.create(opts('host'));
  assert.ok(host.writes.length > 0 && host.writes.every((w) => w.store === 'params'), 'buffer writes stay');
  for (let s = 0; s < 3; s++) {
    const x = Float32Array.from({ length: 4 * C * T }, (_, i) => (Math.floor(i / T) % C) + r.normal());
    const t = Float32Array.from({ length: 4 * C * T }, () => r.normal());
    const batch: Record<string, HostTensor> = {
      x: { dtype: 'float32', shape: [4, C, T], data: x },
      t: { dtype: 'float32', shape: [4, C, T], data: t },
    };
    await graph.step(batch);
    await host.step(batch);
  }
  const rm = host.params.get('bn.running_mean').data as Float32Array;
  assert.ok(rm[2] > 0.5, `running mean of channel 2 moved towards 2: ${rm[2]}`);
  assert.equal(Number(host.params.get('bn.num_batches_tracked').data[0]), 6, '3 steps x 2 micro-batches');
  close(graph.params, host.params, 'weights and buffers', 1e-6);
  await graph.release();
  await host.release();
});

test('host placement does not change weights it was given under their holder', async () => {
  const given = new ParameterStore();
  const w = Float32Array.from({ length: HID * IN }, (_, i) => Math.sin(i));
  given.set('enc.l1.weight', { dtype: 'float32', shape: [HID, IN], data: w });
  const before = w.slice();
  const host = await Trainer.create(options(configs.adam, { optimizerPlacement: 'host', params: given }));
  const graph = await Trainer.create(
    options(configs.adam, { optimizerPlacement: 'graph', params: given.clone() }),
  );
  for (const b of batches(2)) {
    await host.step(b);
    await graph.step(b);
  }
  assert.deepEqual(w, before, 'the given array is unchanged');
  assert.notDeepEqual(host.params.get('enc.l1.weight').data, before, 'the trainer trained its own copy');
  close(graph.params, host.params, 'weights', 1e-6);
  await host.release();
  await graph.release();
});

test('placement auto, and the K-steps Loop refuses host placement', async () => {
  assert.equal(resolvePlacement('auto', HOST_PLACEMENT_MIN_PARAMS - 1), 'graph');
  assert.equal(resolvePlacement('auto', HOST_PLACEMENT_MIN_PARAMS), 'host');
  assert.equal(resolvePlacement(undefined, 1e9), 'graph', 'the Trainer default stays graph');
  assert.throws(() => resolvePlacement('gpu' as never, 1), /unknown placement 'gpu'/);
  const small = await Trainer.create(options(configs.adam, { optimizerPlacement: 'auto' }));
  assert.equal(small.optimizerPlacement, 'graph', `${HID * IN} parameters are far below the threshold`);
  await small.release();
  await assert.rejects(
    Trainer.create(options(configs.adam, { optimizerPlacement: 'host', stepsPerRun: 4 })),
    /optimizerPlacement 'host' does not work with stepsPerRun 4/,
  );
  // 'auto' with a Loop keeps the update in the graph.
  const loop = await Trainer.create(options(configs.adam, { optimizerPlacement: 'auto', stepsPerRun: 2 }));
  assert.equal(loop.optimizerPlacement, 'graph');
  await loop.release();
});

test('micro-batches: chunk 1 reads its inputs only after chunk 0 gradients are summed (plain loss and terms)', () => {
  const L = 3;
  for (const kind of ['loss', 'terms'] as const) {
    const built = buildTrainingGraph({
      inputs: { x: { dtype: 'float32', shape: ['batch', IN] }, labels: { dtype: 'int64', shape: ['batch'] } },
      build: (_g, i) => {
        let h = i.x;
        for (let l = 0; l < L; l++) h = ops.tanh(linear(h, `l${l}`, IN));
        const logits = linear(h, 'out', OUT);
        // No weights and a symbolic batch: the count is Size(per-row losses), which must not
        // make chunk 0's backward wait for chunk 1's forward.
        const ce = crossEntropyTerm(logits, i.labels);
        return kind === 'terms' ? { terms: { ce } } : { loss: ops.mul(ce.sum, 0.25) };
      },
      optimizer: configs.adam,
      microBatches: 2,
      optimizerPlacement: 'host',
    });
    const g = built.graph;
    const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    const ancestors = (roots: NodeRecord[]) => {
      const seen = new Set<NodeRecord>();
      const stack = [...roots];
      while (stack.length) {
        const n = stack.pop()!;
        if (seen.has(n)) continue;
        seen.add(n);
        for (const t of n.inputs) if (t && producer.has(t)) stack.push(producer.get(t)!);
      }
      return seen;
    };
    const done = g.nodes.filter((n) => n.op === 'IsNaN' && n.scope.startsWith('microbatch_order'));
    assert.equal(done.length, 1, kind);
    const forward = g.nodes.filter((n) => n.op === 'MatMul' && !n.scope.startsWith('grad'));
    assert.equal(forward.length, 2 * (L + 1), `${kind}: forward matmuls of 2 chunks`);
    const beforeDone = ancestors(done);
    const gated = forward.filter((n) => [...ancestors([n])].some((a) => a.op === 'Where'));
    // Chunk 0's forward is behind `done`, chunk 1's behind the gate, none both.
    assert.equal(gated.length, L + 1, `${kind}: chunk 1's matmuls wait for the gate`);
    assert.equal(forward.filter((n) => beforeDone.has(n)).length, L + 1, `${kind}: chunk 0's come first`);
    assert.ok(!gated.some((n) => beforeDone.has(n)), `${kind}: chunk 0's gradients need no chunk 1 forward`);
  }
});
