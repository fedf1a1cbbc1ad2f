/** Helpers shared by the op files: operand coercion, shape checks, broadcast reduction. */
import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import { Graph, Tensor } from '../graph.js';
import { type Dim, type Shape, broadcastShapes, normAxis } from '../shape.js';

/** Turns a JS number into a scalar constant of `ref`'s dtype. */
export function asTensor(ref: Tensor, v: Tensor | number): Tensor {
  return typeof v === 'number' ? ref.graph.scalar(v, ref.dtype) : v;
}

export function sameDtype(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw a.graph.error(op, `dtype mismatch: ${a.dtype} vs ${b.dtype}`, [a, b]);
}

export function requireFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts)
    if (!isFloat(t.dtype)) throw t.graph.error(op, `needs a float tensor, got ${t.dtype}`, ts);
}

export function broadcastOrThrow(op: string, a: Tensor, b: Tensor): Shape {
  const s = broadcastShapes(a.shape, b.shape);
  if (typeof s === 'string') throw a.graph.error(op, s, [a, b]);
  return s;
}

export function axesOf(op: string, x: Tensor, axes: number | readonly number[]): number[] {
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return list.map((a) => {
    const n = normAxis(a, x.rank);
    if (n === null) throw x.graph.error(op, `axis ${a} out of range for rank ${x.rank}`, [x]);
    return n;
  });
}

/** One-output node helper. */
export function node1(
  g: Graph,
  op: string,
  inputs: (Tensor | null)[],
  dtype: DType,
  shape: Shape,
  attrs: Record<string, import('../graph.js').AttrValue> = {},
): Tensor {
  return g.node(op, inputs, [{ dtype, shape }], attrs)[0];
}

/** The run-time shape of x as an int64 vector (for ops whose target shape has symbolic dims). */
export function shapeOf(x: Tensor): Tensor {
  return node1(x.graph, 'Shape', [x], 'int64', [x.rank]);
}

/**
 * Sums a broadcast gradient back to the shape of the operand it came from: over the
 * leading axes the operand lacks, and over axes where the operand has size 1.
 */
export function unbroadcast(dy: Tensor, target: Shape): Tensor {
  const g = dy.graph;
  const lead = dy.rank - target.length;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) {
    if (i < lead) axes.push(i);
    else if (target[i - lead] === 1 && dy.shape[i] !== 1) axes.push(i);
  }
  if (axes.length === 0) return dy;
  const summed = node1(g, 'ReduceSum', [dy, g.int64s(axes)], dy.dtype, keepShape(dy.shape, axes), {
    keepdims: 1,
  });
  if (lead === 0) return summed;
  // keepdims left the leading axes as size 1: squeeze them away.
  const leadAxes = Array.from({ length: lead }, (_, i) => i);
  return node1(g, 'Squeeze', [summed, g.int64s(leadAxes)], dy.dtype, target);
}

export function keepShape(s: Shape, axes: readonly number[]): Dim[] {
  return s.map((d, i) => (axes.includes(i) ? 1 : d));
}

export function dropShape(s: Shape, axes: readonly number[]): Dim[] {
  return s.filter((_, i) => !axes.includes(i));
}

export { Graph, Tensor };
