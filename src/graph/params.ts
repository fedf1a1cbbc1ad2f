/**
 * Where a model's weights live on the host: one named HostTensor per parameter, kept as
 * separate arrays (one big flat tensor is 3-4x slower for ONNX Runtime to hand back,
 * see MEASURED.md). The same class holds optimiser state (`<name>.adam_m`, ...).
 */
import { type DType, allocate, bytesPerElement } from './dtype.js';
import type { Graph, ParamInit, ParamSpec } from './graph.js';
import type { HostTensor } from './runtime.js';
import { fmtShape } from './shape.js';
import { Rng } from '../util/random.js';

/** Named host tensors with shape/dtype checks on every write. */
export class TensorStore {
  protected readonly tensors = new Map<string, HostTensor>();

  constructor(
    /** What the store holds, for error messages ('parameter', 'optimizer state'). */
    readonly what = 'tensor',
  ) {}

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get(name: string): HostTensor {
    const t = this.tensors.get(name);
    if (!t)
      throw new Error(`${this.what} '${name}' is not in the store (${this.size} held${this.hint(name)})`);
    return t;
  }

  /** Stores `t` under `name` as is (no copy). Replacing checks that shape and dtype stay the same. */
  set(name: string, t: HostTensor): void {
    checkTensor(this.what, name, t);
    const old = this.tensors.get(name);
    if (old && (old.dtype !== t.dtype || old.shape.join() !== t.shape.join()))
      throw new Error(
        `${this.what} '${name}' is ${old.dtype}${fmtShape(old.shape)}; cannot replace it by ${t.dtype}${fmtShape(t.shape)}`,
      );
    this.tensors.set(name, t);
  }

  /** Replaces or adds without the same-shape check (loading a different model's weights). */
  put(name: string, t: HostTensor): void {
    checkTensor(this.what, name, t);
    this.tensors.set(name, t);
  }

  delete(name: string): boolean {
    return this.tensors.delete(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  entries(): [string, HostTensor][] {
    return [...this.tensors.entries()];
  }

  get size(): number {
    return this.tensors.size;
  }

  /** Total bytes of all tensors. */
  get byteLength(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.data.byteLength;
    return n;
  }

  /** A deep copy (fresh arrays). */
  clone(): this {
    const c = new (this.constructor as new (what: string) => this)(this.what);
    for (const [k, t] of this.tensors)
      c.tensors.set(k, { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() });
    return c;
  }

  /** The tensors as a plain record (no copies). */
  toRecord(): Record<string, HostTensor> {
    return Object.fromEntries(this.tensors);
  }

  static fromRecord<T extends TensorStore>(
    this: new (what: string) => T,
    rec: Record<string, HostTensor>,
    what?: string,
  ): T {
    const s = new this(what ?? 'tensor');
    for (const [k, t] of Object.entries(rec)) s.put(k, t);
    return s;
  }

  private hint(name: string): string {
    const tail = name.split('.').pop() ?? name;
    const near = this.names()
      .filter((n) => n.endsWith(tail))
      .slice(0, 3);
    return near.length ? `; similar: ${near.join(', ')}` : '';
  }
}

/** The weights of a model: every parameter of a graph, filled from its ParamInit or a checkpoint. */
export class ParameterStore extends TensorStore {
  constructor(what = 'parameter') {
    super(what);
  }

  /**
   * A store with every parameter of `graph` (or of the given specs) filled from its
   * ParamInit. Each parameter draws from its own generator, seeded from `seed` and its
   * name: adding a parameter to a model does not change the others' initial values.
   */
  static init(graph: Graph | readonly ParamSpec[], seed = 0): ParameterStore {
    const s = new ParameterStore();
    s.initMissing(graph, seed);
    return s;
  }

  /** Fills the parameters of `graph` that the store lacks; returns their names. */
  initMissing(graph: Graph | readonly ParamSpec[], seed = 0): string[] {
    const added: string[] = [];
    for (const spec of specsOf(graph)) {
      if (this.has(spec.name)) continue;
      this.put(spec.name, initTensor(spec, seed));
      added.push(spec.name);
    }
    return added;
  }

  /**
   * Feeds for the parameter inputs of `graph`, checked: one error lists every
   * parameter that is missing or has the wrong shape or dtype.
   */
  feedsFor(graph: Graph | readonly ParamSpec[]): Record<string, HostTensor> {
    const feeds: Record<string, HostTensor> = {};
    const problems = this.check(specsOf(graph));
    if (problems.length)
      throw new Error(
        `parameters do not fit graph${isGraph(graph) ? ` '${graph.name}'` : ''}:\n  ${problems.join('\n  ')}`,
      );
    for (const spec of specsOf(graph)) feeds[spec.name] = this.get(spec.name);
    return feeds;
  }

  /** Problems (one line each) of this store against the specs; empty when everything fits. */
  check(specs: readonly ParamSpec[]): string[] {
    const out: string[] = [];
    for (const spec of specs) {
      const t = this.tensors.get(spec.name);
      if (!t) out.push(`missing: '${spec.name}' ${spec.dtype}${fmtShape(spec.shape)}`);
      else if (t.dtype !== spec.dtype || t.shape.join() !== spec.shape.join())
        out.push(
          `'${spec.name}': graph wants ${spec.dtype}${fmtShape(spec.shape)}, store has ${t.dtype}${fmtShape(t.shape)}`,
        );
    }
    return out;
  }
}

function isGraph(g: Graph | readonly ParamSpec[]): g is Graph {
  return !Array.isArray(g);
}

export function specsOf(g: Graph | readonly ParamSpec[]): ParamSpec[] {
  return isGraph(g) ? [...g.params.values()].map((p) => p.spec) : [...g];
}

function checkTensor(what: string, name: string, t: HostTensor): void {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== t.data.length)
    throw new Error(
      `${what} '${name}': shape ${fmtShape(t.shape)} needs ${n} values, data has ${t.data.length}`,
    );
  if (t.data.BYTES_PER_ELEMENT !== bytesPerElement(t.dtype))
    throw new Error(`${what} '${name}': ${t.dtype} data in a ${t.data.constructor.name}`);
}

/** FNV-1a over the name's UTF-16 code units: a stable per-parameter seed. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** One parameter filled from its ParamInit (floats drawn in float64, stored in the param's dtype). */
export function initTensor(spec: ParamSpec, seed = 0): HostTensor {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const data = allocate(spec.dtype, n);
  const init: ParamInit = spec.init;
  const rng = new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ nameHash(spec.name)) >>> 0);
  const fill = (f: () => number) => {
    if (data instanceof BigInt64Array) for (let i = 0; i < n; i++) data[i] = BigInt(Math.round(f()));
    else for (let i = 0; i < n; i++) data[i] = f();
  };
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      fill(() => 1);
      break;
    case 'constant':
      fill(() => init.value);
      break;
    case 'normal': {
      const mean = init.mean ?? 0;
      fill(() => mean + init.std * rng.normal());
      break;
    }
    case 'uniform':
      fill(() => init.low + (init.high - init.low) * rng.next());
      break;
    default:
      throw new Error(`parameter '${spec.name}': unknown init ${JSON.stringify(init)}`);
  }
  return { dtype: spec.dtype as DType, shape: [...spec.shape], data };
}
