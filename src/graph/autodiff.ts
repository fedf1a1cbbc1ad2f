/**
 * Reverse-mode differentiation over a recorded graph. Only nodes on a path from the
 * requested tensors to the loss get backward nodes: frozen parameters and unused
 * branches cost nothing.
 */
import { type GradContext, gradientRule, isNonDifferentiable } from './gradients.js';
import { type NodeRecord, Tensor } from './graph.js';
import { isFloat } from './dtype.js';
import { shapesEqual, fmtShape } from './shape.js';
import { add } from './ops/elementwise.js';
import { expand } from './ops/shape.js';

/**
 * Gradients of the scalar `loss` with respect to each of `wrt`; null where `loss`
 * does not depend on it. `seed` replaces the implicit d(loss)/d(loss) = 1.
 */
export function gradients(loss: Tensor, wrt: readonly Tensor[], seed?: Tensor): (Tensor | null)[] {
  const g = loss.graph;
  if (!seed && loss.rank !== 0 && !loss.shape.every((d) => d === 1))
    throw g.error('gradients', `loss must be a scalar, got shape ${fmtShape(loss.shape)} (reduce it first)`, [
      loss,
    ]);
  const wanted = new Set(wrt);

  // Forward pass over the node list: which values depend on a requested tensor.
  const depends = new Set<Tensor>(wrt);
  for (const n of g.nodes) {
    if (isNonDifferentiable(n.op) || n.stopGradient) continue;
    if (n.inputs.some((t) => t && depends.has(t)))
      for (const o of n.outputs) if (isFloat(o.dtype)) depends.add(o);
  }
  if (!depends.has(loss)) return wrt.map(() => null);

  // Backward: contributions per value, summed lazily when a node consumes them.
  const contributions = new Map<Tensor, Tensor[]>();
  contributions.set(loss, [
    seed ?? (loss.rank === 0 ? g.scalar(1, loss.dtype) : expand(g.scalar(1, loss.dtype), loss)),
  ]);
  const total = (t: Tensor): Tensor | null => {
    const parts = contributions.get(t);
    if (!parts || parts.length === 0) return null;
    if (parts.length > 1) {
      // Sum pairwise so that the summed value has one producer.
      let s = parts[0];
      for (let i = 1; i < parts.length; i++) s = add(s, parts[i]);
      contributions.set(t, [s]);
      return s;
    }
    return parts[0];
  };

  const producerIndex = new Map<NodeRecord, number>();
  g.nodes.forEach((n, i) => producerIndex.set(n, i));
  const last = loss.producer ? producerIndex.get(loss.producer)! : -1;
  // Snapshot: rules append nodes to g.nodes while we walk backwards.
  const forward = g.nodes.slice(0, last + 1);
  for (let i = forward.length - 1; i >= 0; i--) {
    const n = forward[i];
    if (!n.outputs.some((o) => contributions.has(o))) continue;
    if (!n.inputs.some((t) => t && depends.has(t))) continue;
    if (isNonDifferentiable(n.op) || n.stopGradient) continue;
    const rule = gradientRule(n.op);
    if (!rule)
      throw g.error(
        n.op,
        `no gradient rule for op ${n.op} (node ${n.name}); it lies between a parameter and the loss`,
        n.inputs,
      );
    const passLazy = LAZY_OK.has(n.op) && n.inputs.every((t) => !t || sameShape(t, n.outputs[0]));
    const dy = n.outputs.map((o) => {
      const d = total(o);
      return d && !passLazy && isLazy(d, o) ? materialize(d, o) : d;
    });
    const ctx: GradContext = {
      g,
      node: n,
      x: n.inputs,
      y: n.outputs,
      dy,
      needs: (k) => {
        const t = n.inputs[k];
        return !!t && depends.has(t) && isFloat(t.dtype);
      },
    };
    const dx = g.scope(`grad/${n.scope || 'top'}`, () => rule(ctx));
    n.inputs.forEach((t, k) => {
      const d = dx[k];
      if (!t || !d || !ctx.needs(k)) return;
      if (!shapesEqual(d.shape, t.shape) && !sameRuntimeShape(d, t) && !isLazy(d, t))
        throw g.error(
          n.op,
          `gradient rule returned shape ${fmtShape(d.shape)} for input ${fmtShape(t.shape)}`,
          [t, d],
        );
      const list = contributions.get(t);
      if (list) list.push(d);
      else contributions.set(t, [d]);
    });
  }
  return wrt.map((t) => {
    const d = wanted.has(t) ? total(t) : null;
    return d && isLazy(d, t) ? materialize(d, t) : d;
  });
}

/**
 * Lazy broadcast gradients. The gradient of a sum or mean is its output gradient
 * broadcast back over the reduced axes; PyTorch keeps that as a stride-0 view. Here the
 * reduce rules return it unexpanded (size 1 on those axes), and it stays so while it
 * flows through elementwise ops whose inputs all have the output's shape (their rules
 * broadcast it for free inside the next Mul); any other op gets it expanded first.
 * Saves a full-size Expand (single-threaded in ORT) per reduction of a large tensor.
 */
const LAZY_OK = new Set([
  'Identity',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Neg',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Tanh',
  'Sigmoid',
  'Relu',
  'Erf',
  'Abs',
  'Where',
  'Cast',
  'Gelu',
]);

/** d has t's rank and size 1 on some axis where t does not: a broadcast stand-in for t's gradient. */
function isLazy(d: Tensor, t: Tensor): boolean {
  if (d.rank !== t.rank) return false;
  let lazy = false;
  for (let i = 0; i < d.rank; i++) {
    const a = d.shape[i];
    const b = t.shape[i];
    if (a === b) continue;
    if (a !== 1) return false;
    lazy = true;
  }
  return lazy;
}

function sameShape(a: Tensor, b: Tensor): boolean {
  return shapesEqual(a.shape, b.shape) || sameRuntimeShape(a, b);
}

function materialize(d: Tensor, like: Tensor): Tensor {
  return expand(d, like);
}

/** Static shapes may differ only where a symbolic dim stands against a derived or numeric one. */
function sameRuntimeShape(a: Tensor, b: Tensor): boolean {
  if (a.rank !== b.rank) return false;
  return a.shape.every((d, i) => d === b.shape[i] || typeof d === 'string' || typeof b.shape[i] === 'string');
}

export { Tensor };
