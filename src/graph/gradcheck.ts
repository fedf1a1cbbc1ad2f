/**
 * Checks gradient rules against central finite differences, in float64 on ONNX
 * Runtime's CPU provider. Used by the tests of every op; usable for new ops too.
 */
import { gradients } from './autodiff.js';
import type { DType } from './dtype.js';
import { Graph, type Tensor } from './graph.js';
import { CompiledGraph, type HostTensor } from './runtime.js';
import { fmtShape } from './shape.js';

export interface CheckInput {
  name: string;
  shape: number[];
  /** Values; random normal if omitted. */
  data?: Float64Array;
  /** Differentiate w.r.t. this input (default true for float64 inputs). */
  differentiate?: boolean;
  dtype?: DType;
  /** Non-float data (masks, indices) for inputs with differentiate: false. */
  raw?: HostTensor['data'];
}

export interface GradcheckResult {
  /** Worst |analytic - numeric| / max(|numeric|, atolScale) over all checked elements. */
  maxError: number;
  worst: string;
  perInput: Record<string, number>;
}

/** Seeded normal numbers for test data (Box-Muller on a small LCG: tests only). */
export function randn(n: number, seed = 1): Float64Array {
  let s = seed >>> 0 || 1;
  const u = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/**
 * Builds `fn` over float64 inputs, reduces its output to a scalar with fixed random
 * weights (so every output element matters), and compares autodiff gradients with
 * central differences. `eps` is the finite-difference step.
 */
export async function gradcheck(
  fn: (g: Graph, ...inputs: Tensor[]) => Tensor,
  inputs: CheckInput[],
  opts: { eps?: number; atolScale?: number; seed?: number } = {},
): Promise<GradcheckResult> {
  const eps = opts.eps ?? 1e-6;
  const atolScale = opts.atolScale ?? 1e-3;
  const g = new Graph({ name: 'gradcheck', floatType: 'float64' });
  const ts = inputs.map((i) => g.input(i.name, i.dtype ?? 'float64', i.shape));
  const out = fn(g, ...ts);
  if (out.dtype !== 'float64') throw new Error(`gradcheck: output must be float64, got ${out.dtype}`);
  // Random projection: loss = sum(out * r), r fed at run time with out's shape.
  const r = g.input('projection', 'float64', out.shape);
  const loss = out.mul(r).sum(Array.from({ length: out.rank }, (_, i) => i));
  const diff = inputs.map((i) => i.differentiate ?? (i.dtype ?? 'float64') === 'float64');
  const wrt = ts.filter((_, k) => diff[k]);
  const grads = gradients(loss, wrt);
  g.output('loss', loss);
  grads.forEach((gr, k) => {
    if (!gr) throw new Error(`gradcheck: no gradient path to input '${wrt[k].name}'`);
    g.output(`grad_${wrt[k].name}`, gr);
  });
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const feeds: Record<string, HostTensor> = {};
  inputs.forEach((inp, k) => {
    const n = inp.shape.reduce((a, b) => a * b, 1);
    if (inp.raw) feeds[inp.name] = { dtype: inp.dtype ?? 'float64', shape: inp.shape, data: inp.raw };
    else
      feeds[inp.name] = {
        dtype: 'float64',
        shape: inp.shape,
        data: inp.data ?? randn(n, (opts.seed ?? 7) + k * 101),
      };
  });
  // The projection's shape is the output's run-time shape: run once to learn it.
  const probe = new Graph({ name: 'probe', floatType: 'float64' });
  const pts = inputs.map((i) => probe.input(i.name, i.dtype ?? 'float64', i.shape));
  probe.output('y', fn(probe, ...pts));
  const pcg = await CompiledGraph.create(probe, { threads: 1 });
  const yShape = (await pcg.run(feeds)).y.shape;
  await pcg.release();
  const nY = yShape.reduce((a, b) => a * b, 1);
  feeds.projection = { dtype: 'float64', shape: yShape, data: randn(nY, 99) };

  const analytic = await cg.run(feeds);
  const lossAt = async (): Promise<number> => (await cg.run(feeds, ['loss'])).loss.data[0] as number;
  const result: GradcheckResult = { maxError: 0, worst: '', perInput: {} };
  for (let k = 0; k < inputs.length; k++) {
    if (!diff[k]) continue;
    const inp = inputs[k];
    const x = feeds[inp.name].data as Float64Array;
    const ga = analytic[`grad_${inp.name}`].data as Float64Array;
    if (ga.length !== x.length)
      throw new Error(
        `gradcheck: gradient of '${inp.name}' has ${ga.length} values, input ${fmtShape(inp.shape)}`,
      );
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      const orig = x[i];
      x[i] = orig + eps;
      const lp = await lossAt();
      x[i] = orig - eps;
      const lm = await lossAt();
      x[i] = orig;
      const num = (lp - lm) / (2 * eps);
      const err = Math.abs(ga[i] - num) / Math.max(Math.abs(num), atolScale);
      if (err > worst) worst = err;
      if (err > result.maxError) {
        result.maxError = err;
        result.worst = `${inp.name}[${i}]: analytic ${ga[i]}, numeric ${num}`;
      }
    }
    result.perInput[inp.name] = worst;
  }
  await cg.release();
  return result;
}
