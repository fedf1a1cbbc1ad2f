/**
 * Training: one graph (forward + backward + optimiser update) built once from a model's
 * build function and run as one ONNX Runtime session per step. Gradient accumulation
 * over micro-batches happens inside that graph (fwd1 bwd1 fwd2 bwd2 ... then one
 * update), so gradients never cross the JS boundary.
 *
 * Weights and optimiser state live behind `StateBackend` (host arrays today); a
 * device-resident store replaces that class, not the models. With `stepsPerRun: K` the
 * same step runs K times inside one ONNX Loop (loop.ts), over the same backend. With
 * `optimizerPlacement: 'host'` the graph ends at the gradients and host-optim.ts updates
 * the host arrays in place (the memory of fine-tuning large encoders).
 */
import { gradients } from './autodiff.js';
import type { DType } from './dtype.js';
import { Graph, GraphError, type NodeRecord, type ParamSpec, type Tensor } from './graph.js';
import {
  addOptimizer,
  resolveOptimizerConfig,
  GRAD_NORM_OUTPUT,
  LR_OUTPUT,
  nextName,
  type OptimizerBuild,
  type OptimizerConfig,
  type OptimizerPlacement,
  resolvePlacement,
  STEP_INPUT,
  type StateWrite,
} from './optim.js';
import { ParameterStore, TensorStore, initTensor } from './params.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from './runtime.js';
import { type Dim, fmtShape } from './shape.js';
import * as ops from './ops/index.js';
import { Rng } from '../util/random.js';
import { type LoadedCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { buildLoopTrainingGraph, checkStepCount, checkStepsPerRun, stackBatches } from './loop.js';
import { HostOptimizer } from './host-optim.js';

export interface InputDecl {
  dtype: DType;
  /** Batch-major: axis 0 is the batch (split into micro-batches when training). */
  shape: readonly Dim[];
}

/** What a build function learns about the graph it is building. */
export interface BuildContext {
  training: boolean;
  /** Index of the micro-batch being built (0 in inference). */
  chunk: number;
  chunks: number;
  /** The `step` input (updates done before this one) in training graphs: a seed source for random ops. */
  step: Tensor | null;
}

/**
 * A weighted mean written as its two sums over the rows (or cells) of one micro-batch:
 * the batch's value is sum over chunks of `sum` / sum over chunks of `count`. A loss
 * with class weights or ignored labels (sum(w * loss) / sum(w)), or a mean over valid
 * cells only, is not the mean of its per-chunk means; given as a term, the Trainer
 * combines the chunks into the full batch's value, loss and gradients alike.
 * `count` is treated as a constant (it must depend on labels and masks only, not on
 * parameters); a batch whose counts sum to 0 gives 0 for the term, as the losses do.
 */
export interface LossTerm {
  sum: Tensor;
  count: Tensor;
  /** Factor of the term in the total loss (default 1). */
  weight?: number;
}

/** A metric: a per-chunk value (chunks averaged with equal weight) or a ratio combined over the batch. */
export type MetricValue = Tensor | { sum: Tensor; count: Tensor };

/**
 * What a build function returns. The step's loss is `loss` (a per-chunk scalar; with
 * micro-batches the chunks' values are averaged with equal weight, which is the full
 * batch's value for plain means over equal chunks) plus the sum of `terms` (each
 * `weight * batch sum / batch count`, exact over micro-batches). Each term's own value
 * comes back as metric `<name>`. At least one of `loss` and `terms` is needed.
 */
export interface TrainBuildResult {
  loss?: Tensor;
  terms?: Record<string, LossTerm>;
  metrics?: Record<string, MetricValue>;
}

export type TrainBuild = (g: Graph, inputs: Record<string, Tensor>, ctx: BuildContext) => TrainBuildResult;

export interface TrainingGraphOptions {
  inputs: Record<string, InputDecl>;
  build: TrainBuild;
  optimizer: OptimizerConfig;
  /** Gradient accumulation: each batch is split along axis 0 into this many equal chunks (default 1). */
  microBatches?: number;
  /** Which parameters train (in addition to their own `trainable` flag). */
  trainable?: (name: string) => boolean;
  floatType?: 'float32' | 'float64';
  /** Use ONNX Runtime's fused contrib ops (default true: these graphs only run on ORT). */
  ortContribOps?: boolean;
  /** Seed of the graph's random ops. */
  seed?: number;
  name?: string;
  /**
   * Where the optimiser update runs (optim.ts, OptimizerPlacement): 'graph' (default: Adam
   * nodes, new state as outputs), 'host' (the graph outputs gradients, the host updates
   * the arrays in place: about half the memory for large models), or 'auto' (host from
   * HOST_PLACEMENT_MIN_PARAMS trained parameters on). The K-steps Loop needs 'graph'.
   */
  optimizerPlacement?: OptimizerPlacement;
}

export interface TrainingGraph {
  graph: Graph;
  optimizer: OptimizerBuild;
  /** Parameters the optimiser updates. */
  trained: ParamSpec[];
  /** Parameters in the graph that do not train (frozen by flag or predicate). */
  frozen: string[];
  /** Trainable parameters the loss does not depend on (left unchanged, no state). */
  unused: string[];
  metricNames: string[];
  microBatches: number;
  /** Buffers a training step updates (BatchNorm's running statistics): output -> parameter. */
  bufferWrites: StateWrite[];
}

export const LOSS_OUTPUT = 'loss';
export const metricOutput = (name: string): string => `metric.${name}`;

function scalarOf(what: string, t: Tensor): Tensor {
  if (t.rank === 0) return t;
  if (t.shape.every((d) => d === 1)) return ops.reshape(t, []);
  throw t.graph.error('Trainer', `${what} must be a scalar, got shape ${fmtShape(t.shape)}`, [t]);
}

/** Averages scalars (the per-chunk losses / metrics). */
function meanOf(ts: Tensor[]): Tensor {
  let s = ts[0];
  for (let i = 1; i < ts.length; i++) s = ops.add(s, ts[i]);
  return ts.length > 1 ? ops.mul(s, 1 / ts.length) : s;
}

/** Checks what can be checked before any model code runs. */
export function checkTrainingOptions(opts: TrainingGraphOptions): void {
  const M = opts.microBatches ?? 1;
  if (!Number.isInteger(M) || M < 1)
    throw new Error(`Trainer: microBatches must be a whole number >= 1, got ${M}`);
  resolveOptimizerConfig(opts.optimizer);
  const names = Object.keys(opts.inputs);
  if (names.length === 0) throw new Error('Trainer: declare at least one batch input');
  for (const n of names)
    if (opts.inputs[n].shape.length === 0)
      throw new Error(`Trainer: input '${n}' needs a batch axis (axis 0), got a scalar`);
}

/** Builds the training graph (no ORT session): exported for `lemer graph export` and inspection. */
export function buildTrainingGraph(opts: TrainingGraphOptions): TrainingGraph {
  checkTrainingOptions(opts);
  const g = new Graph({
    name: opts.name ?? 'train',
    floatType: opts.floatType ?? 'float32',
    training: true,
    seed: opts.seed ?? 0,
    ortContribOps: opts.ortContribOps ?? true,
  });
  const full = declareInputs(g, opts.inputs);
  return { graph: g, ...buildTrainingStep(g, full, opts) };
}

/**
 * One training step built into `g` over the full-batch values `full` (one per declared
 * input): micro-batch split, forward and backward per chunk, optimiser update, outputs.
 * The body of both the single-step graph and the K-steps Loop (loop.ts), where `g` is
 * the Loop body and `full` are the batch picked by the iteration number.
 */
export function buildTrainingStep(
  g: Graph,
  full: Record<string, Tensor>,
  opts: TrainingGraphOptions,
): Omit<TrainingGraph, 'graph'> {
  checkTrainingOptions(opts); // config errors before any model code runs
  const M = opts.microBatches ?? 1;
  const names = Object.keys(opts.inputs);
  // Each input split along the batch axis into M equal chunks (ONNX Split, M outputs, opset 17).
  const chunks: Record<string, Tensor>[] = Array.from({ length: M }, () => ({}));
  for (const n of names) {
    const x = full[n];
    if (M === 1) {
      chunks[0][n] = x;
      continue;
    }
    const b = x.shape[0];
    if (typeof b === 'number' && b % M !== 0)
      throw new Error(`Trainer: input '${n}' has batch size ${b}, not divisible into ${M} micro-batches`);
    const part: Dim = typeof b === 'number' ? b / M : b;
    const outs = g.node(
      'Split',
      [x],
      Array.from({ length: M }, () => ({ dtype: x.dtype, shape: [part, ...x.shape.slice(1)] })),
      { axis: 0 },
    );
    outs.forEach((t, i) => (chunks[i][n] = t));
  }

  // The step input comes first: build functions may derive random seeds from it.
  const step = g.input(STEP_INPUT, g.floatType, []);
  let trained: { spec: ParamSpec; tensor: Tensor }[] = [];
  const outs: Chunk[] = [];
  const grads: (Tensor | null)[][] = [];
  let names0: { metrics: string[]; terms: string[] } = { metrics: [], terms: [] };
  const prefix = g.nodes.length;
  const ranges: [number, number][] = [];
  const forwardNodes: NodeRecord[][] = [];
  for (let i = 0; i < M; i++) {
    const ctx: BuildContext = { training: true, chunk: i, chunks: M, step };
    const run = () => opts.build(g, chunks[i], ctx);
    const start = g.nodes.length;
    const out = checkChunk(g, i === 0 ? run() : g.reusing(run), i, i === 0 ? null : names0);
    ranges.push([start, g.nodes.length]);
    forwardNodes.push(g.nodes.slice(start));
    if (i === 0) {
      names0 = { metrics: Object.keys(out.metrics), terms: Object.keys(out.terms) };
      trained = [...g.params.values()].filter(
        (p) => p.spec.trainable && (opts.trainable?.(p.spec.name) ?? true),
      );
    }
    outs.push(out);
    // Plain losses: differentiate each chunk at once, so that ORT can free its activations early.
    if (names0.terms.length === 0)
      grads.push(
        gradients(
          out.loss!,
          trained.map((p) => p.tensor),
        ),
      );
  }
  if (g.params.size === 0) throw new Error('Trainer: the model has no parameters');

  // Terms: each chunk's share of the batch loss needs the batch counts, so the chunks are
  // differentiated after all are built, then the nodes are put back in chunk order
  // (forward 1, backward 1, forward 2, ...), the counts of later chunks hoisted forward.
  const totals = combine(outs, names0.terms);
  if (names0.terms.length > 0) {
    const back: [number, number][] = [];
    for (const out of outs) {
      const start = g.nodes.length;
      let surrogate: Tensor | null = out.loss ? (M > 1 ? ops.mul(out.loss, 1 / M) : out.loss) : null;
      for (const k of names0.terms) {
        const t = out.terms[k];
        const part = ops.mul(t.sum, ops.mul(totals.inverse[k], t.weight ?? 1));
        surrogate = surrogate ? ops.add(surrogate, part) : part;
      }
      grads.push(
        gradients(
          surrogate!,
          trained.map((p) => p.tensor),
        ),
      );
      back.push([start, g.nodes.length]);
    }
    if (M > 1) reorderNodes(g, [[0, prefix], ...ranges.flatMap((r, i) => [r, back[i]])]);
  }

  const entries = [];
  const unused: string[] = [];
  // The gradient sums after each chunk (chunk i's parts added): what sequenceChunks waits for.
  const summed: Tensor[][] = Array.from({ length: M }, () => []);
  for (let k = 0; k < trained.length; k++) {
    let sum: Tensor | null = null;
    grads.forEach((gr, i) => {
      const part = gr[k];
      if (!part) return;
      sum = sum ? ops.add(sum, part) : part;
      summed[i].push(sum);
    });
    if (!sum) {
      unused.push(trained[k].spec.name);
      continue;
    }
    // Terms carry their batch normalisation in the surrogate; plain losses are chunk means.
    if (M > 1 && names0.terms.length === 0) sum = ops.mul(sum, 1 / M);
    entries.push({ spec: trained[k].spec, tensor: trained[k].tensor, grad: sum });
  }
  if (entries.length === 0)
    throw new Error('Trainer: no trainable parameter reaches the loss (all frozen or unused)');
  if (M > 1)
    sequenceChunks(
      g,
      chunks,
      forwardNodes,
      summed,
      outs.flatMap((o) => Object.values(o.terms).map((t) => t.count)),
    );
  g.output(LOSS_OUTPUT, totals.loss);
  for (const [k, t] of Object.entries(totals.metrics)) g.output(metricOutput(k), t);
  const size = (s: ParamSpec) => s.shape.reduce<number>((a, d) => a * Number(d), 1);
  const placement = resolvePlacement(
    opts.optimizerPlacement,
    entries.reduce((a, e) => a + size(e.spec), 0),
  );
  if (placement === 'host' && g.parent)
    throw new Error(
      "Trainer: optimizerPlacement 'host' cannot run inside the K-steps Loop (the Loop carries weights and state in the graph): use stepsPerRun 1 or placement 'graph'",
    );
  const optimizer = addOptimizer(g, entries, opts.optimizer, placement);
  const bufferWrites = outputBufferUpdates(g);
  const trainedNames = new Set(entries.map((e) => e.spec.name));
  return {
    optimizer,
    trained: entries.map((e) => e.spec),
    frozen: [...g.params.values()]
      .map((p) => p.spec.name)
      .filter((n) => !trainedNames.has(n) && !unused.includes(n)),
    unused,
    metricNames: Object.keys(totals.metrics),
    microBatches: M,
    bufferWrites,
  };
}

/** One micro-batch's build result, checked: scalars in the graph's float type. */
interface Chunk {
  loss: Tensor | null;
  terms: Record<string, LossTerm>;
  metrics: Record<string, { sum: Tensor; count: Tensor | null }>;
}

function checkChunk(
  g: Graph,
  out: TrainBuildResult | undefined,
  i: number,
  first: { metrics: string[]; terms: string[] } | null,
): Chunk {
  if (!out || (!out.loss && !out.terms))
    throw new Error('Trainer: the build function must return { loss } or { terms } (or both)');
  const ft = g.floatType;
  const float = (what: string, t: Tensor): Tensor => {
    const s = scalarOf(what, t);
    if (s.dtype !== ft) throw new Error(`Trainer: ${what} is ${s.dtype}, graph float type is ${ft}`);
    return s;
  };
  const loss = out.loss ? float('the loss', out.loss) : null;
  const terms: Record<string, LossTerm> = {};
  for (const [k, t] of Object.entries(out.terms ?? {})) {
    if (!t || !t.sum || !t.count) throw new Error(`Trainer: loss term '${k}' needs { sum, count }`);
    if (t.weight !== undefined && !Number.isFinite(t.weight))
      throw new Error(`Trainer: loss term '${k}' has weight ${t.weight}`);
    terms[k] = {
      sum: float(`the sum of loss term '${k}'`, t.sum),
      count: ops.stopGradient(scalarOf(`the count of loss term '${k}'`, t.count).cast(ft)),
      weight: t.weight,
    };
  }
  const metrics: Chunk['metrics'] = {};
  for (const [k, m] of Object.entries(out.metrics ?? {})) {
    if (k in terms) throw new Error(`Trainer: '${k}' is both a loss term and a metric`);
    metrics[k] =
      'graph' in m
        ? { sum: scalarOf(`metric '${k}'`, m).cast(ft), count: null }
        : {
            sum: scalarOf(`the sum of metric '${k}'`, m.sum).cast(ft),
            count: scalarOf(`the count of metric '${k}'`, m.count).cast(ft),
          };
  }
  if (first) {
    if (Object.keys(metrics).join() !== first.metrics.join())
      throw new Error(
        `Trainer: micro-batch ${i} returned metrics [${Object.keys(metrics)}], the first [${first.metrics}]`,
      );
    if (Object.keys(terms).join() !== first.terms.join())
      throw new Error(
        `Trainer: micro-batch ${i} returned loss terms [${Object.keys(terms)}], the first [${first.terms}]`,
      );
  }
  return { loss, terms, metrics };
}

const sumOf = (ts: Tensor[]): Tensor => ts.reduce((a, b) => ops.add(a, b));
/** A batch ratio: 0 where the count is 0 (the losses' convention). */
const inverseCount = (count: Tensor): Tensor => ops.reciprocal(ops.maximum(count, 1e-12));

/** The batch's loss, each term's 1 / batch count, and the batch's metrics, from the chunks. */
function combine(
  outs: Chunk[],
  termNames: string[],
): { loss: Tensor; inverse: Record<string, Tensor>; metrics: Record<string, Tensor> } {
  const inverse: Record<string, Tensor> = {};
  const metrics: Record<string, Tensor> = {};
  const losses = outs.map((o) => o.loss).filter((t): t is Tensor => t !== null);
  let loss: Tensor | null = losses.length ? meanOf(losses) : null;
  for (const k of termNames) {
    inverse[k] = inverseCount(sumOf(outs.map((o) => o.terms[k].count)));
    const value = ops.mul(sumOf(outs.map((o) => o.terms[k].sum)), inverse[k]);
    metrics[k] = value;
    const w = outs[0].terms[k].weight ?? 1;
    const part = w === 1 ? value : ops.mul(value, w);
    loss = loss ? ops.add(loss, part) : part;
  }
  for (const k of Object.keys(outs[0].metrics)) {
    const parts = outs.map((o) => o.metrics[k]);
    metrics[k] =
      parts[0].count === null
        ? meanOf(parts.map((p) => p.sum))
        : ops.mul(sumOf(parts.map((p) => p.sum)), inverseCount(sumOf(parts.map((p) => p.count!))));
  }
  return { loss: loss!, inverse, metrics };
}

/**
 * Outputs `<name>.next` for every buffer the step updated (BatchNorm's running
 * statistics, `Graph.updateBuffer`) and returns where each goes.
 */
function outputBufferUpdates(g: Graph): StateWrite[] {
  const writes: StateWrite[] = [];
  for (const [name, value] of g.bufferUpdates) {
    const out = nextName(name);
    g.output(out, value);
    writes.push({ output: out, store: 'params', name });
  }
  return writes;
}

/**
 * Makes ONNX Runtime run the micro-batches one after another. ORT does not follow the
 * graph's node order (it sorts by a depth-first walk back from the outputs): it ran every
 * chunk's forward before the backward passes and summed the gradients at the end, so the
 * activations and gradients of all chunks were alive together (BERT-base, batch 16, host
 * placement: 4.3 GB above the start at 4 micro-batches as at 1; sequenced, 2.6 GB).
 * Chunk i's forward reads its inputs through `Where(done, x, x)` (bitwise x), where
 * `done` is computed from one element of each
 * gradient sum after chunk i - 1: chunk i starts only once chunk i - 1's gradients are
 * summed, and chunk i - 1's activations and gradients can be freed. Nodes the terms'
 * counts depend on keep the plain inputs (every chunk's backward needs all counts).
 */
function sequenceChunks(
  g: Graph,
  chunkInputs: Record<string, Tensor>[],
  forwardNodes: NodeRecord[][],
  summed: Tensor[][],
  counts: Tensor[],
): void {
  // A count taken as Size(per-row losses) would need the chunk's whole forward before any
  // backward: read the size from a chunk input of the same shape instead (same dims by name).
  const sameShape = (a: Tensor, b: Tensor) => a.rank === b.rank && a.shape.every((d, j) => d === b.shape[j]);
  for (let i = 1; i < chunkInputs.length; i++) {
    const own = new Set(forwardNodes[i].flatMap((n) => n.outputs));
    const ins = Object.values(chunkInputs[i]);
    for (const n of forwardNodes[i]) {
      const t = n.inputs[0];
      if (n.op !== 'Size' || !t || !own.has(t)) continue;
      const x = ins.find((x) => sameShape(x, t));
      if (x) n.inputs = [x];
    }
  }
  const producer = new Map<Tensor, NodeRecord>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const keep = new Set<NodeRecord>();
  const stack = counts.map((t) => producer.get(t)).filter((n): n is NodeRecord => !!n);
  while (stack.length) {
    const n = stack.pop()!;
    if (keep.has(n)) continue;
    keep.add(n);
    for (const t of n.inputs) {
      const p = t && producer.get(t);
      if (p && !keep.has(p)) stack.push(p);
    }
  }
  g.scope('microbatch_order', () => {
    for (let i = 1; i < chunkInputs.length; i++) {
      const marks = summed[i - 1];
      if (marks.length === 0) continue;
      const firsts = marks.map((t) => ops.slice(ops.reshape(t, [-1]), [0], [1]).cast(g.floatType));
      const any = ops.reduceSum(firsts.length === 1 ? firsts[0] : ops.concat(firsts, 0), [0]);
      const done = g.node('IsNaN', [any], [{ dtype: 'bool', shape: [] }])[0];
      const inputs = new Set(Object.values(chunkInputs[i]));
      const gated = new Map<Tensor, Tensor>();
      for (const n of forwardNodes[i]) {
        if (keep.has(n)) continue;
        n.inputs = n.inputs.map((t) => {
          if (!t || !inputs.has(t)) return t;
          let w = gated.get(t);
          if (!w)
            gated.set(t, (w = g.node('Where', [done, t, t], [{ dtype: t.dtype, shape: [...t.shape] }])[0]));
          return w;
        });
      }
    }
  });
  // The new nodes sit at the end: restore a topological order (producers pulled forward).
  reorderNodes(g, [[0, g.nodes.length]]);
}

/**
 * Reorders g's nodes: the given index ranges first, in that order, then the rest; a
 * node whose inputs are not yet made pulls their producers forward. The result is
 * still a topological order (ONNX's rule) if the original was.
 */
function reorderNodes(g: Graph, ranges: [number, number][]): void {
  const nodes = g.nodes.slice();
  const producer = new Map<Tensor, NodeRecord>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  const reads = (n: NodeRecord): (Tensor | null)[] => {
    const rs = [...n.inputs];
    // Values of g read inside subgraphs (a Loop or If body) count as inputs of the node.
    const walk = (sub: Graph) => {
      for (const m of sub.nodes) {
        rs.push(...m.inputs);
        for (const a of Object.values(m.attrs)) if (a instanceof Graph) walk(a);
      }
    };
    for (const a of Object.values(n.attrs)) if (a instanceof Graph) walk(a);
    return rs;
  };
  const done = new Set<NodeRecord>();
  const order: NodeRecord[] = [];
  const visit = (root: NodeRecord) => {
    if (done.has(root)) return;
    // Iterative depth-first: a producer is emitted before its consumers.
    const stack: { n: NodeRecord; deps: NodeRecord[] }[] = [];
    const open = (n: NodeRecord) => {
      done.add(n);
      const deps: NodeRecord[] = [];
      for (const t of reads(n)) {
        const p = t && producer.get(t);
        if (p && !done.has(p)) deps.push(p);
      }
      stack.push({ n, deps: deps.reverse() });
    };
    open(root);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const next = top.deps.pop();
      if (next) {
        if (!done.has(next)) open(next);
      } else {
        order.push(top.n);
        stack.pop();
      }
    }
  };
  for (const [a, b] of ranges) for (let i = a; i < b; i++) visit(nodes[i]);
  for (const n of nodes) visit(n);
  g.nodes.splice(0, g.nodes.length, ...order);
}

/**
 * Where weights and optimiser state live between steps, and how a step graph runs over
 * them. This host implementation feeds JS arrays and takes the returned arrays as the new
 * state (no copies). A K-steps `Loop` runner or a device-resident store implements the
 * same interface.
 */
export interface StateBackend {
  readonly params: ParameterStore;
  readonly optimizerState: TensorStore;
  /** Runs a training step graph: `extra` (batch, step) + all state in, new state taken from the outputs. */
  runStep(
    run: CompiledGraph,
    extra: Record<string, HostTensor>,
    writes: readonly StateWrite[],
  ): Promise<Record<string, HostTensor>>;
  /** Runs a graph that only reads parameters (inference / evaluation). */
  runReadOnly(
    run: CompiledGraph,
    extra: Record<string, HostTensor>,
    fetch?: readonly string[],
  ): Promise<Record<string, HostTensor>>;
}

export class HostStateBackend implements StateBackend {
  constructor(
    readonly params: ParameterStore,
    readonly optimizerState: TensorStore,
  ) {}

  private feeds(g: Graph, extra: Record<string, HostTensor>): Record<string, HostTensor> {
    const feeds: Record<string, HostTensor> = { ...extra, ...this.params.feedsFor(g) };
    for (const t of g.inputs)
      if (!(t.name in feeds) && this.optimizerState.has(t.name))
        feeds[t.name] = this.optimizerState.get(t.name);
    return feeds;
  }

  async runStep(
    run: CompiledGraph,
    extra: Record<string, HostTensor>,
    writes: readonly StateWrite[],
  ): Promise<Record<string, HostTensor>> {
    const feeds = this.feeds(run.graph, extra);
    const out = await run.run(feeds);
    // The binding hands back fresh arrays: they become the state as they are. Never
    // the same buffer as an input of the same run (the next run feeds them as inputs only).
    for (const w of writes) {
      const t = out[w.output];
      if (!t) throw new GraphError(`training step returned no output '${w.output}'`);
      (w.store === 'params' ? this.params : this.optimizerState).set(w.name, t);
      delete out[w.output];
    }
    return out;
  }

  async runReadOnly(
    run: CompiledGraph,
    extra: Record<string, HostTensor>,
    fetch?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    return run.run(this.feeds(run.graph, extra), fetch);
  }
}

export interface TrainerOptions extends TrainingGraphOptions {
  /** Weights to start from (shared, updated in place by replacement); missing ones are initialised. */
  params?: ParameterStore;
  runtime?: RuntimeOptions;
  /**
   * K > 1: `steps(batches)` runs up to K updates in one ONNX Runtime run (an ONNX Loop,
   * see loop.ts): the state is handed back to JS once per run instead of once per step,
   * with bitwise the same results. `step(batch)` then runs a one-step Loop in the same
   * session (no second graph; it pays the Loop's per-run overhead, so prefer `steps`).
   * Default 1: one graph run per step, exactly as without the option. Needs optimizer
   * placement 'graph' ('auto' picks it; 'host' is refused).
   */
  stepsPerRun?: number;
}

export interface TrainerState {
  /** Updates done. */
  step: number;
  epoch: number;
  /** Seed of the graph's random ops and of the parameter initialisation. */
  seed: number;
  /** State of `trainer.rng` (data order), so that a resumed run draws the same batches. */
  rngState: number;
}

export interface StepResult {
  loss: number;
  metrics: Record<string, number>;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate of the default group used by this update. */
  lr: number;
  /** Learning rate of each named parameter group. */
  lrs: Record<string, number>;
}

const num = (t: HostTensor | undefined, i = 0): number => (t ? Number(t.data[i]) : NaN);

export class Trainer {
  #rng: Rng;
  private evalRun: Promise<CompiledGraph> | null = null;

  private constructor(
    readonly options: TrainerOptions,
    readonly built: TrainingGraph,
    readonly compiled: CompiledGraph,
    readonly backend: StateBackend,
    readonly state: TrainerState,
    /** Parameters filled from their ParamInit at creation (not given in `params`). */
    readonly initialised: string[],
    /** Host placement: the optimiser that updates the host arrays after each run (null: the update is in the graph). */
    readonly hostOptimizer: HostOptimizer | null,
  ) {
    this.#rng = new Rng(state.rngState);
  }

  /** Where the optimiser update runs ('auto' resolved). */
  get optimizerPlacement(): 'graph' | 'host' {
    return this.built.optimizer.placement;
  }

  /** The trainer's generator for data order and augmentation; its state goes into checkpoints. */
  get rng(): Rng {
    return this.#rng;
  }

  static async create(opts: TrainerOptions): Promise<Trainer> {
    const K = checkStepsPerRun(opts.stepsPerRun ?? 1);
    if (K > 1 && opts.optimizerPlacement === 'host')
      throw new Error(
        `Trainer: optimizerPlacement 'host' does not work with stepsPerRun ${K} (the K-steps Loop carries weights and Adam state inside the graph): use stepsPerRun 1, or placement 'graph' or 'auto'`,
      );
    resolvePlacement(opts.optimizerPlacement, 0); // an unknown placement fails before the build
    const built =
      K > 1
        ? buildLoopTrainingGraph({ ...opts, optimizerPlacement: 'graph', stepsPerRun: K })
        : buildTrainingGraph(opts);
    const seed = opts.seed ?? 0;
    const params = opts.params ?? new ParameterStore();
    const initialised = params.initMissing(built.graph, seed);
    const problems = params.check([...built.graph.params.values()].map((p) => p.spec));
    if (problems.length)
      throw new Error(`Trainer: the given parameters do not fit the model:\n  ${problems.join('\n  ')}`);
    const state = new TensorStore('optimizer state');
    for (const s of built.optimizer.stateSpecs) state.put(s.name, initTensor(s));
    let host: HostOptimizer | null = null;
    if (built.optimizer.placement === 'host') {
      host = new HostOptimizer(opts.optimizer, built.optimizer, built.trained);
      // Arrays made here are the trainer's own; given weights are copied before their first update.
      for (const n of initialised) host.adopt(params.get(n));
      for (const n of state.names()) host.adopt(state.get(n));
    }
    const compiled = await CompiledGraph.create(built.graph, opts.runtime);
    return new Trainer(
      opts,
      built,
      compiled,
      new HostStateBackend(params, state),
      { step: 0, epoch: 0, seed, rngState: seed >>> 0 },
      initialised,
      host,
    );
  }

  get graph(): Graph {
    return this.built.graph;
  }
  get params(): ParameterStore {
    return this.backend.params;
  }
  get optimizerState(): TensorStore {
    return this.backend.optimizerState;
  }

  /** Where a step's outputs go: new weights and optimiser state, updated buffers (BatchNorm statistics). */
  get writes(): StateWrite[] {
    return [...this.built.optimizer.writes, ...this.built.bufferWrites];
  }

  /** K: the most updates one run takes (see TrainerOptions.stepsPerRun). */
  get stepsPerRun(): number {
    return this.options.stepsPerRun ?? 1;
  }

  private checkBatch(batch: Record<string, HostTensor>, M = this.built.microBatches, which = 'batch'): void {
    const of = which === 'batch' ? '' : ` of ${which}`;
    for (const [n, decl] of Object.entries(this.options.inputs)) {
      const t = batch[n];
      if (!t) throw new Error(`Trainer: ${which} lacks input '${n}' (${decl.dtype}${fmtShape(decl.shape)})`);
      if (t.shape.length === 0 || t.shape[0] % M !== 0)
        throw new Error(
          `Trainer: input '${n}'${of} has batch size ${t.shape[0] ?? '(scalar)'}, not divisible into ${M} micro-batches`,
        );
    }
    for (const n of Object.keys(batch))
      if (!(n in this.options.inputs))
        throw new Error(
          `Trainer: ${which} has an input '${n}' the model does not declare (declared: ${Object.keys(this.options.inputs).join(', ')})`,
        );
  }

  private stepFeed(): HostTensor {
    const data = new (this.graph.floatType === 'float64' ? Float64Array : Float32Array)([this.state.step]);
    return { dtype: this.graph.floatType, shape: [], data };
  }

  /** Step i's figures from a run's outputs (one value per step in a K-steps run). */
  private result(out: Record<string, HostTensor>, i: number): StepResult {
    const lrs: Record<string, number> = {};
    for (const k of Object.keys(this.built.optimizer.lrs))
      if (k !== 'default') lrs[k] = num(out[`${LR_OUTPUT}.${k}`], i);
    return {
      loss: num(out[LOSS_OUTPUT], i),
      metrics: Object.fromEntries(this.built.metricNames.map((k) => [k, num(out[metricOutput(k)], i)])),
      gradNorm: num(out[GRAD_NORM_OUTPUT], i),
      lr: num(out[LR_OUTPUT], i),
      lrs,
    };
  }

  /** One update: forward, backward (over all micro-batches), clip, optimiser, in one run. */
  async step(batch: Record<string, HostTensor>): Promise<StepResult> {
    if (this.stepsPerRun > 1) return (await this.steps([batch]))[0];
    this.checkBatch(batch);
    const out = await this.backend.runStep(
      this.compiled,
      { ...batch, [STEP_INPUT]: this.stepFeed() },
      this.writes,
    );
    this.hostOptimizer?.apply(out, this.params, this.optimizerState);
    this.state.step += 1;
    return this.result(out, 0);
  }

  /**
   * Up to `stepsPerRun` updates, one per batch in order, in one ONNX Runtime run; the
   * same results as that many `step()` calls. The batches are stacked, so each input
   * needs the same shape in all of them.
   */
  async steps(batches: readonly Record<string, HostTensor>[]): Promise<StepResult[]> {
    const K = this.stepsPerRun;
    checkStepCount(batches, K);
    if (K === 1) return [await this.step(batches[0])];
    const n = batches.length;
    batches.forEach((b, i) =>
      this.checkBatch(b, this.built.microBatches, n > 1 ? `batch ${i} of ${n}` : 'batch'),
    );
    const stacked = stackBatches(batches, this.options.inputs, K);
    const out = await this.backend.runStep(
      this.compiled,
      { ...stacked, [STEP_INPUT]: this.stepFeed() },
      this.writes,
    );
    this.state.step += batches.length;
    return batches.map((_, i) => this.result(out, i));
  }

  /** Loss and metrics in eval mode (dropout off, no update), from the same build function. */
  async evaluate(
    batch: Record<string, HostTensor>,
  ): Promise<{ loss: number; metrics: Record<string, number> }> {
    this.checkBatch(batch, 1);
    this.evalRun ??= (async () => {
      const g = new Graph({
        name: 'eval',
        floatType: this.graph.floatType,
        training: false,
        seed: this.state.seed,
        ortContribOps: this.graph.ortContribOps,
      });
      const inputs = declareInputs(g, this.options.inputs);
      const out = checkChunk(
        g,
        this.options.build(g, inputs, { training: false, chunk: 0, chunks: 1, step: null }),
        0,
        null,
      );
      checkInferenceGraph(g, 'Trainer.evaluate');
      const totals = combine([out], Object.keys(out.terms));
      g.output(LOSS_OUTPUT, totals.loss);
      for (const [k, t] of Object.entries(totals.metrics)) g.output(metricOutput(k), t);
      return CompiledGraph.create(g, this.options.runtime);
    })();
    const run = await this.evalRun.catch((err: unknown) => {
      this.evalRun = null; // a failed build is not kept: the next call reports it again
      throw err;
    });
    const out = await this.backend.runReadOnly(run, batch);
    const metrics: Record<string, number> = {};
    for (const k of Object.keys(out))
      if (k.startsWith('metric.')) metrics[k.slice('metric.'.length)] = num(out[k]);
    return { loss: num(out[LOSS_OUTPUT]), metrics };
  }

  /** An inference graph of the same model over the same (live) parameters. */
  predictor(
    inputs: Record<string, InputDecl>,
    build: (g: Graph, inputs: Record<string, Tensor>, ctx: BuildContext) => Record<string, Tensor>,
  ): Promise<Predictor> {
    return Predictor.create({
      inputs,
      build,
      params: this.params,
      floatType: this.graph.floatType,
      seed: this.state.seed,
      runtime: this.options.runtime,
      backend: this.backend,
    });
  }

  /** Saves weights, optimiser state and trainer state (atomically); returns the directory's path. */
  saveCheckpoint(dir: string, config?: unknown): string {
    this.state.rngState = this.#rng.state();
    return saveCheckpoint(dir, {
      params: this.params,
      optimizerState: this.optimizerState,
      trainerState: { ...this.state, microBatches: this.built.microBatches },
      optimizer: this.options.optimizer,
      config,
    });
  }

  /**
   * Continues from a checkpoint of the same model: weights, optimiser state, step and RNG
   * state are replaced, so the next step is the one the saved run would have taken
   * (bit for bit for models without random ops; ORT's random ops draw from a generator
   * that lives in the session, so dropout masks after a resume differ from those of an
   * uninterrupted run). Checkpoints of either optimiser placement load into either. With
   * host placement the returned checkpoint's arrays become the trainer's (updated in place).
   */
  restore(dir: string, opts: { strict?: boolean } = {}): LoadedCheckpoint {
    const ck = loadCheckpoint(dir, {
      expect: this.graph,
      expectOptimizer: this.built.optimizer.stateSpecs,
      strict: opts.strict ?? true,
    });
    for (const [n, t] of ck.params.entries()) this.params.set(n, t);
    if (ck.optimizerState) for (const [n, t] of ck.optimizerState.entries()) this.optimizerState.set(n, t);
    if (this.hostOptimizer) {
      for (const [, t] of ck.params.entries()) this.hostOptimizer.adopt(t);
      for (const [, t] of ck.optimizerState?.entries() ?? []) this.hostOptimizer.adopt(t);
    }
    const s = ck.trainer.trainer as Partial<TrainerState>;
    if (typeof s.step !== 'number') throw new Error(`${dir}: trainer.json has no step`);
    this.state.step = s.step;
    this.state.epoch = typeof s.epoch === 'number' ? s.epoch : 0;
    if (typeof s.seed === 'number' && s.seed !== this.state.seed)
      throw new Error(
        `${dir}: saved with seed ${s.seed}, this trainer has seed ${this.state.seed} (its graph's random ops follow the seed: create the Trainer with seed ${s.seed} to continue exactly)`,
      );
    this.state.rngState = typeof s.rngState === 'number' ? s.rngState : this.state.seed >>> 0;
    this.#rng = new Rng(this.state.rngState);
    return ck;
  }

  async release(): Promise<void> {
    await this.compiled.release();
    if (this.evalRun) await (await this.evalRun.catch(() => null))?.release();
  }
}

/**
 * Evaluation and Predictor graphs must be deterministic functions of their inputs:
 * refuses one built in training mode or holding nodes flagged training-only (dropout
 * masks, BatchNorm batch statistics), naming them.
 */
export function checkInferenceGraph(g: Graph, what: string): void {
  const bad = ops.trainingOnlyNodes(g);
  if (g.training || bad.length || g.bufferUpdates.size)
    throw new GraphError(
      `${what}: the graph was built in training mode (${[
        ...(g.training ? ['graph.training is true'] : []),
        ...bad.slice(0, 5),
        ...(bad.length > 5 ? [`... ${bad.length - 5} more`] : []),
        ...(g.bufferUpdates.size ? [`updates of ${[...g.bufferUpdates.keys()].join(', ')}`] : []),
      ].join('; ')}): build inference layers from the graph's training flag (ctx.training), not a fixed one`,
    );
}

function declareInputs(g: Graph, decls: Record<string, InputDecl>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(decls).map(([n, d]) => [n, g.input(n, d.dtype, d.shape)]));
}

export interface PredictorOptions {
  inputs: Record<string, InputDecl>;
  build: (g: Graph, inputs: Record<string, Tensor>, ctx: BuildContext) => Record<string, Tensor>;
  params?: ParameterStore;
  floatType?: 'float32' | 'float64';
  /** Use ONNX Runtime's fused contrib ops (default true). */
  ortContribOps?: boolean;
  seed?: number;
  runtime?: RuntimeOptions;
  /** Share a trainer's state (weights replaced by training steps are seen at once). */
  backend?: StateBackend;
}

/** The model in inference mode (forward only, dropout off): named outputs from named inputs. */
export class Predictor {
  private constructor(
    readonly graph: Graph,
    readonly compiled: CompiledGraph,
    readonly backend: StateBackend,
    /** Parameters the store lacked, filled from their ParamInit. */
    readonly initialised: string[],
  ) {}

  static buildGraph(opts: PredictorOptions): Graph {
    const g = new Graph({
      name: 'infer',
      floatType: opts.floatType ?? 'float32',
      training: false,
      seed: opts.seed ?? 0,
      ortContribOps: opts.ortContribOps ?? true,
    });
    const inputs = declareInputs(g, opts.inputs);
    const outs = opts.build(g, inputs, { training: false, chunk: 0, chunks: 1, step: null });
    if (Object.keys(outs).length === 0) throw new Error('Predictor: the build function returned no outputs');
    checkInferenceGraph(g, 'Predictor');
    for (const [k, t] of Object.entries(outs)) g.output(k, t);
    return g;
  }

  static async create(opts: PredictorOptions): Promise<Predictor> {
    const g = Predictor.buildGraph(opts);
    const backend =
      opts.backend ??
      new HostStateBackend(opts.params ?? new ParameterStore(), new TensorStore('optimizer state'));
    const initialised = backend.params.initMissing(g, opts.seed ?? 0);
    const compiled = await CompiledGraph.create(g, opts.runtime);
    return new Predictor(g, compiled, backend, initialised);
  }

  get params(): ParameterStore {
    return this.backend.params;
  }

  run(batch: Record<string, HostTensor>, fetch?: readonly string[]): Promise<Record<string, HostTensor>> {
    return this.backend.runReadOnly(this.compiled, batch, fetch);
  }

  async release(): Promise<void> {
    await this.compiled.release();
  }
}
