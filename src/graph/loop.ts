/**
 * K training steps in one ONNX Runtime run: an ONNX `Loop` whose body is the training
 * step (built by `buildTrainingStep`, the same code as the single-step graph). Weights,
 * Adam state and the step counter are loop-carried; the K batches come stacked along a
 * new leading axis and iteration i picks batch i with `Gather`; loss, metrics,
 * grad_norm and lr come back as scan outputs of shape [K].
 *
 * Why: the Node binding copies every output (new weights, m, v) into fresh JS arrays
 * after each run, ~15-20 ms per step per 85 MB of state (MEASURED.md). ORT does not copy
 * loop-carried values between iterations, so K steps per run pay that copy once, and the
 * results are bitwise identical to K single-step runs. On a GPU it keeps the state on the
 * device for K steps. Memory: from the second iteration on, the carried inputs are
 * ORT's own buffers (not the fed arrays), and the Loop copies its final carried values
 * into its outputs once per run: the peak holds about two more copies of the state than a
 * single step (BERT-base layer, 85 MB of state: +175 MB at K=4 and K=16).
 */
import { allocate } from './dtype.js';
import { Graph, GraphError, type ParamSpec, type Tensor } from './graph.js';
import { STEP_INPUT, nextName } from './optim.js';
import * as ops from './ops/index.js';
import type { HostTensor } from './runtime.js';
import { fmtShape } from './shape.js';
import {
  buildTrainingStep,
  checkTrainingOptions,
  type InputDecl,
  type TrainingGraph,
  type TrainingGraphOptions,
} from './train.js';

/**
 * Symbolic name of the stacked inputs' leading axis and of the scan outputs. The trip
 * count is read from it at run time, so one session runs any 1..K steps (a last partial
 * group of an epoch, or `trainer.step()`), without a second compiled graph.
 */
export const LOOP_STEPS_DIM = 'loop_steps';

/** Value-name prefix of the Loop body: its inputs and outputs reuse the outer graph's names. */
const BODY_PREFIX = 'step/';

export interface LoopTrainingOptions extends TrainingGraphOptions {
  /** K: the most training steps one run takes (the batches are stacked, so memory grows with K). */
  stepsPerRun: number;
}

export interface LoopTrainingGraph extends TrainingGraph {
  /** The Loop body: one training step. `optimizer`'s tensors (step, lr, ...) belong to it. */
  body: Graph;
  stepsPerRun: number;
}

export function checkStepsPerRun(k: unknown): number {
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1)
    throw new Error(`Trainer: stepsPerRun must be a whole number >= 1, got ${String(k)}`);
  return k;
}

/**
 * The K-steps training graph. Inputs: each batch input stacked as [steps, ...shape]
 * (same names as the single-step graph), every parameter, the optimiser state and
 * `step`. Outputs: `<name>.next` for parameters and state after the last step (same
 * names as the single-step graph), and `loss`, `metric.<k>`, `grad_norm`, `lr`,
 * `lr.<group>` with one value per step.
 */
export function buildLoopTrainingGraph(opts: LoopTrainingOptions): LoopTrainingGraph {
  const K = checkStepsPerRun(opts.stepsPerRun);
  checkTrainingOptions(opts);
  for (const [n, d] of Object.entries(opts.inputs))
    if (d.shape.includes(LOOP_STEPS_DIM))
      throw new Error(
        `Trainer: input '${n}' uses the dim name '${LOOP_STEPS_DIM}', which stepsPerRun reserves`,
      );
  const common = {
    floatType: opts.floatType ?? 'float32',
    training: true,
    seed: opts.seed ?? 0,
    ortContribOps: opts.ortContribOps ?? true,
  } as const;
  const g = new Graph({ name: opts.name ?? 'train', ...common });
  const stacked: Record<string, Tensor> = {};
  for (const [n, d] of Object.entries(opts.inputs))
    stacked[n] = g.input(n, d.dtype, [LOOP_STEPS_DIM, ...d.shape]);

  // The body: (iteration, cond, carried...) -> (cond, carried..., scan outputs...).
  const body = new Graph({ name: `${g.name}_step`, parent: g, valuePrefix: BODY_PREFIX, ...common });
  const iter = body.input('iter', 'int64', []);
  const cond = body.input('cond', 'bool', []);
  const batch: Record<string, Tensor> = {};
  for (const [n, d] of Object.entries(opts.inputs))
    batch[n] = body.node('Gather', [stacked[n], iter], [{ dtype: d.dtype, shape: [...d.shape] }], {
      axis: 0,
    })[0];
  const built = buildTrainingStep(body, batch, opts);
  const { optimizer } = built;

  // Outer inputs under the canonical names, so feeds, checkpoints and the stores work as for one step.
  const stepOuter = g.input(STEP_INPUT, g.floatType, []);
  const outerParam = new Map<string, Tensor>();
  for (const { spec } of body.params.values())
    outerParam.set(
      spec.name,
      g.param(spec.name, spec.shape, { init: spec.init, trainable: spec.trainable, dtype: spec.dtype }),
    );

  const bodyOut = new Map(body.outputs.map((o) => [o.name, o.tensor]));
  const carried: { inner: Tensor; next: Tensor; outer: Tensor; output?: string }[] = [
    {
      inner: optimizer.step,
      next: body.output(nextName(STEP_INPUT), ops.add(optimizer.step, 1)),
      outer: stepOuter,
    },
  ];
  const writeOf = new Map([...optimizer.writes, ...built.bufferWrites].map((w) => [w.name, w.output]));
  const carry = (spec: ParamSpec, inner: Tensor, outer: Tensor) => {
    const output = writeOf.get(spec.name);
    const next = output && bodyOut.get(output);
    if (!next) throw new GraphError(`loop: the training step has no output for '${spec.name}'`);
    carried.push({ inner, next, outer, output });
  };
  // Trained parameters and updated buffers (BatchNorm statistics) change from step to step.
  const changing = new Set([...built.trained.map((s) => s.name), ...built.bufferWrites.map((w) => w.name)]);
  const invariant = new Map<Tensor, Tensor>();
  for (const { spec, tensor } of body.params.values()) {
    if (changing.has(spec.name)) carry(spec, tensor, outerParam.get(spec.name)!);
    // Frozen and unused parameters do not change: the body reads the outer input directly.
    else invariant.set(tensor, outerParam.get(spec.name)!);
  }
  for (const spec of optimizer.stateSpecs) {
    const inner = body.findInput(spec.name);
    if (!inner) throw new GraphError(`loop: the training step has no input for '${spec.name}'`);
    carry(spec, inner, g.input(spec.name, spec.dtype, spec.shape));
  }
  redirect(body, invariant);

  // Every other body output is a per-step scalar: loss, metrics, grad_norm, lr.
  const written = new Set(carried.map((c) => c.next));
  const scans = body.outputs.filter((o) => !written.has(o.tensor));
  const stray = body.inputs.filter(
    (t) => t !== iter && t !== cond && !invariant.has(t) && !carried.some((c) => c.inner === t),
  );
  if (stray.length)
    throw new Error(
      `Trainer: the build function declared graph inputs of its own (${stray.map((t) => t.name.slice(BODY_PREFIX.length)).join(', ')}); declare batch inputs in 'inputs'`,
    );
  // ONNX Loop binds body inputs and outputs by position.
  const nameOf = new Map(body.outputs.map((o) => [o.tensor, o.name]));
  const condOut = body.output('cond_out', ops.identity(cond));
  body.inputs.splice(0, body.inputs.length, iter, cond, ...carried.map((c) => c.inner));
  body.outputs.splice(
    0,
    body.outputs.length,
    { name: 'cond_out', tensor: condOut },
    ...carried.map((c) => ({ name: nameOf.get(c.next)!, tensor: c.next })),
    ...scans,
  );

  // Trip count: the stacked inputs' leading dim. Condition: none (empty input).
  const first = stacked[Object.keys(opts.inputs)[0]];
  const shape = g.node('Shape', [first], [{ dtype: 'int64', shape: [first.rank] }])[0];
  const trips = g.node('Gather', [shape, g.scalar(0, 'int64')], [{ dtype: 'int64', shape: [] }], {
    axis: 0,
  })[0];
  const outs = g.node(
    'Loop',
    [trips, null, ...carried.map((c) => c.outer)],
    [
      ...carried.map((c) => ({ dtype: c.outer.dtype, shape: c.outer.shape })),
      ...scans.map((s) => ({ dtype: s.tensor.dtype, shape: [LOOP_STEPS_DIM, ...s.tensor.shape] })),
    ],
    { body },
  );
  carried.forEach((c, i) => {
    if (c.output) g.output(c.output, outs[i]);
  });
  scans.forEach((s, j) => g.output(s.name, outs[carried.length + j]));
  return { ...built, graph: g, body, stepsPerRun: K };
}

/** Replaces reads of `map`'s keys by its values in `g`'s nodes and in subgraphs nested in them. */
function redirect(g: Graph, map: Map<Tensor, Tensor>): void {
  if (map.size === 0) return;
  for (const n of g.nodes) {
    n.inputs = n.inputs.map((t) => (t && map.get(t)) ?? t);
    for (const a of Object.values(n.attrs)) if (a instanceof Graph) redirect(a, map);
  }
  const keep = g.inputs.filter((t) => !map.has(t));
  g.inputs.splice(0, g.inputs.length, ...keep);
}

/** One run takes 1..K batches (K = stepsPerRun: what bounds the memory of a run). */
export function checkStepCount(batches: readonly unknown[], maxSteps: number): void {
  if (!Array.isArray(batches) || batches.length === 0 || batches.length > maxSteps)
    throw new Error(
      `Trainer.steps: takes 1 to ${maxSteps} batches (stepsPerRun ${maxSteps}), got ${Array.isArray(batches) ? batches.length : typeof batches}`,
    );
}

/**
 * The batches of one run stacked along a new leading axis, after checking that there
 * are 1..maxSteps of them and that every input has the same dtype and shape in each
 * (stacking needs equal shapes: pad to a common length, or run odd batches on their own).
 */
export function stackBatches(
  batches: readonly Record<string, HostTensor>[],
  inputs: Record<string, InputDecl>,
  maxSteps: number,
): Record<string, HostTensor> {
  checkStepCount(batches, maxSteps);
  const out: Record<string, HostTensor> = {};
  for (const n of Object.keys(inputs)) {
    const missing = batches.findIndex((b) => !b[n]);
    if (missing >= 0) throw new Error(`Trainer.steps: batch ${missing} lacks input '${n}'`);
    const ref = batches[0][n];
    const data = allocate(ref.dtype, ref.data.length * batches.length);
    batches.forEach((b, i) => {
      const t = b[n];
      if (t.dtype !== ref.dtype || t.shape.join() !== ref.shape.join())
        throw new Error(
          `Trainer.steps: input '${n}' is ${t.dtype}${fmtShape(t.shape)} in batch ${i} but ${ref.dtype}${fmtShape(ref.shape)} in batch 0: the batches of one run are stacked, so each input needs the same shape in all of them (pad them to one length, or run this batch with step())`,
        );
      // Same dtype, so the typed arrays are of one class.
      (data as Float32Array).set(t.data as Float32Array, i * ref.data.length);
    });
    out[n] = { dtype: ref.dtype, shape: [batches.length, ...ref.shape], data };
  }
  return out;
}
