/**
 * Serialises a Graph to an ONNX ModelProto (protobuf wire format, written by hand: the
 * few messages ONNX needs do not justify a protobuf runtime, and writing raw tensor
 * bytes directly avoids copies).
 */
import { ONNX_DTYPE } from './dtype.js';
import { type AttrValue, type ConstData, FloatAttr, FloatsAttr, Graph, type Tensor } from './graph.js';
import { isNamedDim } from './shape.js';

export const OPSET = 17;
export const IR_VERSION = 8;

/** Growable protobuf writer. */
class Writer {
  private buf = new Uint8Array(1024);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }
  /** Fast path for small non-negative ints (tags, lengths, dims). */
  uint(v: number): void {
    if (v < 0 || v > 0xfffffff) return this.varint(v);
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.len++] = v;
  }
  tag(field: number, wire: number): void {
    this.uint((field << 3) | wire);
  }
  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.uint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }
  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }
  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }
  float(field: number, v: number): void {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer).setFloat32(this.len, v, true);
    this.len += 4;
  }
  message(field: number, write: (w: Writer) => void): void {
    const inner = new Writer();
    write(inner);
    this.bytes(field, inner.finish());
  }
  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

function writeTensorProto(w: Writer, name: string, c: ConstData): void {
  for (const d of c.shape) w.int(1, d);
  w.int(2, ONNX_DTYPE[c.dtype]);
  w.string(8, name);
  const bytes = new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  w.bytes(9, bytes); // raw_data, little-endian like every machine ORT runs on
}

function writeValueInfo(w: Writer, t: Tensor, name = t.name): void {
  w.string(1, name);
  w.message(2, (tp) =>
    tp.message(1, (tt) => {
      tt.int(1, ONNX_DTYPE[t.dtype]);
      tt.message(2, (sh) => {
        for (const d of t.shape)
          sh.message(1, (dim) => {
            if (typeof d === 'number') dim.int(1, d);
            else if (isNamedDim(d)) dim.string(2, d);
            // derived dims stay unnamed: ORT infers them
          });
      });
    }),
  );
}

// AttributeProto.AttributeType
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7 } as const;

function writeAttribute(w: Writer, name: string, v: AttrValue): void {
  w.string(1, name);
  if (typeof v === 'number') {
    w.int(3, v);
    w.int(20, ATTR.INT);
  } else if (typeof v === 'string') {
    w.string(4, v);
    w.int(20, ATTR.STRING);
  } else if (v instanceof FloatAttr) {
    w.float(2, v.value);
    w.int(20, ATTR.FLOAT);
  } else if (v instanceof FloatsAttr) {
    for (const x of v.value) w.float(7, x);
    w.int(20, ATTR.FLOATS);
  } else if (v instanceof Graph) {
    w.message(6, (gw) => writeGraph(gw, v, true));
    w.int(20, ATTR.GRAPH);
  } else if (Array.isArray(v)) {
    for (const x of v as number[]) w.int(8, x);
    w.int(20, ATTR.INTS);
  } else {
    w.message(5, (tw) => writeTensorProto(tw, name, v as ConstData));
    w.int(20, ATTR.TENSOR);
  }
}

function writeGraph(w: Writer, g: Graph, subgraph = false): void {
  for (const n of g.nodes) {
    w.message(1, (nw) => {
      for (const t of n.inputs) nw.string(1, t ? t.name : '');
      for (const t of n.outputs) nw.string(2, t.name);
      nw.string(3, n.name);
      nw.string(4, n.op);
      for (const [k, v] of Object.entries(n.attrs)) nw.message(5, (aw) => writeAttribute(aw, k, v));
      if (n.domain) nw.string(7, n.domain);
    });
  }
  w.string(2, g.name);
  for (const [name, c] of g.initializers) w.message(5, (tw) => writeTensorProto(tw, name, c));
  for (const t of g.inputs) w.message(11, (vw) => writeValueInfo(vw, t));
  // The value's own name: a subgraph's outputs carry its value prefix.
  for (const o of g.outputs) w.message(12, (vw) => writeValueInfo(vw, o.tensor));
  void subgraph;
}

/** The ONNX model bytes of a graph. */
export function toOnnx(g: Graph, opts: { producer?: string; docString?: string } = {}): Uint8Array {
  const w = new Writer();
  w.int(1, IR_VERSION);
  w.string(2, opts.producer ?? 'lemer');
  if (opts.docString) w.string(6, opts.docString);
  w.message(7, (gw) => writeGraph(gw, g));
  w.message(8, (ow) => {
    ow.string(1, '');
    ow.int(2, OPSET);
  });
  // ONNX Runtime's contrib ops (fused kernels) live in their own domain.
  const domains = new Set<string>();
  const collect = (gr: Graph): void => {
    for (const n of gr.nodes) {
      if (n.domain) domains.add(n.domain);
      for (const a of Object.values(n.attrs)) if (a instanceof Graph) collect(a);
    }
  };
  collect(g);
  for (const d of domains)
    w.message(8, (ow) => {
      ow.string(1, d);
      ow.int(2, 1);
    });
  return w.finish();
}
