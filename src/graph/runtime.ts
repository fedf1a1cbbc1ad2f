/**
 * Running graphs on ONNX Runtime: one session per compiled graph, created once and
 * reused; feeds are checked against the graph's declared dtypes and shapes first, so a
 * wrong input fails with its name and both shapes, not deep inside a kernel.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { type DType, type TypedArray, dtypeOf } from './dtype.js';
import { callSite, Graph, GraphError, type NodeRecord, type Tensor } from './graph.js';
import { toOnnx } from './onnx.js';
import { fmtShape, isNamedDim } from './shape.js';

/** A tensor in host memory: what goes into and comes out of a run. */
export interface HostTensor {
  dtype: DType;
  shape: readonly number[];
  data: TypedArray;
}

export function hostTensor(
  data: TypedArray,
  shape: readonly number[],
  dtype: DType = dtypeOf(data),
): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length)
    throw new Error(`tensor of shape ${fmtShape(shape)} needs ${n} values, got ${data.length}`);
  return { dtype, shape: [...shape], data };
}

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu' | 'dml' | 'coreml';

export interface RuntimeOptions {
  executionProvider?: ExecutionProvider;
  /** Intra-op threads (ORT's default is one per core). */
  threads?: number;
  /** ORT's memory-pattern planner: off by default, measured ~30% less peak memory at equal speed. */
  enableMemPattern?: boolean;
  /** ORT's CPU arena allocator (default on): off hands memory back to malloc between runs. */
  enableCpuMemArena?: boolean;
  /** Profile every run (ORT's chrome-trace JSON); files start with this path prefix. */
  profilePrefix?: string;
  /** Write ORT's optimised model here, for inspection. */
  optimizedModelPath?: string;
  logSeverity?: 0 | 1 | 2 | 3 | 4;
}

export function availableProviders(): string[] {
  const list = (ort as unknown as { listSupportedBackends?: () => { name: string }[] }).listSupportedBackends;
  return list ? list().map((b) => b.name) : ['cpu'];
}

export class CompiledGraph {
  private constructor(
    readonly graph: Graph,
    readonly session: ort.InferenceSession,
    readonly options: RuntimeOptions,
  ) {}

  static async create(graph: Graph, options: RuntimeOptions = {}): Promise<CompiledGraph> {
    const ep = options.executionProvider ?? 'cpu';
    const have = availableProviders();
    if (!have.includes(ep))
      throw new GraphError(
        `execution provider '${ep}' is not available in this onnxruntime-node install (have: ${have.join(', ')})` +
          (ep === 'cuda' ? '; install the CUDA build: see README, "GPU"' : ''),
      );
    const bytes = toOnnx(graph);
    const so: ort.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      enableMemPattern: options.enableMemPattern ?? false,
      graphOptimizationLevel: 'all',
      logSeverityLevel: options.logSeverity ?? 3,
    };
    if (options.threads) so.intraOpNumThreads = options.threads;
    // ORT 1.30 rewrites x * sigmoid(x) into QuickGelu, which has no float64 kernel: keep
    // float64 graphs (gradient checks) as written.
    if (graph.floatType === 'float64')
      so.extra = { optimization: { disable_specified_optimizers: 'QuickGeluFusion' } };
    if (options.enableCpuMemArena !== undefined) so.enableCpuMemArena = options.enableCpuMemArena;
    if (options.optimizedModelPath) so.optimizedModelFilePath = options.optimizedModelPath;
    if (options.profilePrefix) {
      so.enableProfiling = true;
      so.profileFilePrefix = options.profilePrefix;
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, so);
    } catch (err) {
      throw new GraphError(
        `ONNX Runtime refused graph '${graph.name}': ${explain(graph, String((err as Error).message ?? err))}`,
      );
    }
    return new CompiledGraph(graph, session, options);
  }

  /** Runs the graph. Feeds are checked first; `fetch` limits which outputs come back. */
  async run(
    feeds: Record<string, HostTensor>,
    fetch?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds = checkFeeds(this.graph, feeds);
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = fetch ? await this.session.run(ortFeeds, fetch as string[]) : await this.session.run(ortFeeds);
    } catch (err) {
      throw new GraphError(
        `running graph '${this.graph.name}' failed: ${explain(this.graph, String((err as Error).message ?? err))}`,
      );
    }
    const result: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(out)) {
      const t = v as ort.Tensor;
      result[k] = { dtype: t.type as DType, shape: t.dims.map(Number), data: t.data as TypedArray };
    }
    return result;
  }

  /**
   * Ends profiling and returns the trace file's path (ORT's Node binding returns nothing:
   * the newest file with the prefix is it), or null when profiling was off.
   */
  endProfiling(): string | null {
    const prefix = this.options.profilePrefix;
    if (!prefix) return null;
    this.session.endProfiling();
    const dir = dirname(resolve(prefix));
    const base = basename(prefix);
    const files = readdirSync(dir)
      .filter((f) => f.startsWith(base) && f.endsWith('.json'))
      .map((f) => join(dir, f))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    return files[0] ?? null;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Checks every graph input is fed with the declared dtype and a consistent shape. */
export function checkFeeds(g: Graph, feeds: Record<string, HostTensor>): Record<string, ort.Tensor> {
  const dims = new Map<string, { size: number; by: string }>();
  const out: Record<string, ort.Tensor> = {};
  for (const t of g.inputs) {
    const f = feeds[t.name];
    if (!f)
      throw new GraphError(
        `graph '${g.name}': input '${t.name}' (${t.dtype}${fmtShape(t.shape)}) was not fed`,
      );
    checkOne(g, t, f, dims);
    out[t.name] = new ort.Tensor(f.dtype, f.data as never, f.shape as number[]);
  }
  for (const name of Object.keys(feeds))
    if (!g.inputs.some((t) => t.name === name))
      throw new GraphError(
        `graph '${g.name}' has no input '${name}' (inputs: ${g.inputs.map((t) => t.name).join(', ')})`,
      );
  return out;
}

function checkOne(g: Graph, t: Tensor, f: HostTensor, dims: Map<string, { size: number; by: string }>): void {
  const want = `${t.dtype}${fmtShape(t.shape)}`;
  const got = `${f.dtype}${fmtShape(f.shape)}`;
  const fail = (why: string) =>
    new GraphError(`graph '${g.name}': input '${t.name}' expects ${want}, got ${got}: ${why}`);
  if (f.dtype !== t.dtype) throw fail('dtype differs');
  if (f.shape.length !== t.rank) throw fail('rank differs');
  const n = f.shape.reduce((a, b) => a * b, 1);
  if (n !== f.data.length) throw fail(`shape needs ${n} values, data has ${f.data.length}`);
  t.shape.forEach((d, i) => {
    const s = f.shape[i];
    if (typeof d === 'number') {
      if (d !== s) throw fail(`dim ${i} must be ${d}`);
    } else if (isNamedDim(d)) {
      const seen = dims.get(d);
      if (seen && seen.size !== s) throw fail(`'${d}' is ${s} here but ${seen.size} in input '${seen.by}'`);
      if (!seen) dims.set(d, { size: s, by: t.name });
    }
  });
}

/** The nodes of a graph and of its subgraphs (Loop bodies), for error messages. */
function allNodes(g: Graph): NodeRecord[] {
  const out: NodeRecord[] = [];
  for (const n of g.nodes) {
    out.push(n);
    for (const a of Object.values(n.attrs)) if (a instanceof Graph) out.push(...allNodes(a));
  }
  return out;
}

/** Adds, to an ORT error, where in the model the node it names was built. */
function explain(g: Graph, msg: string): string {
  const named = allNodes(g).filter((n) => msg.includes(n.name));
  const longest = named.sort((a, b) => b.name.length - a.name.length)[0];
  if (!longest) return msg;
  const shapes = longest.inputs
    .filter((t): t is Tensor => !!t)
    .map((t) => `${t.name}: ${t.dtype}${fmtShape(t.shape)}`)
    .join('; ');
  const site = callSite(longest.where);
  return `${msg}\n  op ${longest.op} (${longest.name})${shapes ? `\n  inputs: ${shapes}` : ''}${site ? `\n  built at ${site}` : ''}`;
}
