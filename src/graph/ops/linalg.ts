/** Matrix products. */
import { defineGradient } from '../gradients.js';
import type { Tensor } from '../graph.js';
import { broadcastShapes, fmtShape, isNamedDim } from '../shape.js';
import { node1, requireFloat, sameDtype, unbroadcast } from './util.js';
import { reshape, transposeLast2 } from './shape.js';

/** Batched matrix product with numpy broadcasting of the batch dims (both operands rank >= 2). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const g = a.graph;
  requireFloat('MatMul', a, b);
  sameDtype('MatMul', a, b);
  if (a.rank < 2 || b.rank < 2)
    throw g.error('MatMul', 'operands need rank >= 2 (reshape vectors first)', [a, b]);
  const k1 = a.shape[a.rank - 1];
  const k2 = b.shape[b.rank - 2];
  // Unequal dims conflict only when both are known numbers or both are named input dims;
  // a derived dim (e.g. the rows of a reshape to [-1, k]) may equal anything at run time.
  if (k1 !== k2 && ((typeof k1 === 'number' && typeof k2 === 'number') || (isNamedDim(k1) && isNamedDim(k2))))
    throw g.error('MatMul', `inner dims differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`, [a, b]);
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (typeof batch === 'string') throw g.error('MatMul', `batch dims: ${batch}`, [a, b]);
  return node1(g, 'MatMul', [a, b], a.dtype, [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]]);
}

defineGradient('MatMul', ({ x, dy, needs }) => {
  const [a, b] = [x[0]!, x[1]!];
  const d = dy[0]!;
  let da: Tensor | null = null;
  let db: Tensor | null = null;
  if (needs(0)) da = unbroadcast(matmul(d, transposeLast2(b)), a.shape);
  if (needs(1)) {
    if (b.rank === 2 && a.rank > 2) {
      // A weight matrix shared over the batch: fold batch into rows, one GEMM, no reduction.
      const k = a.shape[a.rank - 1];
      const n = b.shape[1];
      db = matmul(transposeLast2(reshape(a, [-1, k])), reshape(d, [-1, n]));
    } else {
      db = unbroadcast(matmul(transposeLast2(a), d), b.shape);
    }
  }
  return [da, db];
});
