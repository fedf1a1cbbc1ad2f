/**
 * Passes over a built inference graph before it is written as a standalone ONNX file:
 * weights become initializers, unused values go, and MatMul weights can be quantised to
 * 8 bits in the form ONNX Runtime's dynamic quantisation writes (and fuses into its
 * DynamicQuantizeMatMul kernel): DynamicQuantizeLinear on the activations, MatMulInteger,
 * Cast, and one Mul by the product of the two scales.
 */
import { Graph, Tensor, type NodeRecord } from '../graph/graph.js';
import type { HostTensor } from '../graph/runtime.js';

/** Turns every parameter input into an initializer holding its value (a standalone graph). */
export function inlineParams(g: Graph, values: (name: string) => HostTensor | undefined): void {
  for (const [name, p] of g.params) {
    const v = values(name);
    if (!v) throw new Error(`export: no value for parameter '${name}'`);
    if (v.shape.join() !== p.spec.shape.join())
      throw new Error(
        `export: parameter '${name}' has shape [${v.shape}], the graph wants [${p.spec.shape}]`,
      );
    g.initializers.set(p.tensor.name, { dtype: v.dtype, shape: [...v.shape], data: v.data });
    const i = g.inputs.indexOf(p.tensor);
    if (i >= 0) g.inputs.splice(i, 1);
  }
}

/** Keeps only `keep` outputs, and the nodes, inputs and initializers they need. */
export function pruneGraph(g: Graph, keep?: readonly string[]): void {
  if (keep) {
    const missing = keep.filter((k) => !g.outputs.some((o) => o.name === k));
    if (missing.length) throw new Error(`prune: the graph has no output ${missing.join(', ')}`);
    const kept = g.outputs.filter((o) => keep.includes(o.name));
    g.outputs.splice(0, g.outputs.length, ...kept);
  }
  if (g.nodes.some((n) => Object.values(n.attrs).some((a) => a instanceof Graph)))
    throw new Error('prune: graphs with subgraphs (Loop) are not supported');
  const needed = new Set<string>(g.outputs.map((o) => o.tensor.name));
  const keepNodes: NodeRecord[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (!n.outputs.some((t) => needed.has(t.name))) continue;
    keepNodes.push(n);
    for (const t of n.inputs) if (t) needed.add(t.name);
  }
  keepNodes.reverse();
  g.nodes.splice(0, g.nodes.length, ...keepNodes);
  const inputs = g.inputs.filter((t) => needed.has(t.name));
  g.inputs.splice(0, g.inputs.length, ...inputs);
  for (const name of [...g.initializers.keys()]) if (!needed.has(name)) g.initializers.delete(name);
}

let counter = 0;
function makeNode(
  g: Graph,
  op: string,
  inputs: (Tensor | null)[],
  outs: { dtype: Tensor['dtype']; shape: Tensor['shape'] }[] | Tensor[],
  attrs: NodeRecord['attrs'] = {},
  scope = '',
): NodeRecord {
  const name = `${scope}/int8/${op}_${++counter}`;
  const rec: NodeRecord = { op, domain: '', name, inputs, outputs: [], attrs, where: new Error(), scope };
  rec.outputs = outs.map((o, i) =>
    o instanceof Tensor ? o : new Tensor(g, `${name}:${i}`, o.dtype, o.shape, 'node', rec),
  );
  return rec;
}

function constTensor(g: Graph, name: string, c: HostTensor): Tensor {
  g.initializers.set(name, { dtype: c.dtype, shape: [...c.shape], data: c.data });
  return new Tensor(g, name, c.dtype, [...c.shape], 'const');
}

export interface QuantizeSummary {
  matmuls: number;
  /**
   * Initializers that hold int8 values (two's complement bytes): the engine's dtypes stop
   * at uint8, so the ONNX bytes get their element type set afterwards (markInt8).
   */
  int8Initializers: string[];
  /** Float weight values replaced by 8-bit ones. */
  values: number;
  skipped: number;
}

/**
 * Quantises `x @ W^T` MatMuls whose weight is a 2-D initializer (linear layers): W^T is
 * stored as int8 (zero point 0, one scale per output column: symmetric, max-abs / 127, as
 * ONNX Runtime's quantize_dynamic does: u8 activations x s8 weights, the fast kernels);
 * activations are quantised per tensor at run time. Serialise with toOnnx, then markInt8. Attention products (no
 * constant operand), convolutions and embeddings stay float.
 */
export function quantizeMatMulsInt8(g: Graph, opts: { minValues?: number } = {}): QuantizeSummary {
  const min = opts.minValues ?? 4096;
  const out: NodeRecord[] = [];
  let matmuls = 0;
  let values = 0;
  let skipped = 0;
  const int8: string[] = [];
  for (const n of g.nodes) {
    if (n.op !== 'MatMul' || n.domain !== '') {
      out.push(n);
      continue;
    }
    const [x, b] = n.inputs as Tensor[];
    // W^T: a Transpose([1, 0]) of a 2-D initializer, or a 2-D initializer itself ([in, out]).
    let w: { data: Float32Array; rows: number; cols: number; transposed: boolean } | null = null;
    const tp = b.producer;
    const src =
      tp && tp.op === 'Transpose' && JSON.stringify(tp.attrs.perm) === '[1,0]' && tp.inputs[0]
        ? tp.inputs[0]
        : b;
    const c = g.initializers.get(src.name);
    if (c && c.dtype === 'float32' && c.shape.length === 2 && c.data.length >= min)
      w = { data: c.data as Float32Array, rows: c.shape[0], cols: c.shape[1], transposed: src !== b };
    if (!w || x.dtype !== 'float32') {
      if (!w) skipped += 1;
      out.push(n);
      continue;
    }
    // B = W^T is [in, out]: column j of B is row j of W.
    const K = w.transposed ? w.cols : w.rows;
    const N = w.transposed ? w.rows : w.cols;
    const at = (k: number, j: number) => (w.transposed ? w.data[j * w.cols + k] : w.data[k * w.cols + j]);
    const scale = new Float32Array(N);
    const q = new Uint8Array(K * N);
    for (let j = 0; j < N; j++) {
      let m = 0;
      for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(at(k, j)));
      const s = m > 0 ? m / 127 : 1;
      scale[j] = s;
      // Symmetric int8 in [-127, 127], stored as its two's complement byte.
      for (let k = 0; k < K; k++)
        q[k * N + j] = Math.max(-127, Math.min(127, Math.round(at(k, j) / s))) & 0xff;
    }
    const base = `${n.name}/int8`;
    const qw = constTensor(g, `${base}/weight_q`, { dtype: 'uint8', shape: [K, N], data: q });
    const zp = constTensor(g, `${base}/weight_zero_point`, {
      dtype: 'uint8',
      shape: [],
      data: Uint8Array.of(0),
    });
    int8.push(qw.name, zp.name);
    const ws = constTensor(g, `${base}/weight_scale`, { dtype: 'float32', shape: [N], data: scale });
    const dq = makeNode(
      g,
      'DynamicQuantizeLinear',
      [x],
      [
        { dtype: 'uint8', shape: x.shape },
        { dtype: 'float32', shape: [] },
        { dtype: 'uint8', shape: [] },
      ],
      {},
      n.scope,
    );
    const [xq, xs, xz] = dq.outputs;
    const y = n.outputs[0];
    const mm = makeNode(
      g,
      'MatMulInteger',
      [xq, qw, xz, zp],
      [{ dtype: 'int32', shape: y.shape }],
      {},
      n.scope,
    );
    const cast = makeNode(
      g,
      'Cast',
      [mm.outputs[0]],
      [{ dtype: 'float32', shape: y.shape }],
      { to: 1 },
      n.scope,
    );
    const sc = makeNode(g, 'Mul', [xs, ws], [{ dtype: 'float32', shape: [N] }], {}, n.scope);
    const mul = makeNode(g, 'Mul', [cast.outputs[0], sc.outputs[0]], [y], {}, n.scope);
    out.push(dq, mm, cast, sc, mul);
    matmuls += 1;
    values += K * N;
  }
  g.nodes.splice(0, g.nodes.length, ...out);
  pruneGraph(g);
  return { matmuls, values, skipped, int8Initializers: int8 };
}

/**
 * Sets the element type of the named initializers from UINT8 (2) to INT8 (3) in serialised
 * ONNX bytes, in place. src/graph/onnx.ts writes a TensorProto as dims, data_type, name,
 * raw_data: the data_type varint sits right before the name field. One pass over the bytes;
 * every name must be found exactly once.
 */
export function markInt8(bytes: Uint8Array, names: readonly string[]): Uint8Array {
  const want = new Set(names);
  const found = new Map<string, number>();
  const dec = new TextDecoder();
  for (let i = 0; i + 4 < bytes.length; i++) {
    if (bytes[i] !== 0x10 || bytes[i + 1] !== 0x02 || bytes[i + 2] !== 0x42) continue;
    // The name's length varint, then the name.
    let len = 0;
    let shift = 0;
    let p = i + 3;
    while (p < bytes.length && bytes[p] & 0x80 && shift < 28) {
      len |= (bytes[p] & 0x7f) << shift;
      shift += 7;
      p++;
    }
    if (p >= bytes.length) break;
    len |= bytes[p] << shift;
    p++;
    if (len <= 0 || len > 4096 || p + len > bytes.length) continue;
    const name = dec.decode(bytes.subarray(p, p + len));
    if (!want.has(name)) continue;
    if (found.has(name)) throw new Error(`markInt8: initializer '${name}' found twice`);
    found.set(name, i + 1);
  }
  for (const n of names) if (!found.has(n)) throw new Error(`markInt8: initializer '${n}' not found`);
  for (const at of found.values()) bytes[at] = 0x03;
  return bytes;
}
