/**
 * The optimiser on the host ("host placement"): the training graph outputs each trained
 * parameter's gradient (summed over micro-batches, before clipping) and the step's
 * scalars (grad_norm, the rates, the bias corrections, the clip coefficient), all
 * computed by the same nodes as the in-graph update (optim.ts); this class applies
 * clipping, weight decay and Adam / AdamW in place on the host arrays of the weights and
 * of m and v.
 *
 * Why: with the update in the graph, a step holds the state three times (the fed arrays,
 * ORT's outputs, the binding's fresh copies of them): 6-9x the trained parameters in
 * float32 against PyTorch's 4x. In place, only the gradients cross the boundary.
 *
 * Same numbers: the float32 kernel rounds after every operation, in the graph's order
 * (Math.fround), so that it follows the float32 nodes operation for operation; the state
 * names are the graph's (`<name>.adam_m`), so checkpoints move between placements.
 */
import type { ParamSpec } from './graph.js';
import {
  BIAS_CORRECTION1_OUTPUT,
  BIAS_CORRECTION2_SQRT_OUTPUT,
  CLIP_COEF_OUTPUT,
  GRAD_NORM_OUTPUT,
  LR_OUTPUT,
  type OptimizerBuild,
  type OptimizerConfig,
  type ResolvedConfig,
  paramPlan,
  resolveOptimizerConfig,
  stateName,
} from './optim.js';
import type { TensorStore } from './params.js';
import type { HostTensor } from './runtime.js';

type FloatArray = Float32Array | Float64Array;

/** Per-step scalars of one parameter's update, in the parameter's float type. */
interface Scalars {
  clip: number;
  /** L2 decay (adam): grad += p * wd. 0 = none. */
  l2: number;
  /** Decoupled decay (adamw): p *= decay. 1 = none. */
  decay: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  bc2Sqrt: number;
  eps: number;
  stepSize: number;
  hasClip: boolean;
}

/** float32: every operation rounded as the graph's float32 nodes round it. */
function adamF32(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, s: Scalars): void {
  const f = Math.fround;
  const { clip, l2, decay, oneMinusBeta1: b1c, beta2: b2, oneMinusBeta2: b2c, bc2Sqrt, eps, stepSize } = s;
  const hasClip = s.hasClip;
  const hasL2 = l2 !== 0;
  const hasDecay = decay !== 1;
  for (let i = 0; i < p.length; i++) {
    let gi = g[i];
    let pi = p[i];
    if (hasClip) gi = f(gi * clip);
    if (hasL2) gi = f(gi + f(pi * l2));
    if (hasDecay) pi = f(pi * decay);
    const mo = m[i];
    const mi = f(mo + f(f(gi - mo) * b1c));
    const vi = f(f(v[i] * b2) + f(f(gi * gi) * b2c));
    const denom = f(f(f(Math.sqrt(vi)) / bc2Sqrt) + eps);
    p[i] = pi - f(stepSize * f(mi / denom));
    m[i] = mi;
    v[i] = vi;
  }
}

function adamF64(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, s: Scalars): void {
  const { clip, l2, decay, oneMinusBeta1: b1c, beta2: b2, oneMinusBeta2: b2c, bc2Sqrt, eps, stepSize } = s;
  const hasClip = s.hasClip;
  for (let i = 0; i < p.length; i++) {
    let gi = g[i];
    let pi = p[i];
    if (hasClip) gi = gi * clip;
    if (l2 !== 0) gi = gi + pi * l2;
    if (decay !== 1) pi = pi * decay;
    const mi = m[i] + (gi - m[i]) * b1c;
    const vi = v[i] * b2 + gi * gi * b2c;
    p[i] = pi - stepSize * (mi / (Math.sqrt(vi) / bc2Sqrt + eps));
    m[i] = mi;
    v[i] = vi;
  }
}

export class HostOptimizer {
  readonly cfg: ResolvedConfig;
  /** Arrays this trainer may update in place; any other array is copied before its first update. */
  readonly #owned = new WeakSet<ArrayBufferView>();
  readonly #plans: { param: string; output: string; group: string; weightDecay: number; f32: boolean }[];

  constructor(config: OptimizerConfig, build: OptimizerBuild, trained: readonly ParamSpec[]) {
    if (build.placement !== 'host')
      throw new Error(
        `HostOptimizer: the training graph was built with optimizer placement '${build.placement}'`,
      );
    this.cfg = resolveOptimizerConfig(config);
    const dtypes = new Map(trained.map((s) => [s.name, s.dtype]));
    this.#plans = build.grads.map(({ param, output }) => {
      const dt = dtypes.get(param);
      if (dt !== 'float32' && dt !== 'float64')
        throw new Error(
          `HostOptimizer: parameter '${param}' is ${String(dt)}; host placement updates float32 and float64 only`,
        );
      return { param, output, ...paramPlan(this.cfg, param), f32: dt === 'float32' };
    });
  }

  /** Lets the optimiser update `t`'s array in place (an array nothing else holds: fresh weights, loaded checkpoints). */
  adopt(t: HostTensor): void {
    this.#owned.add(t.data);
  }

  /** The store's array for `name`, copied first unless it is ours (shared weights must not change under their holders). */
  private own(store: TensorStore, name: string): FloatArray {
    const t = store.get(name);
    if (!this.#owned.has(t.data)) {
      const copy: HostTensor = { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() };
      store.set(name, copy);
      this.#owned.add(copy.data);
      return copy.data as FloatArray;
    }
    return t.data as FloatArray;
  }

  /**
   * Applies one update from a training run's outputs: reads (and removes) the gradient
   * and scalar outputs, and updates the weights in `params` and m, v in `state` in place.
   */
  apply(out: Record<string, HostTensor>, params: TensorStore, state: TensorStore): void {
    const scalar = (name: string, f32: boolean): number => {
      const t = out[name];
      if (!t) throw new Error(`HostOptimizer: the training step returned no output '${name}'`);
      const x = Number(t.data[0]);
      return f32 ? Math.fround(x) : x;
    };
    const cfg = this.cfg;
    const hasClip = cfg.maxGradNorm !== undefined;
    if (!(GRAD_NORM_OUTPUT in out))
      throw new Error(`HostOptimizer: the training step returned no '${GRAD_NORM_OUTPUT}'`);
    for (const p of this.#plans) {
      const grad = out[p.output];
      if (!grad) throw new Error(`HostOptimizer: the training step returned no gradient '${p.output}'`);
      delete out[p.output]; // dropped as soon as used: the gradients are the step's largest outputs
      const r = p.f32 ? Math.fround : (x: number) => x;
      const lr = scalar(p.group === 'default' ? LR_OUTPUT : `${LR_OUTPUT}.${p.group}`, p.f32);
      const wd = r(p.weightDecay);
      // The graph's scalar nodes: Mul(lr, wd) and 1 - it; lr / bc1 (optim.ts, addOptimizer).
      const s: Scalars = {
        hasClip,
        clip: hasClip ? scalar(CLIP_COEF_OUTPUT, p.f32) : 1,
        l2: cfg.kind === 'adam' ? wd : 0,
        decay: cfg.kind === 'adamw' && wd !== 0 ? r(1 - r(lr * wd)) : 1,
        oneMinusBeta1: r(1 - cfg.beta1),
        beta2: r(cfg.beta2),
        oneMinusBeta2: r(1 - cfg.beta2),
        bc2Sqrt: scalar(BIAS_CORRECTION2_SQRT_OUTPUT, p.f32),
        eps: r(cfg.eps),
        stepSize: r(lr / scalar(BIAS_CORRECTION1_OUTPUT, p.f32)),
      };
      const w = this.own(params, p.param);
      const m = this.own(state, stateName(p.param, 'adam_m'));
      const v = this.own(state, stateName(p.param, 'adam_v'));
      const g = grad.data as FloatArray;
      if (g.length !== w.length || m.length !== w.length || v.length !== w.length)
        throw new Error(
          `HostOptimizer: '${p.param}' has ${w.length} values, its gradient ${g.length}, m ${m.length}, v ${v.length}`,
        );
      if (p.f32) adamF32(w as Float32Array, g as Float32Array, m as Float32Array, v as Float32Array, s);
      else adamF64(w as Float64Array, g as Float64Array, m as Float64Array, v as Float64Array, s);
    }
    delete out[BIAS_CORRECTION1_OUTPUT];
    delete out[BIAS_CORRECTION2_SQRT_OUTPUT];
    delete out[CLIP_COEF_OUTPUT];
  }
}
