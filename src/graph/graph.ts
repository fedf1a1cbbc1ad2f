/**
 * The graph builder. A model is a TypeScript function that calls ops on Tensors; each
 * call records an ONNX node with its static shape; nothing runs until the graph is
 * serialised and handed to ONNX Runtime (see runtime.ts).
 */
import { type DType, type TypedArray, allocate, isFloat } from './dtype.js';
import { type Dim, type Shape, fmtShape } from './shape.js';
import * as ops from './ops/index.js';

/** A float-valued attribute (a bare number in attrs means an int attribute). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export class FloatsAttr {
  constructor(readonly value: readonly number[]) {}
}
export const f = (x: number): FloatAttr => new FloatAttr(x);
export const fs = (x: readonly number[]): FloatsAttr => new FloatsAttr(x);

/** Constant data: an initializer in the ONNX graph, or a tensor-valued attribute. */
export interface ConstData {
  dtype: DType;
  shape: readonly number[];
  data: TypedArray;
}

export type AttrValue = number | readonly number[] | string | FloatAttr | FloatsAttr | ConstData | Graph;

export interface NodeRecord {
  op: string;
  domain: string;
  name: string;
  inputs: (Tensor | null)[];
  outputs: Tensor[];
  attrs: Record<string, AttrValue>;
  /** Where the model code built this node (formatted lazily: stacks are costly to format). */
  where: Error;
  scope: string;
  /** Set by ops.stopGradient: the node passes values forward but no gradient back. */
  stopGradient?: boolean;
  /** Set by ops.markTrainingOnly: what makes this node wrong in an inference graph (dropout, batch statistics). */
  trainingOnly?: string;
}

/** How a parameter is filled before any checkpoint is loaded. Serialisable on purpose. */
export type ParamInit =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'uniform'; low: number; high: number }
  | { kind: 'constant'; value: number };

export interface ParamSpec {
  name: string;
  shape: readonly number[];
  dtype: DType;
  init: ParamInit;
  /** False for buffers that belong to the model but are never trained. */
  trainable: boolean;
}

export class GraphError extends Error {
  override name = 'GraphError';
}

export type TensorKind = 'input' | 'param' | 'const' | 'node';

export class Tensor {
  constructor(
    readonly graph: Graph,
    /** The ONNX value name; only Graph.output() changes it (to name a node's result directly). */
    public name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly kind: TensorKind,
    readonly producer: NodeRecord | null = null,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${fmtShape(this.shape)}`;
  }

  // Fluent forms of the common ops, so model code reads like the maths.
  add(o: Tensor | number): Tensor {
    return ops.add(this, o);
  }
  sub(o: Tensor | number): Tensor {
    return ops.sub(this, o);
  }
  mul(o: Tensor | number): Tensor {
    return ops.mul(this, o);
  }
  div(o: Tensor | number): Tensor {
    return ops.div(this, o);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  matmul(o: Tensor): Tensor {
    return ops.matmul(this, o);
  }
  reshape(shape: readonly Dim[]): Tensor {
    return ops.reshape(this, shape);
  }
  transpose(perm: readonly number[]): Tensor {
    return ops.transpose(this, perm);
  }
  sum(axes: number | readonly number[], keepDims = false): Tensor {
    return ops.reduceSum(this, axes, keepDims);
  }
  mean(axes: number | readonly number[], keepDims = false): Tensor {
    return ops.reduceMean(this, axes, keepDims);
  }
  max(axes: number | readonly number[], keepDims = false): Tensor {
    return ops.reduceMax(this, axes, keepDims);
  }
  softmax(axis = -1): Tensor {
    return ops.softmax(this, axis);
  }
  cast(dtype: DType): Tensor {
    return ops.cast(this, dtype);
  }
  unsqueeze(axes: number | readonly number[]): Tensor {
    return ops.unsqueeze(this, axes);
  }
  squeeze(axes: number | readonly number[]): Tensor {
    return ops.squeeze(this, axes);
  }
  /** Renames symbolic dims (e.g. a conv's derived length to the mask's 'frames'). */
  withShape(shape: readonly Dim[]): Tensor {
    return ops.withShape(this, shape);
  }
}

export interface GraphOptions {
  name?: string;
  /** Float type of parameters and of float constants made by ops (float64 for gradient checks). */
  floatType?: 'float32' | 'float64';
  /** Train mode turns dropout and other stochastic layers on. */
  training?: boolean;
  /** Base seed of random ops (dropout, Gumbel noise, masking). */
  seed?: number;
  /** For a subgraph (the body of an ONNX Loop / If): the graph whose values it may read. */
  parent?: Graph;
  /**
   * Let layers use ONNX Runtime's contrib ops (domain com.microsoft) where they are faster
   * (today the fused Gelu). Off: the graph stays standard ONNX (what `lemer graph export`
   * writes by default). Trainer and Predictor, whose graphs only ORT runs, turn it on.
   * A subgraph inherits its parent's setting.
   */
  ortContribOps?: boolean;
  /**
   * Prefix of every value name this graph makes. A subgraph that declares inputs, params
   * or outputs under the names its parent uses for its own (a Loop body of a training
   * step) needs one, as ONNX wants value names unique model-wide. Params keep their
   * canonical ParamSpec names; `findInput` and `outputs[].name` use the unprefixed names.
   */
  valuePrefix?: string;
}

export class Graph {
  readonly name: string;
  readonly floatType: 'float32' | 'float64';
  readonly parent: Graph | null;
  readonly valuePrefix: string;
  readonly ortContribOps: boolean;
  training: boolean;
  seed: number;
  readonly nodes: NodeRecord[] = [];
  readonly inputs: Tensor[] = [];
  readonly params = new Map<string, { spec: ParamSpec; tensor: Tensor }>();
  readonly initializers = new Map<string, ConstData>();
  /** Next values of non-trainable buffers (BatchNorm's running statistics): see `updateBuffer`. */
  readonly bufferUpdates = new Map<string, Tensor>();
  /** `name` is the output's name as given; the ONNX value is `tensor.name` (with the prefix). */
  readonly outputs: { name: string; tensor: Tensor }[] = [];
  /** Value names in use; a subgraph shares its root's set, as ONNX wants names unique model-wide. */
  private readonly names: Set<string>;
  private readonly scopes: string[] = [];
  private readonly scalarCache = new Map<string, Tensor>();
  private counter = 0;
  private reuse = 0;

  constructor(opts: GraphOptions = {}) {
    this.name = opts.name ?? 'lemer';
    this.floatType = opts.floatType ?? 'float32';
    this.training = opts.training ?? false;
    this.seed = opts.seed ?? 0;
    this.parent = opts.parent ?? null;
    this.valuePrefix = opts.valuePrefix ?? '';
    this.ortContribOps = opts.ortContribOps ?? this.parent?.ortContribOps ?? false;
    this.names = this.parent ? this.parent.names : new Set<string>();
  }

  /** Whether values of `other` may be read here: this graph or one that encloses it. */
  canRead(other: Graph): boolean {
    if (other === this) return true;
    for (let g = this.parent; g; g = g.parent) if (g === other) return true;
    return false;
  }

  /** Runs `fn` with `name` pushed on the scope: parameters and nodes made inside get it as prefix. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /**
   * Runs `fn` so that `param()` returns the existing parameter of the same name instead
   * of failing: a model built twice (micro-batches, weight tying) shares its weights.
   */
  reusing<T>(fn: () => T): T {
    this.reuse += 1;
    try {
      return fn();
    } finally {
      this.reuse -= 1;
    }
  }

  get currentScope(): string {
    return this.scopes.join('.');
  }

  /** A fresh seed for one random op, derived from the graph's seed and the op's order. */
  nextSeed(): number {
    this.counter += 1;
    return (Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(this.counter, 0xc2b2ae35)) >>> 8;
  }

  private uniqueName(base: string): string {
    const prefixed = this.valuePrefix + base;
    let name = prefixed;
    for (let i = 1; this.names.has(name); i++) name = `${prefixed}_${i}`;
    this.names.add(name);
    return name;
  }

  /** The input declared as `name` (by `input()`; a param by its full name), prefix or not. */
  findInput(name: string): Tensor | undefined {
    const want = this.valuePrefix + name;
    return this.inputs.find((t) => t.name === want);
  }

  input(name: string, dtype: DType, shape: readonly Dim[]): Tensor {
    if (this.names.has(this.valuePrefix + name))
      throw new GraphError(`input '${name}' is already defined in graph '${this.name}'`);
    const t = new Tensor(this, this.uniqueName(name), dtype, [...shape], 'input');
    this.inputs.push(t);
    return t;
  }

  /** A named parameter (fed from the parameter store at run time). Its name is scoped. */
  param(
    name: string,
    shape: readonly number[],
    opts: { init?: ParamInit; trainable?: boolean; dtype?: DType } = {},
  ): Tensor {
    const full = this.scopes.length ? `${this.currentScope}.${name}` : name;
    const existing = this.params.get(full);
    if (existing && this.reuse > 0) {
      if (existing.spec.shape.join() !== shape.join())
        throw new GraphError(
          `parameter '${full}' reused with shape ${fmtShape(shape)}, defined ${fmtShape(existing.spec.shape)}`,
        );
      return existing.tensor;
    }
    if (existing)
      throw new GraphError(`parameter '${full}' is defined twice (use graph.reusing() to share weights)`);
    if (this.names.has(this.valuePrefix + full))
      throw new GraphError(`parameter '${full}' clashes with another value's name`);
    for (const d of shape)
      if (!Number.isInteger(d) || d <= 0)
        throw new GraphError(`parameter '${full}' needs a static positive shape, got ${fmtShape(shape)}`);
    const spec: ParamSpec = {
      name: full,
      shape: [...shape],
      dtype: opts.dtype ?? this.floatType,
      init: opts.init ?? { kind: 'zeros' },
      trainable: opts.trainable ?? true,
    };
    const t = new Tensor(this, this.uniqueName(full), spec.dtype, spec.shape, 'param');
    this.params.set(full, { spec, tensor: t });
    this.inputs.push(t);
    return t;
  }

  /**
   * Records `value` as the next value of buffer `name` (a non-trainable parameter of this
   * graph, full name). The Trainer (and the K-steps Loop) makes it the output
   * `<name>.next` and writes it into the parameter store after each step, so that
   * evaluation, predictors and checkpoints see it. Recording twice (a model built once
   * per micro-batch, or a layer applied twice) keeps the last value: build the second
   * update from `bufferValue(name)` to chain them, as PyTorch's running statistics do
   * over the forward passes of gradient accumulation.
   */
  updateBuffer(name: string, value: Tensor): void {
    const p = this.params.get(name);
    if (!p) throw new GraphError(`buffer update for '${name}': graph '${this.name}' has no such parameter`);
    if (p.spec.trainable)
      throw new GraphError(`buffer update for '${name}': a trainable parameter (the optimiser writes it)`);
    if (value.dtype !== p.spec.dtype || value.shape.join() !== p.spec.shape.join())
      throw new GraphError(
        `buffer update for '${name}': ${value.dtype}${fmtShape(value.shape)}, the buffer is ${p.spec.dtype}${fmtShape(p.spec.shape)}`,
      );
    this.bufferUpdates.set(name, value);
  }

  /** The value of buffer `name` in this graph so far: its last recorded update, else the parameter. */
  bufferValue(name: string): Tensor {
    const v = this.bufferUpdates.get(name) ?? this.params.get(name)?.tensor;
    if (!v) throw new GraphError(`buffer '${name}': graph '${this.name}' has no such parameter`);
    return v;
  }

  /** A constant tensor (an ONNX initializer). */
  constant(data: TypedArray | ConstData, shape?: readonly number[], name = 'const'): Tensor {
    const c: ConstData =
      'data' in data && 'shape' in data
        ? (data as ConstData)
        : {
            dtype: dtypeOfArray(data as TypedArray),
            shape: shape ?? [(data as TypedArray).length],
            data: data as TypedArray,
          };
    const n = c.shape.reduce((a, b) => a * b, 1);
    if (n !== c.data.length)
      throw new GraphError(`constant of shape ${fmtShape(c.shape)} needs ${n} values, got ${c.data.length}`);
    const nm = this.uniqueName(this.scopes.length ? `${this.scopes.join('/')}/${name}` : name);
    this.initializers.set(nm, c);
    return new Tensor(this, nm, c.dtype, [...c.shape], 'const');
  }

  /** A scalar constant of the given dtype (default: the graph's float type), shared per value. */
  scalar(value: number, dtype: DType = this.floatType): Tensor {
    const key = `${dtype}:${value}`;
    let t = this.scalarCache.get(key);
    if (!t) {
      const data = allocate(dtype, 1);
      if (data instanceof BigInt64Array) data[0] = BigInt(Math.trunc(value));
      else data[0] = value;
      t = this.constant(
        { dtype, shape: [], data },
        undefined,
        `scalar_${String(value).replace(/[^0-9a-z]/gi, '_')}`,
      );
      this.scalarCache.set(key, t);
    }
    return t;
  }

  /** A 1-D int64 constant (shapes, axes, indices of ONNX ops that take them as inputs). */
  int64s(values: readonly number[]): Tensor {
    const key = `i64s:${values.join(',')}`;
    let t = this.scalarCache.get(key);
    if (!t) {
      t = this.constant(BigInt64Array.from(values.map((v) => BigInt(v))), [values.length], 'ints');
      this.scalarCache.set(key, t);
    }
    return t;
  }

  /** Records one node. Ops call this; model code calls ops. */
  node(
    op: string,
    inputs: (Tensor | null)[],
    outputs: { dtype: DType; shape: Shape }[],
    attrs: Record<string, AttrValue> = {},
    domain = '',
  ): Tensor[] {
    for (const t of inputs)
      if (t && !this.canRead(t.graph))
        throw new GraphError(`${op}: input ${t.name} belongs to graph '${t.graph.name}', not '${this.name}'`);
    const scope = this.scopes.join('/');
    const name = this.uniqueName(`${scope ? scope + '/' : ''}${op}`);
    const rec: NodeRecord = { op, domain, name, inputs, outputs: [], attrs, where: new Error(), scope };
    rec.outputs = outputs.map(
      (o, i) => new Tensor(this, this.uniqueName(`${name}:${i}`), o.dtype, o.shape, 'node', rec),
    );
    this.nodes.push(rec);
    return rec.outputs;
  }

  /** Marks a tensor as a graph output under a name. */
  output(name: string, t: Tensor): Tensor {
    if (this.outputs.some((o) => o.name === name)) throw new GraphError(`output '${name}' is defined twice`);
    const value = this.valuePrefix + name;
    if (t.name === value) {
      this.outputs.push({ name, tensor: t });
      return t;
    }
    if (this.names.has(value))
      throw new GraphError(`output name '${name}' clashes with another value's name`);
    this.names.add(value);
    if (t.kind === 'node' && t.graph === this && !this.outputs.some((o) => o.tensor === t)) {
      // Name the node's result after the output itself: an Identity in between would make
      // ORT copy it (measured 9-14 ms per training step for Adam's m and v outputs).
      this.names.delete(t.name);
      t.name = value;
      this.outputs.push({ name, tensor: t });
      return t;
    }
    // A graph input, or a value already output under another name: an Identity gives it its own name.
    const scope = this.scopes.join('/');
    const rec: NodeRecord = {
      op: 'Identity',
      domain: '',
      name: this.uniqueName(`${scope ? scope + '/' : ''}output_${name}`),
      inputs: [t],
      outputs: [],
      attrs: {},
      where: new Error(),
      scope,
    };
    const out = new Tensor(this, value, t.dtype, t.shape, 'node', rec);
    rec.outputs = [out];
    this.nodes.push(rec);
    this.outputs.push({ name, tensor: out });
    return out;
  }

  /** The trainable parameters, in definition order. */
  trainableParams(): { spec: ParamSpec; tensor: Tensor }[] {
    return [...this.params.values()].filter((p) => p.spec.trainable);
  }

  /** An error that names the op, its shapes and the model line that built it. */
  error(op: string, message: string, inputs: (Tensor | null)[] = []): GraphError {
    const shapes = inputs
      .filter((t): t is Tensor => !!t)
      .map((t) => `${t.name}: ${t.dtype}${fmtShape(t.shape)}`)
      .join('; ');
    const scope = this.scopes.join('/') || '(top level)';
    const site = callSite(new Error());
    return new GraphError(
      `${op} in ${scope}: ${message}${shapes ? `\n  inputs: ${shapes}` : ''}${site ? `\n  built at ${site}` : ''}`,
    );
  }
}

function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  return 'uint8';
}

/** The first stack frame outside the engine: the model line that built a node. */
export function callSite(err: Error): string | null {
  const lines = (err.stack ?? '').split('\n').slice(1);
  for (const l of lines) {
    if (/[/\\]src[/\\]graph[/\\]/.test(l) || l.includes('node:internal') || l.includes('node_modules'))
      continue;
    const m = l.match(/\(?((?:file:\/\/)?[^()\s]+:\d+:\d+)\)?\s*$/);
    if (m) return m[1].replace(/^file:\/\//, '');
  }
  return null;
}

export const isFloatTensor = (t: Tensor): boolean => isFloat(t.dtype);
