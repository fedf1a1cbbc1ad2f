/** Shape ops: reshape, transpose, concat, slice, gather, (un)squeeze, expand, pad, split. */
import { defineGradient } from '../gradients.js';
import type { Tensor } from '../graph.js';
import { type Dim, type Shape, derivedDim, fmtShape, normAxis, numel } from '../shape.js';
import { cast, sub, add, where, less } from './elementwise.js';
import { axesOf, node1, shapeOf, unbroadcast } from './util.js';

/**
 * Reshape to `shape`: numbers are sizes, 0 copies the input's dim at that position,
 * -1 is inferred, and a symbolic name must equal the input's dim at the same position
 * (it is sent to ONNX Runtime as 0).
 */
export function reshape(x: Tensor, shape: readonly Dim[]): Tensor {
  const g = x.graph;
  const out: Dim[] = [];
  const spec: number[] = [];
  let infer = -1;
  shape.forEach((d, i) => {
    if (typeof d === 'string') {
      if (x.shape[i] !== d)
        throw g.error('Reshape', `symbolic dim '${d}' at position ${i} must be the input's own dim there`, [
          x,
        ]);
      out.push(d);
      spec.push(0);
    } else if (d === 0) {
      if (i >= x.rank) throw g.error('Reshape', `0 at position ${i} copies a dim the input lacks`, [x]);
      out.push(x.shape[i]);
      spec.push(0);
    } else if (d === -1) {
      if (infer >= 0) throw g.error('Reshape', 'more than one -1 in the target shape', [x]);
      infer = i;
      out.push(-1);
      spec.push(-1);
    } else {
      out.push(d);
      spec.push(d);
    }
  });
  if (infer >= 0) {
    const total = numel(x.shape);
    const known = numel(out.filter((_, i) => i !== infer));
    if (total !== null && known !== null) {
      if (known === 0 || total % known !== 0)
        throw g.error('Reshape', `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`, [x]);
      out[infer] = total / known;
    } else {
      out[infer] = inferSymbolic(x.shape, out, infer);
    }
  } else {
    const a = numel(x.shape);
    const b = numel(out);
    if (a !== null && b !== null && a !== b)
      throw g.error(
        'Reshape',
        `cannot reshape ${fmtShape(x.shape)} (${a} values) to ${fmtShape(shape)} (${b})`,
        [x],
      );
  }
  return node1(g, 'Reshape', [x, g.int64s(spec)], x.dtype, out);
}

/** The -1 dim of a reshape with symbolic dims: the same symbol if the rest cancels, else a new one. */
function inferSymbolic(from: Shape, to: Dim[], at: number): Dim {
  const rest = from.filter((d) => !to.includes(d) || typeof d === 'number');
  const sym = rest.filter((d) => typeof d === 'string');
  if (sym.length === 1) {
    const nFrom = numel(rest.filter((d) => typeof d === 'number'));
    const nTo = numel(to.filter((d, i) => i !== at && typeof d === 'number'));
    if (nFrom !== null && nTo !== null && nFrom === nTo) return sym[0];
  }
  return derivedDim('reshaped');
}

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i))
    throw x.graph.error('Transpose', `perm [${perm}] is not a permutation of rank ${x.rank}`, [x]);
  return node1(
    x.graph,
    'Transpose',
    [x],
    x.dtype,
    perm.map((p) => x.shape[p]),
    { perm: [...perm] },
  );
}

/** Swaps the last two axes (the matrix transpose of a batch of matrices). */
export function transposeLast2(x: Tensor): Tensor {
  const perm = Array.from({ length: x.rank }, (_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return transpose(x, perm);
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('concat of no tensors');
  const g = xs[0].graph;
  const a = normAxis(axis, xs[0].rank);
  if (a === null) throw g.error('Concat', `axis ${axis} out of range`, [...xs]);
  let total: Dim = 0;
  for (const t of xs) {
    if (t.rank !== xs[0].rank || t.dtype !== xs[0].dtype)
      throw g.error('Concat', 'inputs differ in rank or dtype', [...xs]);
    t.shape.forEach((d, i) => {
      if (i !== a && d !== xs[0].shape[i] && typeof d === 'number' && typeof xs[0].shape[i] === 'number')
        throw g.error('Concat', `inputs differ in dim ${i} (not the concat axis ${a})`, [...xs]);
    });
    const d = t.shape[a];
    total = typeof total === 'number' && typeof d === 'number' ? total + d : derivedDim('concat');
  }
  const shape = xs[0].shape.map((d, i) => (i === a ? total : d));
  return node1(g, 'Concat', [...xs], xs[0].dtype, shape, { axis: a });
}

/** x[starts:ends] along axes (step 1 unless given). Ends beyond the dim are clamped, as in ONNX. */
export function slice(
  x: Tensor,
  starts: readonly number[],
  ends: readonly number[],
  axes?: readonly number[],
  steps?: readonly number[],
): Tensor {
  const g = x.graph;
  const ax = axesOf('Slice', x, axes ?? starts.map((_, i) => i));
  const st = steps ?? starts.map(() => 1);
  const shape = [...x.shape];
  ax.forEach((a, i) => {
    const d = x.shape[a];
    if (typeof d === 'number') {
      const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
      const s = clamp(starts[i] < 0 ? starts[i] + d : starts[i], 0, d);
      const e = clamp(ends[i] < 0 ? ends[i] + d : ends[i], 0, d);
      shape[a] = st[i] > 0 ? Math.max(0, Math.ceil((e - s) / st[i])) : derivedDim('slice');
    } else {
      // A symbolic dim: the whole of it keeps its name; any other window's size depends on
      // the run-time length (x[:10] is shorter than 10 when the input is), so it is derived.
      const whole = starts[i] === 0 && ends[i] >= 2 ** 31 - 1 && st[i] === 1;
      shape[a] = whole ? d : derivedDim('slice');
    }
  });
  return node1(g, 'Slice', [x, g.int64s(starts), g.int64s(ends), g.int64s(ax), g.int64s(st)], x.dtype, shape);
}

/** Rows of `x` along `axis` picked by integer `indices` (embedding lookup on axis 0). */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  const a = axesOf('Gather', x, axis)[0];
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32')
    throw x.graph.error('Gather', `indices must be int64 or int32, got ${indices.dtype}`, [x, indices]);
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  return node1(x.graph, 'Gather', [x, indices], x.dtype, shape, { axis: a });
}

export function unsqueeze(x: Tensor, axes: number | readonly number[]): Tensor {
  const list = (typeof axes === 'number' ? [axes] : [...axes]).map((a) => (a < 0 ? a + x.rank + 1 : a));
  const shape: Dim[] = [];
  let src = 0;
  for (let i = 0; i < x.rank + list.length; i++) shape.push(list.includes(i) ? 1 : x.shape[src++]);
  return node1(x.graph, 'Unsqueeze', [x, x.graph.int64s(list)], x.dtype, shape);
}

export function squeeze(x: Tensor, axes: number | readonly number[]): Tensor {
  const list = axesOf('Squeeze', x, axes);
  for (const a of list)
    if (x.shape[a] !== 1 && typeof x.shape[a] === 'number')
      throw x.graph.error('Squeeze', `dim ${a} is ${x.shape[a]}, not 1`, [x]);
  return node1(
    x.graph,
    'Squeeze',
    [x, x.graph.int64s(list)],
    x.dtype,
    x.shape.filter((_, i) => !list.includes(i)),
  );
}

/** Broadcasts x to `shape` (numbers, or symbolic dims taken from `like` at run time). */
export function expand(x: Tensor, like: Tensor): Tensor {
  const g = x.graph;
  return node1(g, 'Expand', [x, shapeOf(like)], x.dtype, like.shape);
}

/** Constant-mode padding: `pads` = [begin_0, ..., begin_n, end_0, ..., end_n], all >= 0. */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  const g = x.graph;
  if (pads.length !== 2 * x.rank || pads.some((p) => p < 0))
    throw g.error('Pad', `needs ${2 * x.rank} non-negative pads, got [${pads}]`, [x]);
  const shape = x.shape.map((d, i) =>
    pads[i] + pads[i + x.rank] === 0
      ? d
      : typeof d === 'number'
        ? d + pads[i] + pads[i + x.rank]
        : derivedDim('padded'),
  );
  return node1(g, 'Pad', [x, g.int64s(pads), g.scalar(value, x.dtype)], x.dtype, shape, { mode: 'constant' });
}

/** Splits along `axis` into pieces of the given static sizes. */
export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const g = x.graph;
  const a = axesOf('Split', x, axis)[0];
  const d = x.shape[a];
  const sum = sizes.reduce((p, c) => p + c, 0);
  if (typeof d === 'number' && d !== sum)
    throw g.error('Split', `sizes [${sizes}] sum to ${sum}, dim is ${d}`, [x]);
  return g.node(
    'Split',
    [x, g.int64s(sizes)],
    sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((dd, i) => (i === a ? s : dd)) })),
    { axis: a },
  );
}

// ---- gradient rules ----

defineGradient('Reshape', ({ x, dy }) => [reshapeLike(dy[0]!, x[0]!)]);
defineGradient('Unsqueeze', ({ x, dy }) => [reshapeLike(dy[0]!, x[0]!)]);
defineGradient('Squeeze', ({ x, dy }) => [reshapeLike(dy[0]!, x[0]!)]);
defineGradient('Transpose', ({ node, dy }) => {
  const perm = node.attrs.perm as number[];
  const inv = perm.map((_, i) => perm.indexOf(i));
  return [transpose(dy[0]!, inv)];
});
defineGradient('Expand', ({ x, dy }) => [unbroadcast(dy[0]!, x[0]!.shape)]);
defineGradient('Concat', ({ node, x, dy }) => {
  const axis = node.attrs.axis as number;
  const g = dy[0]!.graph;
  const xs = x as Tensor[];
  // Sizes along the axis at run time, so symbolic lengths work too.
  const sizes = concatInts(
    xs.map((t) => node1(g, 'Gather', [shapeOf(t), g.int64s([axis])], 'int64', [1], { axis: 0 })),
  );
  return g.node(
    'Split',
    [dy[0]!, sizes],
    xs.map((t) => ({ dtype: t.dtype, shape: t.shape })),
    { axis },
  );
});
defineGradient('Split', ({ node, x, y, dy }) => {
  const g = x[0]!.graph;
  const parts = y.map((t, i) => dy[i] ?? zerosLike(t));
  return [node1(g, 'Concat', parts, x[0]!.dtype, x[0]!.shape, { axis: node.attrs.axis as number })];
});
defineGradient('Slice', ({ x, dy }) => {
  const g = x[0]!.graph;
  const [src, starts, , axesT, stepsT] = x as Tensor[];
  const st = constInts(g, starts);
  const ax = constInts(g, axesT);
  const steps = constInts(g, stepsT);
  if (!st || !ax || !steps || steps.some((s) => s !== 1))
    throw g.error('Slice', 'gradient needs constant starts/axes and step 1', [src]);
  // Pad the gradient back: before = start (from the end if negative), after = the rest.
  const dimX = shapeOf(src);
  const dimY = shapeOf(dy[0]!);
  const before: Tensor[] = [];
  const after: Tensor[] = [];
  for (let a = 0; a < src.rank; a++) {
    const i = ax.indexOf(a);
    const dx = node1(g, 'Gather', [dimX, g.int64s([a])], 'int64', [1], { axis: 0 });
    const dyy = node1(g, 'Gather', [dimY, g.int64s([a])], 'int64', [1], { axis: 0 });
    let b: Tensor;
    if (i < 0) b = g.int64s([0]);
    else if (st[i] >= 0) b = minimumInt(g.int64s([st[i]]), dx);
    else {
      const fromEnd = add(dx, g.int64s([st[i]]));
      b = where(less(fromEnd, g.int64s([0])), g.int64s([0]), fromEnd);
    }
    before.push(b);
    after.push(sub(sub(dx, b), dyy));
  }
  return [
    node1(
      g,
      'Pad',
      [dy[0]!, concatInts([...before, ...after]), g.scalar(0, src.dtype)],
      src.dtype,
      src.shape,
      { mode: 'constant' },
    ),
  ];
});
defineGradient('Pad', ({ x, dy }) => {
  const g = x[0]!.graph;
  const pads = constInts(g, x[1]!);
  if (!pads) throw g.error('Pad', 'gradient needs constant pads', [x[0]!]);
  const r = x[0]!.rank;
  const starts = pads.slice(0, r);
  const ends = pads.slice(r).map((p) => (p > 0 ? -p : 2 ** 62));
  return [slice(dy[0]!, starts, ends).withShape(x[0]!.shape)];
});
defineGradient('Gather', ({ node, x, dy }) => {
  const g = x[0]!.graph;
  const axis = node.attrs.axis as number;
  const [table, idx] = [x[0]!, x[1]!];
  // Scatter-add the rows back into zeros. Move the gathered axis to the front first.
  const perm = [axis, ...Array.from({ length: table.rank }, (_, i) => i).filter((i) => i !== axis)];
  const tableT = axis === 0 ? table : transpose(table, perm);
  const nIdx = idx.rank;
  let g2 = dy[0]!;
  if (axis !== 0) {
    // dy has shape x[:axis] + idx + x[axis+1:]: bring idx dims to the front.
    const p: number[] = [];
    for (let i = 0; i < nIdx; i++) p.push(axis + i);
    for (let i = 0; i < axis; i++) p.push(i);
    for (let i = axis + nIdx; i < dy[0]!.rank; i++) p.push(i);
    g2 = transpose(g2, p);
  }
  const zeros = zerosLike(tableT);
  const idx64 = idx.dtype === 'int64' ? idx : cast(idx, 'int64');
  const scattered = g.node(
    'ScatterND',
    [zeros, node1(g, 'Unsqueeze', [idx64, g.int64s([nIdx])], 'int64', [...idx.shape, 1]), g2],
    [{ dtype: table.dtype, shape: tableT.shape }],
    { reduction: 'add' },
  )[0];
  return [
    axis === 0
      ? scattered
      : transpose(
          scattered,
          perm.map((_, i) => perm.indexOf(i)),
        ),
    null,
  ];
});

function reshapeLike(t: Tensor, like: Tensor): Tensor {
  return node1(t.graph, 'Reshape', [t, shapeOf(like)], t.dtype, like.shape);
}

export function zerosLike(t: Tensor): Tensor {
  const g = t.graph;
  return node1(g, 'Expand', [g.scalar(0, t.dtype), shapeOf(t)], t.dtype, t.shape);
}

function concatInts(parts: Tensor[]): Tensor {
  const g = parts[0].graph;
  return node1(g, 'Concat', parts, 'int64', [parts.length], { axis: 0 });
}

function minimumInt(a: Tensor, b: Tensor): Tensor {
  return where(less(a, b), a, b);
}

/** The values of an int64 constant (an initializer), or null when it is computed at run time. */
export function constInts(g: Tensor['graph'], t: Tensor | null | undefined): number[] | null {
  if (!t || t.kind !== 'const') return null;
  const c = g.initializers.get(t.name);
  return c ? Array.from(c.data as BigInt64Array, Number) : null;
}
