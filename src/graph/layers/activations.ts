/**
 * Activation functions. Most are compositions of elementwise ops (their gradients
 * follow from the ops' rules); exact GELU is one fused node with its own rule.
 */
import { defineGradient } from '../gradients.js';
import type { Tensor } from '../graph.js';
import { add, div, erf, exp, mul, sigmoid, sub, tanh } from '../ops/elementwise.js';
import { split } from '../ops/shape.js';
import { axesOf, requireFloat } from '../ops/util.js';

/**
 * Exact GELU, x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))) (torch's default,
 * approximate='none').
 *
 * Standard form: the Erf composition, written as ORT's GeluFusion pattern (Div sqrt 2,
 * Erf, Add 1, Mul x, Mul 0.5), so an inference graph runs it as one fused kernel. In a
 * training graph the composition's intermediates feed its backward, ORT cannot fuse
 * it, and the forward costs five full passes. `fused` (default: whether
 * the graph allows ORT contrib ops: `Graph({ ortContribOps })`) records one com.microsoft `Gelu` node
 * instead (ORT's kernel on CPU, CUDA and WebGPU; the semantics of ONNX opset 20's Gelu)
 * with the gradient rule below. Measured on the wav2vec2 first layer (conv +
 * GroupNorm + GELU, batch 4 x 48000 samples, forward + backward, 2 threads,
 * interleaved runs): 146-163 ms median fused against 192-202 ms standard. Float32 only
 * (the contrib kernel has no float64): float64 always uses the composition.
 */
export function gelu(x: Tensor, opts: { fused?: boolean } = {}): Tensor {
  requireFloat('gelu', x);
  if (x.dtype === 'float32' && (opts.fused ?? x.graph.ortContribOps))
    return x.graph.node('Gelu', [x], [{ dtype: x.dtype, shape: x.shape }], {}, 'com.microsoft')[0];
  return mul(mul(x, add(erf(div(x, Math.SQRT2)), 1)), 0.5);
}

/*
 * d gelu / dx = Phi(x) + x phi(x) = 0.5 * (1 + erf(s) + sqrt(2/pi) x exp(-s^2)),
 * s = x / sqrt(2). The constant sqrt(2/pi) rides inside the Exp (exp(ln k - s^2)):
 * 10 elementwise nodes, no division (a variadic Sum of the three terms measured
 * slower than two Adds).
 */
defineGradient('Gelu', ({ x, dy }) => {
  const xin = x[0]!;
  const g = xin.graph;
  const s = mul(xin, Math.SQRT1_2);
  const k = exp(sub(g.scalar(0.5 * Math.log(2 / Math.PI), xin.dtype), mul(s, s)));
  const twice = add(add(erf(s), mul(xin, k)), 1);
  return [mul(twice, mul(dy[0]!, 0.5))];
});

/** Tanh-approximate GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh', 'gelu_new'). */
export function geluTanh(x: Tensor): Tensor {
  const inner = mul(add(x, mul(mul(x, mul(x, x)), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, add(tanh(inner), 1)), 0.5);
}

/**
 * SiLU / swish: x * sigmoid(x). (ORT fuses this into QuickGelu, which has no float64
 * kernel; runtime.ts turns that fusion off for float64 graphs.)
 */
export function silu(x: Tensor): Tensor {
  return mul(x, sigmoid(x));
}
export const swish = silu;

/** GLU: split `axis` into halves a, b and return a * sigmoid(b) (torch.nn.functional.glu; default axis -1). */
export function glu(x: Tensor, axis = -1): Tensor {
  const a = axesOf('glu', x, axis)[0];
  const d = x.shape[a];
  if (typeof d !== 'number' || d % 2 !== 0)
    throw x.graph.error('glu', `axis ${axis} must have a static even size, got ${d}`, [x]);
  const [first, second] = split(x, [d / 2, d / 2], a);
  return mul(first, sigmoid(second));
}
