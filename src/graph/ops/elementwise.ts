/** Elementwise ops (numpy broadcasting) and their gradient rules. */
import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import { defineGradient, defineNonDifferentiable } from '../gradients.js';
import type { Tensor } from '../graph.js';
import { broadcastShapes } from '../shape.js';
import { asTensor, broadcastOrThrow, node1, requireFloat, sameDtype, unbroadcast } from './util.js';

function binary(op: string, a: Tensor, bIn: Tensor | number, outDtype?: DType): Tensor {
  const b = asTensor(a, bIn);
  sameDtype(op, a, b);
  const shape = broadcastOrThrow(op, a, b);
  return node1(a.graph, op, [a, b], outDtype ?? a.dtype, shape);
}

function unary(op: string, x: Tensor, needFloat = true): Tensor {
  if (needFloat) requireFloat(op, x);
  return node1(x.graph, op, [x], x.dtype, x.shape);
}

export const add = (a: Tensor, b: Tensor | number): Tensor => binary('Add', a, b);
export const sub = (a: Tensor, b: Tensor | number): Tensor => binary('Sub', a, b);
export const mul = (a: Tensor, b: Tensor | number): Tensor => binary('Mul', a, b);
export const div = (a: Tensor, b: Tensor | number): Tensor => binary('Div', a, b);
/** a ** b; the gradient w.r.t. b is built only when b needs one. */
export const pow = (a: Tensor, b: Tensor | number): Tensor => binary('Pow', a, b);
export const neg = (x: Tensor): Tensor => unary('Neg', x, false);
export const exp = (x: Tensor): Tensor => unary('Exp', x);
export const log = (x: Tensor): Tensor => unary('Log', x);
export const sqrt = (x: Tensor): Tensor => unary('Sqrt', x);
export const reciprocal = (x: Tensor): Tensor => unary('Reciprocal', x);
export const tanh = (x: Tensor): Tensor => unary('Tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('Sigmoid', x);
export const relu = (x: Tensor): Tensor => unary('Relu', x);
export function erf(x: Tensor): Tensor {
  return x.dtype === 'float64' ? erf64(x) : unary('Erf', x);
}

/**
 * ORT's CPU provider has no float64 Erf. Float64 graphs (gradient checks) get erf from
 * its Taylor series for |x| < 2 and the erfc continued fraction beyond: ~1e-14 absolute,
 * checked against quadrature in the tests. Its gradient comes from autodiff of this form.
 */
function erf64(x: Tensor): Tensor {
  const g = x.graph;
  const ax = abs(x);
  const small = minimum(ax, 2);
  const x2 = mul(small, small);
  let term = small;
  let sum = small;
  for (let n = 1; n <= 40; n++) {
    term = mul(term, mul(x2, -1 / n));
    sum = add(sum, mul(term, 1 / (2 * n + 1)));
  }
  const series = mul(sum, 2 / Math.sqrt(Math.PI));
  const big = maximum(ax, 2);
  let t = big;
  for (let k = 70; k >= 1; k--) t = add(big, div(g.scalar(k / 2, 'float64'), t));
  const erfc = div(exp(neg(mul(big, big))), mul(t, Math.sqrt(Math.PI)));
  const erfAbs = where(less(ax, 2), series, sub(g.scalar(1, 'float64'), erfc));
  return mul(sign(x), erfAbs);
}
export const abs = (x: Tensor): Tensor => unary('Abs', x, false);
export const sign = (x: Tensor): Tensor => unary('Sign', x, false);
export const identity = (x: Tensor): Tensor => node1(x.graph, 'Identity', [x], x.dtype, x.shape);

export const equal = (a: Tensor, b: Tensor | number): Tensor => binary('Equal', a, b, 'bool');
export const less = (a: Tensor, b: Tensor | number): Tensor => binary('Less', a, b, 'bool');
export const greater = (a: Tensor, b: Tensor | number): Tensor => binary('Greater', a, b, 'bool');
export const not = (x: Tensor): Tensor => node1(x.graph, 'Not', [x], 'bool', x.shape);
export const and = (a: Tensor, b: Tensor): Tensor => binary('And', a, b, 'bool');

/** Elementwise cond ? a : b. */
export function where(cond: Tensor, aIn: Tensor | number, bIn: Tensor | number): Tensor {
  const ref = typeof aIn !== 'number' ? aIn : typeof bIn !== 'number' ? bIn : null;
  if (!ref) throw cond.graph.error('Where', 'needs at least one tensor branch', [cond]);
  const a = asTensor(ref, aIn);
  const b = asTensor(ref, bIn);
  if (cond.dtype !== 'bool')
    throw cond.graph.error('Where', `condition must be bool, got ${cond.dtype}`, [cond]);
  sameDtype('Where', a, b);
  const ab = broadcastOrThrow('Where', a, b);
  const s = broadcastShapes(cond.shape, ab);
  if (typeof s === 'string') throw cond.graph.error('Where', s, [cond, a, b]);
  return node1(cond.graph, 'Where', [cond, a, b], a.dtype, s);
}

export const maximum = (a: Tensor, b: Tensor | number): Tensor => where(greater(a, b), a, b);
export const minimum = (a: Tensor, b: Tensor | number): Tensor => where(less(a, b), a, b);

export function cast(x: Tensor, dtype: DType): Tensor {
  const to = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float64: 11 }[dtype];
  return node1(x.graph, 'Cast', [x], dtype, x.shape, { to });
}

/** Renames symbolic dims; the run-time tensor is the same (an Identity ORT removes). */
export function withShape(x: Tensor, shape: readonly (number | string)[]): Tensor {
  if (shape.length !== x.rank)
    throw x.graph.error('withShape', `rank ${shape.length} given for a rank-${x.rank} tensor`, [x]);
  shape.forEach((d, i) => {
    const o = x.shape[i];
    if (typeof d === 'number' && typeof o === 'number' && d !== o)
      throw x.graph.error('withShape', `dim ${i} is ${o}, cannot call it ${d}`, [x]);
  });
  return node1(x.graph, 'Identity', [x], x.dtype, shape);
}

defineNonDifferentiable('Equal', 'Less', 'Greater', 'Not', 'And', 'Sign', 'Shape', 'Size');

// ---- gradient rules ----

// An Identity from withShape renamed dims: the gradient takes the input's names back (dims
// where dy is still broadcast, size 1, stay as they are), or later ops would see two names
// for one size.
defineGradient('Identity', ({ x, y, dy }) => {
  const d = dy[0]!;
  const xs = x[0]!.shape;
  const renamed = d.shape.map((dim, i) => (dim === y[0]!.shape[i] ? xs[i]! : dim));
  return [renamed.every((dim, i) => dim === d.shape[i]) ? d : withShape(d, renamed)];
});
defineGradient('Add', ({ x, dy, needs }) => [
  needs(0) ? unbroadcast(dy[0]!, x[0]!.shape) : null,
  needs(1) ? unbroadcast(dy[0]!, x[1]!.shape) : null,
]);
defineGradient('Sub', ({ x, dy, needs }) => [
  needs(0) ? unbroadcast(dy[0]!, x[0]!.shape) : null,
  needs(1) ? unbroadcast(neg(dy[0]!), x[1]!.shape) : null,
]);
defineGradient('Mul', ({ x, dy, needs }) => [
  needs(0) ? unbroadcast(mul(dy[0]!, x[1]!), x[0]!.shape) : null,
  needs(1) ? unbroadcast(mul(dy[0]!, x[0]!), x[1]!.shape) : null,
]);
defineGradient('Div', ({ x, y, dy, needs }) => [
  needs(0) ? unbroadcast(div(dy[0]!, x[1]!), x[0]!.shape) : null,
  // d(a/b)/db = -a/b^2 = -y/b
  needs(1) ? unbroadcast(neg(div(mul(dy[0]!, y[0]), x[1]!)), x[1]!.shape) : null,
]);
defineGradient('Pow', ({ x, y, dy, needs }) => {
  const [a, b] = [x[0]!, x[1]!];
  return [
    // d(a^b)/da = b a^(b-1)
    needs(0) ? unbroadcast(mul(dy[0]!, mul(b, pow(a, sub(b, 1)))), a.shape) : null,
    // d(a^b)/db = a^b ln a
    needs(1) ? unbroadcast(mul(dy[0]!, mul(y[0], log(a))), b.shape) : null,
  ];
});
defineGradient('Neg', ({ dy }) => [neg(dy[0]!)]);
defineGradient('Exp', ({ y, dy }) => [mul(dy[0]!, y[0])]);
defineGradient('Log', ({ x, dy }) => [div(dy[0]!, x[0]!)]);
defineGradient('Sqrt', ({ y, dy }) => [div(mul(dy[0]!, 0.5), y[0])]);
defineGradient('Reciprocal', ({ y, dy }) => [neg(mul(dy[0]!, mul(y[0], y[0])))]);
defineGradient('Tanh', ({ y, dy }) => [mul(dy[0]!, sub(y[0].graph.scalar(1, y[0].dtype), mul(y[0], y[0])))]);
defineGradient('Sigmoid', ({ y, dy }) => [
  mul(dy[0]!, mul(y[0], sub(y[0].graph.scalar(1, y[0].dtype), y[0]))),
]);
defineGradient('Relu', ({ x, dy }) => [where(greater(x[0]!, 0), dy[0]!, 0)]);
defineGradient('Erf', ({ x, dy }) => [mul(dy[0]!, mul(exp(neg(mul(x[0]!, x[0]!))), 2 / Math.sqrt(Math.PI)))]);
defineGradient('Abs', ({ x, dy }) => [mul(dy[0]!, sign(x[0]!))]);
defineGradient('Where', ({ x, dy, needs }) => [
  null,
  needs(1) ? unbroadcast(where(x[0]!, dy[0]!, 0), x[1]!.shape) : null,
  needs(2) ? unbroadcast(where(x[0]!, 0, dy[0]!), x[2]!.shape) : null,
]);
defineGradient('Cast', ({ x, dy }) => [isFloat(x[0]!.dtype) && dy[0] ? cast(dy[0], x[0]!.dtype) : null]);
