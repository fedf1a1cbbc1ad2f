/**
 * Activation functions as compositions of elementwise ops (their gradients follow from
 * the ops' rules). Written in the forms ONNX Runtime's graph optimiser recognises where
 * it has a fused kernel (exact gelu becomes com.microsoft Gelu in inference graphs).
 */
import type { Tensor } from '../graph.js';
import { add, div, erf, mul, sigmoid, tanh } from '../ops/elementwise.js';
import { split } from '../ops/shape.js';
import { axesOf } from '../ops/util.js';

/** Exact GELU, x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))) (torch's default, approximate='none'). */
export function gelu(x: Tensor): Tensor {
  // Div by sqrt(2) -> Erf -> Add 1 -> Mul x -> Mul 0.5: ORT's GeluFusion pattern.
  return mul(mul(x, add(erf(div(x, Math.SQRT2)), 1)), 0.5);
}

/** Tanh-approximate GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh', 'gelu_new'). */
export function geluTanh(x: Tensor): Tensor {
  const inner = mul(add(x, mul(mul(x, mul(x, x)), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, add(tanh(inner), 1)), 0.5);
}

/**
 * SiLU / swish: x * sigmoid(x). In float64 it is written x * (0.5 + 0.5 tanh(x / 2))
 * (the same function): ONNX Runtime 1.30's QuickGeluFusion rewrites x * sigmoid(x)
 * into com.microsoft QuickGelu even for double, which has only a float kernel, so the
 * float64 session would not load (gradient checks). The session option
 * `optimization.disable_specified_optimizers = QuickGeluFusion` also avoids it.
 */
export function silu(x: Tensor): Tensor {
  if (x.dtype === 'float64') return mul(x, add(mul(tanh(mul(x, 0.5)), 0.5), 0.5));
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
