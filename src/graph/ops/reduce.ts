/** Reductions and softmax, with their gradient rules. */
import { defineGradient } from '../gradients.js';
import type { Tensor } from '../graph.js';
import { dropShape, keepShape } from './util.js';
import { axesOf, node1, requireFloat } from './util.js';
import { cast, div, equal, exp, mul, sub } from './elementwise.js';

export function reduceSum(x: Tensor, axes: number | readonly number[], keepDims = false): Tensor {
  const ax = axesOf('ReduceSum', x, axes);
  const shape = keepDims ? keepShape(x.shape, ax) : dropShape(x.shape, ax);
  return node1(x.graph, 'ReduceSum', [x, x.graph.int64s(ax)], x.dtype, shape, { keepdims: keepDims ? 1 : 0 });
}

export function reduceMean(x: Tensor, axes: number | readonly number[], keepDims = false): Tensor {
  requireFloat('ReduceMean', x);
  const ax = axesOf('ReduceMean', x, axes);
  const shape = keepDims ? keepShape(x.shape, ax) : dropShape(x.shape, ax);
  return node1(x.graph, 'ReduceMean', [x], x.dtype, shape, { axes: ax, keepdims: keepDims ? 1 : 0 });
}

export function reduceMax(x: Tensor, axes: number | readonly number[], keepDims = false): Tensor {
  const ax = axesOf('ReduceMax', x, axes);
  const shape = keepDims ? keepShape(x.shape, ax) : dropShape(x.shape, ax);
  return node1(x.graph, 'ReduceMax', [x], x.dtype, shape, { axes: ax, keepdims: keepDims ? 1 : 0 });
}

export function softmax(x: Tensor, axis = -1): Tensor {
  requireFloat('Softmax', x);
  const a = axesOf('Softmax', x, axis)[0];
  return node1(x.graph, 'Softmax', [x], x.dtype, x.shape, { axis: a });
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  requireFloat('LogSoftmax', x);
  const a = axesOf('LogSoftmax', x, axis)[0];
  return node1(x.graph, 'LogSoftmax', [x], x.dtype, x.shape, { axis: a });
}

/** Re-inserts reduced axes (size 1) into a gradient that was reduced without keepdims. */
function keepAxes(dy: Tensor, xRank: number, axes: number[], keepdims: boolean): Tensor {
  if (keepdims) return dy;
  const g = dy.graph;
  const shape = [];
  let k = 0;
  for (let i = 0; i < xRank; i++) shape.push(axes.includes(i) ? 1 : dy.shape[k++]);
  return node1(g, 'Unsqueeze', [dy, g.int64s(axes)], dy.dtype, shape);
}

function reducedAxes(
  node: { attrs: Record<string, unknown>; inputs: (Tensor | null)[] },
  x: Tensor,
): number[] {
  const a = node.attrs.axes as number[] | undefined;
  if (a) return a;
  const t = node.inputs[1];
  if (t && t.kind === 'const')
    return Array.from(x.graph.initializers.get(t.name)!.data as BigInt64Array, Number);
  return Array.from({ length: x.rank }, (_, i) => i);
}

/** dy with the reduced axes kept (size 1): autodiff expands it only where needed (see isLazy). */
function broadcastBack(dy: Tensor, x: Tensor, axes: number[], keepdims: boolean): Tensor {
  return keepAxes(dy, x.rank, axes, keepdims);
}

defineGradient('ReduceSum', ({ node, x, dy }) => {
  const axes = reducedAxes(node, x[0]!);
  return [broadcastBack(dy[0]!, x[0]!, axes, node.attrs.keepdims !== 0), null];
});
defineGradient('ReduceMean', ({ node, x, y, dy }) => {
  const axes = reducedAxes(node, x[0]!);
  const g = x[0]!.graph;
  // Count of reduced elements at run time: size(x) / size(y), so symbolic dims work.
  const size = (t: Tensor) => cast(node1(g, 'Size', [t], 'int64', []), x[0]!.dtype);
  const n = div(size(x[0]!), size(y[0]));
  return [div(broadcastBack(dy[0]!, x[0]!, axes, node.attrs.keepdims !== 0), n)];
});
defineGradient('ReduceMax', ({ node, x, y, dy }) => {
  const axes = reducedAxes(node, x[0]!);
  const keep = node.attrs.keepdims !== 0;
  // Ties share the gradient equally (as torch.amax does).
  const hit = cast(equal(x[0]!, keepAxes(y[0], x[0]!.rank, axes, keep)), x[0]!.dtype);
  const count = reduceSum(hit, axes, true);
  return [mul(div(hit, count), keepAxes(dy[0]!, x[0]!.rank, axes, keep))];
});
defineGradient('Softmax', ({ node, y, dy }) => {
  // dx = y * (dy - sum(dy * y)): measured faster than the other arrangement on ORT.
  const axis = node.attrs.axis as number;
  return [mul(y[0], sub(dy[0]!, reduceSum(mul(dy[0]!, y[0]), axis, true)))];
});
defineGradient('LogSoftmax', ({ node, y, dy }) => {
  const axis = node.attrs.axis as number;
  return [sub(dy[0]!, mul(exp(y[0]), reduceSum(dy[0]!, axis, true)))];
});
