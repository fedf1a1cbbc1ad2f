/**
 * The optimiser as graph nodes: Adam / AdamW (exactly torch.optim.Adam / AdamW, bias
 * correction included), a learning-rate schedule computed in the graph from the step
 * input, parameter groups with their own rates, and clipping by global gradient norm
 * (torch.nn.utils.clip_grad_norm_). A training step is then one ONNX Runtime run whose
 * inputs are batch + weights + state + step and whose outputs are the new weights and state.
 */
import type { DType } from './dtype.js';
import { GraphError, type Graph, type ParamSpec, type Tensor } from './graph.js';
import * as ops from './ops/index.js';
import { fmtShape } from './shape.js';

/** Learning-rate schedule: a factor on each group's base rate, from the (1-based) update number t. */
export interface ScheduleConfig {
  /** Linear warm-up over this many updates: factor t / warmupSteps (update 1 already gets a small rate). */
  warmupSteps?: number;
  /** After warm-up: keep the rate, or decay it linearly / by half a cosine to `finalLrRatio` at `totalSteps`. */
  decay?: 'constant' | 'linear' | 'cosine';
  /** Needed for linear and cosine decay: the update at which the decay ends. */
  totalSteps?: number;
  /** Factor reached at the end of the decay (default 0). */
  finalLrRatio?: number;
}

export interface ParamGroup {
  /** Name of the group (its rate comes back as output `lr.<name>`). */
  name: string;
  /**
   * A parameter-name prefix, a pattern, or a predicate. Groups may overlap: the first
   * group listed that matches takes the parameter (its lr and weight decay).
   */
  match: string | RegExp | ((name: string) => boolean);
  lr: number;
  /** Overrides the optimiser's weight decay for this group (names under `noDecay` still get none). */
  weightDecay?: number;
}

export interface OptimizerConfig {
  /** 'adam': torch.optim.Adam (weight decay as L2 added to the gradient); 'adamw': decoupled decay. Default 'adam'. */
  kind?: 'adam' | 'adamw';
  /** Base learning rate (of parameters no group matches). */
  lr: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Default 0 for Adam, 0.01 for AdamW (as torch). */
  weightDecay?: number;
  /** Parameters that get no weight decay. Default: biases and LayerNorm weights (DEFAULT_NO_DECAY). */
  noDecay?: RegExp | ((name: string) => boolean);
  groups?: readonly ParamGroup[];
  schedule?: ScheduleConfig;
  /** Clip the gradients to this global L2 norm (clip_grad_norm_). Off when undefined. */
  maxGradNorm?: number;
}

/** Biases and normalisation weights (LayerNorm, layer_norm, final_layer_norm, ln_1, norm1, ...). */
export const DEFAULT_NO_DECAY = /(?:^|\.)bias$|(?:^|[._])(?:layer_?norm|ln|norm)[^.]*\.weight$/i;

/** Name of the graph input that carries the number of updates already done (a float scalar). */
export const STEP_INPUT = 'step';
export const GRAD_NORM_OUTPUT = 'grad_norm';
export const LR_OUTPUT = 'lr';
export const ADAM_STATE = ['adam_m', 'adam_v'] as const;

/** Graph output name of the next value of a parameter or state tensor. */
export const nextName = (name: string): string => `${name}.next`;
export const stateName = (param: string, slot: (typeof ADAM_STATE)[number]): string => `${param}.${slot}`;

export interface OptimizerEntry {
  spec: ParamSpec;
  tensor: Tensor;
  grad: Tensor;
}

/** Where each output of a training graph goes: back into the parameters or the optimiser state. */
export interface StateWrite {
  output: string;
  store: 'params' | 'optimizer';
  name: string;
}

/** Host placement: which graph output holds a parameter's gradient. */
export interface GradOutput {
  param: string;
  output: string;
}

export interface OptimizerBuild {
  /** Where the update runs ('host': `grads` are outputs and `writes` is empty). */
  placement: 'graph' | 'host';
  /** The `step` input: updates done before this one. */
  step: Tensor;
  /** Learning rate of the default group at this update. */
  lr: Tensor;
  /** Learning rate of each named group (and 'default'). */
  lrs: Record<string, Tensor>;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: Tensor;
  /** The optimiser-state inputs (all start as zeros). */
  stateSpecs: ParamSpec[];
  /** Output name -> which stored tensor it replaces. */
  writes: StateWrite[];
  /** Host placement: the gradient output of each trained parameter (empty for 'graph'). */
  grads: GradOutput[];
  /** Group of each parameter. */
  groupOf: Record<string, string>;
}

export interface ResolvedConfig {
  kind: 'adam' | 'adamw';
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  noDecay: (name: string) => boolean;
  groups: readonly ParamGroup[];
  schedule: Required<ScheduleConfig>;
  maxGradNorm: number | undefined;
}

export function resolveOptimizerConfig(cfg: OptimizerConfig): ResolvedConfig {
  const kind = cfg.kind ?? 'adam';
  if (kind !== 'adam' && kind !== 'adamw')
    throw new Error(`optimizer: unknown kind '${String(kind)}' (adam | adamw)`);
  const [beta1, beta2] = cfg.betas ?? [0.9, 0.999];
  const bad = (what: string, v: unknown) => new Error(`optimizer: ${what} is invalid: ${String(v)}`);
  if (!(cfg.lr >= 0) || !Number.isFinite(cfg.lr)) throw bad('lr', cfg.lr);
  if (!(beta1 >= 0 && beta1 < 1)) throw bad('beta1', beta1);
  if (!(beta2 >= 0 && beta2 < 1)) throw bad('beta2', beta2);
  const eps = cfg.eps ?? 1e-8;
  if (!(eps >= 0)) throw bad('eps', eps);
  const weightDecay = cfg.weightDecay ?? (kind === 'adamw' ? 0.01 : 0);
  if (!(weightDecay >= 0)) throw bad('weightDecay', weightDecay);
  const nd = cfg.noDecay ?? DEFAULT_NO_DECAY;
  const noDecay = typeof nd === 'function' ? nd : (n: string) => nd.test(n);
  const s = cfg.schedule ?? {};
  const schedule: Required<ScheduleConfig> = {
    warmupSteps: s.warmupSteps ?? 0,
    decay: s.decay ?? 'constant',
    totalSteps: s.totalSteps ?? 0,
    finalLrRatio: s.finalLrRatio ?? 0,
  };
  if (!Number.isInteger(schedule.warmupSteps) || schedule.warmupSteps < 0)
    throw bad('schedule.warmupSteps', schedule.warmupSteps);
  if (!['constant', 'linear', 'cosine'].includes(schedule.decay)) throw bad('schedule.decay', schedule.decay);
  if (schedule.decay !== 'constant' && !(schedule.totalSteps > schedule.warmupSteps))
    throw new Error(
      `optimizer: schedule.decay '${schedule.decay}' needs totalSteps > warmupSteps (got totalSteps ${schedule.totalSteps}, warmupSteps ${schedule.warmupSteps})`,
    );
  const names = new Set<string>();
  for (const gr of cfg.groups ?? []) {
    if (!gr.name || names.has(gr.name) || gr.name === 'default')
      throw new Error(`optimizer: parameter group names must be unique and not 'default' (got '${gr.name}')`);
    names.add(gr.name);
    if (!(gr.lr >= 0)) throw bad(`lr of group '${gr.name}'`, gr.lr);
  }
  if (cfg.maxGradNorm !== undefined && !(cfg.maxGradNorm > 0)) throw bad('maxGradNorm', cfg.maxGradNorm);
  return {
    kind,
    lr: cfg.lr,
    beta1,
    beta2,
    eps,
    weightDecay,
    noDecay,
    groups: cfg.groups ?? [],
    schedule,
    maxGradNorm: cfg.maxGradNorm,
  };
}

/** The group a parameter belongs to: the first whose `match` applies, else the default. */
export function groupFor(name: string, groups: readonly ParamGroup[]): ParamGroup | null {
  for (const gr of groups) {
    const m = gr.match;
    if (typeof m === 'string' ? name.startsWith(m) : m instanceof RegExp ? m.test(name) : m(name)) return gr;
  }
  return null;
}

/** The schedule factor at update t (1-based), in float64: the reference for the in-graph computation. */
export function scheduleFactor(schedule: ScheduleConfig, t: number): number {
  const w = schedule.warmupSteps ?? 0;
  const warm = w > 0 ? Math.min(1, t / w) : 1;
  const decay = schedule.decay ?? 'constant';
  if (decay === 'constant') return warm;
  const total = schedule.totalSteps ?? 0;
  const fin = schedule.finalLrRatio ?? 0;
  const p = Math.min(1, Math.max(0, (t - w) / (total - w)));
  const f = decay === 'linear' ? 1 - (1 - fin) * p : fin + (1 - fin) * 0.5 * (1 + Math.cos(Math.PI * p));
  return warm * f;
}

const minT = (a: Tensor, b: Tensor | number): Tensor => ops.minimum(a, b);
const maxT = (a: Tensor, b: Tensor | number): Tensor => ops.maximum(a, b);

/** The schedule factor as graph nodes, from the 1-based update number t (a float scalar). */
function scheduleNodes(g: Graph, s: Required<ScheduleConfig>, t: Tensor): Tensor {
  let factor: Tensor | null = s.warmupSteps > 0 ? minT(ops.div(t, s.warmupSteps), 1) : null;
  if (s.decay !== 'constant') {
    const p = minT(maxT(ops.div(ops.sub(t, s.warmupSteps), s.totalSteps - s.warmupSteps), 0), 1);
    const fin = s.finalLrRatio;
    let f: Tensor;
    if (s.decay === 'linear') f = ops.sub(g.scalar(1, t.dtype), ops.mul(p, 1 - fin));
    else {
      const cos = g.node('Cos', [ops.mul(p, Math.PI)], [{ dtype: t.dtype, shape: [] }])[0];
      f = ops.add(ops.mul(ops.add(cos, 1), 0.5 * (1 - fin)), fin);
    }
    factor = factor ? ops.mul(factor, f) : f;
  }
  return factor ?? g.scalar(1, t.dtype);
}

/**
 * Where the update runs. 'graph': Adam as nodes of the training graph, whose outputs are
 * the new weights and state (the default). 'host': the graph outputs each trained
 * parameter's gradient and the step's scalars, and host-optim.ts updates the host arrays
 * in place (no second copy of weights and state: the memory of fine-tuning base-size
 * encoders). 'auto': host from HOST_PLACEMENT_MIN_PARAMS trained parameters on.
 */
export type OptimizerPlacement = 'graph' | 'host' | 'auto';

/**
 * Trained parameters from which 'auto' picks host placement. Graph placement holds
 * weights and Adam state three times (the fed arrays, ORT's outputs, the binding's
 * copies): 12.5 GB peak against host's 6.7 GB on the fine-tuning bench (200 M trained
 * parameters, 4 micro-batches). The host update runs ~25 ns per parameter in one JS
 * thread (2-core machine, loaded): 0.6 M parameters (the cached-features bench) step in
 * ~195 ms in the graph against ~260 ms on the host; from a few M on the two are even
 * (noisy). Below 20 M the extra state is a few hundred MB, so smaller models keep the
 * update in the graph, as before.
 */
export const HOST_PLACEMENT_MIN_PARAMS = 20_000_000;

/** 'auto' resolved against the number of trained parameters. */
export function resolvePlacement(
  placement: OptimizerPlacement | undefined,
  trainedParams: number,
): 'graph' | 'host' {
  const p = placement ?? 'graph';
  if (p !== 'graph' && p !== 'host' && p !== 'auto')
    throw new Error(`optimizer: unknown placement '${String(p)}' (graph | host | auto)`);
  return p === 'auto' ? (trainedParams >= HOST_PLACEMENT_MIN_PARAMS ? 'host' : 'graph') : p;
}

/** Host placement: graph output of a trained parameter's gradient (accumulated, not clipped). */
export const gradName = (param: string): string => `${param}.grad`;
/** Host placement: scalar outputs the host update reads (computed by the same nodes as in the graph update). */
export const BIAS_CORRECTION1_OUTPUT = 'optimizer.bias_correction1';
export const BIAS_CORRECTION2_SQRT_OUTPUT = 'optimizer.bias_correction2_sqrt';
export const CLIP_COEF_OUTPUT = 'optimizer.clip_coef';

/** The optimiser group (null = default) and weight decay of a trained parameter. */
export function paramPlan(cfg: ResolvedConfig, name: string): { group: string; weightDecay: number } {
  const gr = groupFor(name, cfg.groups);
  return {
    group: gr?.name ?? 'default',
    weightDecay: cfg.noDecay(name) ? 0 : (gr?.weightDecay ?? cfg.weightDecay),
  };
}

/** The per-step scalars of the update, as nodes: norm and clip coefficient, rates, bias corrections. */
function optimizerScalars(g: Graph, entries: readonly OptimizerEntry[], cfg: ResolvedConfig) {
  const ft: DType = g.floatType;
  const step = g.findInput(STEP_INPUT) ?? g.input(STEP_INPUT, ft, []);
  if (step.dtype !== ft || step.rank !== 0)
    throw new GraphError(
      `optimizer: input '${STEP_INPUT}' must be a ${ft} scalar, got ${step.dtype}${fmtShape(step.shape)}`,
    );
  const t = ops.add(step, 1);

  // Global gradient norm (clip_grad_norm_: L2 over all gradients together).
  const sq = entries.map((e) =>
    ops.reshape(ops.reduceSum(ops.mul(e.grad, e.grad), allAxes(e.grad)), [1]).cast(ft),
  );
  const gradNorm =
    sq.length === 0
      ? g.scalar(0, ft)
      : ops.sqrt(ops.reduceSum(sq.length === 1 ? sq[0] : ops.concat(sq, 0), [0]));
  let clipCoef: Tensor | null = null;
  if (cfg.maxGradNorm !== undefined)
    clipCoef = minT(ops.div(g.scalar(cfg.maxGradNorm, ft), ops.add(gradNorm, 1e-6)), 1);

  const factor = scheduleNodes(g, cfg.schedule, t);
  const lrs: Record<string, Tensor> = { default: ops.mul(factor, cfg.lr) };
  for (const gr of cfg.groups) lrs[gr.name] = ops.mul(factor, gr.lr);
  // Bias corrections, shared by every parameter: 1 - beta^t.
  const bc1 = ops.sub(g.scalar(1, ft), ops.pow(g.scalar(cfg.beta1, ft), t));
  const bc2Sqrt = ops.sqrt(ops.sub(g.scalar(1, ft), ops.pow(g.scalar(cfg.beta2, ft), t)));
  return { step, gradNorm, clipCoef, lrs, bc1, bc2Sqrt };
}

/** The optimiser-state specs of a trained parameter (all start as zeros). */
function stateSpecsOf(spec: ParamSpec): [ParamSpec, ParamSpec] {
  const specOf = (slot: (typeof ADAM_STATE)[number]): ParamSpec => ({
    name: stateName(spec.name, slot),
    shape: [...spec.shape],
    dtype: spec.dtype,
    init: { kind: 'zeros' },
    trainable: false,
  });
  return [specOf('adam_m'), specOf('adam_v')];
}

/**
 * Adds the optimiser update for `entries` to `g`: the `step` input, one input per state
 * tensor (`<name>.adam_m`, `<name>.adam_v`), and outputs `<name>.next` for each new
 * parameter and state tensor, plus `grad_norm` (before clipping), `lr` and `lr.<group>`.
 * Parameters not in `entries` (frozen ones) get nothing.
 *
 * With placement 'host' the graph gets no state inputs and no update: it outputs
 * `<name>.grad` per entry, `grad_norm`, `lr`, `lr.<group>` and the bias corrections
 * (and the clip coefficient), and HostOptimizer (host-optim.ts) applies the update.
 */
export function addOptimizer(
  g: Graph,
  entries: readonly OptimizerEntry[],
  config: OptimizerConfig,
  placement: 'graph' | 'host' = 'graph',
): OptimizerBuild {
  const cfg = resolveOptimizerConfig(config);
  for (const e of entries) {
    if (e.grad.dtype !== e.tensor.dtype)
      throw new GraphError(
        `optimizer: gradient of '${e.spec.name}' is ${e.grad.dtype}, parameter is ${e.tensor.dtype}`,
      );
    if (e.grad.rank !== e.spec.shape.length)
      throw new GraphError(
        `optimizer: gradient of '${e.spec.name}' has shape ${fmtShape(e.grad.shape)}, parameter ${fmtShape(e.spec.shape)}`,
      );
  }
  return g.scope('optimizer', () => {
    const { step, gradNorm, clipCoef, lrs, bc1, bc2Sqrt } = optimizerScalars(g, entries, cfg);
    const stepSizes = new Map<string, Tensor>();
    const stepSize = (group: string) => {
      let s = stepSizes.get(group);
      if (!s) stepSizes.set(group, (s = ops.div(lrs[group], bc1)));
      return s;
    };

    const writes: StateWrite[] = [];
    const stateSpecs: ParamSpec[] = [];
    const groupOf: Record<string, string> = {};
    const grads: GradOutput[] = [];
    for (const e of entries) {
      const name = e.spec.name;
      const { group, weightDecay: wd } = paramPlan(cfg, name);
      groupOf[name] = group;
      const [mSpec, vSpec] = stateSpecsOf(e.spec);
      stateSpecs.push(mSpec, vSpec);
      if (placement === 'host') {
        const out = gradName(name);
        g.output(out, e.grad.withShape(e.spec.shape));
        grads.push({ param: name, output: out });
        continue;
      }
      const dt = e.tensor.dtype;
      const m = g.input(mSpec.name, dt, mSpec.shape);
      const v = g.input(vSpec.name, dt, vSpec.shape);
      const cast = (x: Tensor) => (x.dtype === dt ? x : x.cast(dt));

      let p = e.tensor;
      let grad = e.grad.withShape(e.spec.shape);
      if (clipCoef) grad = ops.mul(grad, cast(clipCoef));
      if (wd !== 0 && cfg.kind === 'adam') grad = ops.add(grad, ops.mul(p, wd));
      if (wd !== 0 && cfg.kind === 'adamw')
        p = ops.mul(p, ops.sub(g.scalar(1, dt), cast(ops.mul(lrs[group], wd))));
      // torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
      // (host-optim.ts repeats these operations in the same order: keep the two in step)
      const m2 = ops.add(m, ops.mul(ops.sub(grad, m), 1 - cfg.beta1));
      const v2 = ops.add(ops.mul(v, cfg.beta2), ops.mul(ops.mul(grad, grad), 1 - cfg.beta2));
      // denom = sqrt(v) / sqrt(bc2) + eps; p -= lr / bc1 * m / denom
      const denom = ops.add(ops.div(ops.sqrt(v2), cast(bc2Sqrt)), cfg.eps);
      const p2 = ops.sub(p, ops.mul(cast(stepSize(group)), ops.div(m2, denom)));

      for (const [tensor, store, target] of [
        [p2, 'params', name],
        [m2, 'optimizer', mSpec.name],
        [v2, 'optimizer', vSpec.name],
      ] as const) {
        const out = nextName(target);
        g.output(out, tensor.withShape(e.spec.shape));
        writes.push({ output: out, store, name: target });
      }
    }
    g.output(GRAD_NORM_OUTPUT, gradNorm);
    g.output(LR_OUTPUT, lrs.default);
    for (const gr of cfg.groups) g.output(`${LR_OUTPUT}.${gr.name}`, lrs[gr.name]);
    if (placement === 'host') {
      g.output(BIAS_CORRECTION1_OUTPUT, bc1);
      g.output(BIAS_CORRECTION2_SQRT_OUTPUT, bc2Sqrt);
      if (clipCoef) g.output(CLIP_COEF_OUTPUT, clipCoef);
    }
    return { placement, step, lr: lrs.default, lrs, gradNorm, stateSpecs, writes, grads, groupOf };
  });
}

function allAxes(t: Tensor): number[] {
  return Array.from({ length: t.rank }, (_, i) => i);
}
