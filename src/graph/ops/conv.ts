/**
 * 1-D convolution (torch.nn.functional.conv1d semantics: cross-correlation, NCT layout)
 * and its gradient rule.
 *
 * Float32 (and any type the provider has a Conv kernel for) records one ONNX `Conv`.
 * ONNX Runtime's CPU provider has no float64 Conv, so float64 graphs (gradient checks)
 * get an im2col + MatMul lowering made of ops that do have float64 kernels and their
 * own gradient rules (Pad, Gather, Reshape, MatMul). `impl` forces either form.
 */
import { defineGradient } from '../gradients.js';
import type { AttrValue, Tensor } from '../graph.js';
import { type Dim, derivedDim, fmtShape } from '../shape.js';
import { add } from './elementwise.js';
import { matmul } from './linalg.js';
import { reduceSum } from './reduce.js';
import { gather, pad, reshape, slice, transpose } from './shape.js';
import { node1, requireFloat, sameDtype, shapeOf } from './util.js';

export interface Conv1dOptions {
  stride?: number;
  /** Zeros added on both sides (a number) or [left, right]. */
  padding?: number | readonly [number, number];
  dilation?: number;
  groups?: number;
  /**
   * 'conv': one ONNX Conv; 'im2col': Gather + MatMul (runs in float64 on the CPU
   * provider). Default: 'im2col' for float64, 'conv' otherwise.
   */
  impl?: 'conv' | 'im2col';
}

interface ConvParams {
  stride: number;
  padL: number;
  padR: number;
  dilation: number;
  groups: number;
  k: number;
  cIn: number;
  cOut: number;
}

const isPosInt = (v: number): boolean => Number.isInteger(v) && v >= 1;

/** Output length of a 1-D convolution, or null when the input length is symbolic. */
export function conv1dOutputLength(
  t: Dim,
  kernel: number,
  opts: { stride?: number; padding?: number | readonly [number, number]; dilation?: number } = {},
): number | null {
  if (typeof t !== 'number') return null;
  const [l, r] = typeof opts.padding === 'number' ? [opts.padding, opts.padding] : (opts.padding ?? [0, 0]);
  const s = opts.stride ?? 1;
  const d = opts.dilation ?? 1;
  return Math.floor((t + l + r - d * (kernel - 1) - 1) / s) + 1;
}

/**
 * y[n, o, t] = b[o] + sum_{c, k} w[o, c, k] * xpad[n, g(o) * C_in/groups + c, t * stride + k * dilation]
 *
 * x: [N, C_in, T] (T may be symbolic: the output length is then a derived dim);
 * w: [C_out, C_in / groups, K] (static); b: [C_out] or null.
 */
export function conv1d(x: Tensor, w: Tensor, b: Tensor | null = null, opts: Conv1dOptions = {}): Tensor {
  const g = x.graph;
  const op = 'Conv';
  const ins = b ? [x, w, b] : [x, w];
  requireFloat(op, ...ins);
  sameDtype(op, x, w);
  if (b) sameDtype(op, x, b);
  if (x.rank !== 3) throw g.error(op, `conv1d input must be [batch, channels, time], got rank ${x.rank}`, ins);
  if (w.rank !== 3) throw g.error(op, `conv1d weight must be [out_channels, in_channels / groups, kernel], got rank ${w.rank}`, ins);
  const [cOut, cInG, k] = w.shape;
  if (typeof cOut !== 'number' || typeof cInG !== 'number' || typeof k !== 'number')
    throw g.error(op, `conv1d weight needs a static shape, got ${fmtShape(w.shape)}`, ins);
  const cIn = x.shape[1];
  if (typeof cIn !== 'number') throw g.error(op, `conv1d needs a static channel dim, got '${cIn}'`, ins);
  const stride = opts.stride ?? 1;
  const dilation = opts.dilation ?? 1;
  const groups = opts.groups ?? 1;
  const [padL, padR] = typeof opts.padding === 'number' ? [opts.padding, opts.padding] : (opts.padding ?? [0, 0]);
  if (!isPosInt(stride) || !isPosInt(dilation) || !isPosInt(groups))
    throw g.error(op, `stride, dilation and groups must be integers >= 1, got stride ${stride}, dilation ${dilation}, groups ${groups}`, ins);
  if (!Number.isInteger(padL) || !Number.isInteger(padR) || padL < 0 || padR < 0)
    throw g.error(op, `padding must be integers >= 0, got [${padL}, ${padR}]`, ins);
  if (cIn % groups !== 0) throw g.error(op, `groups ${groups} does not divide the ${cIn} input channels`, ins);
  if (cOut % groups !== 0) throw g.error(op, `groups ${groups} does not divide the ${cOut} output channels`, ins);
  if (cInG * groups !== cIn)
    throw g.error(
      op,
      `input has ${cIn} channels but the weight expects ${cInG * groups} (${cInG} per group x ${groups} groups)`,
      ins,
    );
  if (b && (b.rank !== 1 || b.shape[0] !== cOut))
    throw g.error(op, `bias must be [${cOut}], got ${fmtShape(b.shape)}`, ins);
  const tIn = x.shape[2];
  const span = dilation * (k - 1) + 1;
  let tOut: Dim;
  if (typeof tIn === 'number') {
    if (tIn + padL + padR < span)
      throw g.error(
        op,
        `input length ${tIn} (+ padding ${padL}+${padR}) is shorter than the kernel's span ${span} (kernel ${k}, dilation ${dilation})`,
        ins,
      );
    tOut = conv1dOutputLength(tIn, k, { stride, padding: [padL, padR], dilation })!;
  } else {
    tOut = derivedDim('conv');
  }
  const p: ConvParams = { stride, padL, padR, dilation, groups, k, cIn, cOut };
  const impl = opts.impl ?? (x.dtype === 'float64' ? 'im2col' : 'conv');
  if (impl === 'im2col') return conv1dIm2col(x, w, b, p, tOut);
  const attrs: Record<string, AttrValue> = {
    kernel_shape: [k],
    strides: [stride],
    pads: [padL, padR],
    dilations: [dilation],
    group: groups,
  };
  return node1(g, op, ins, x.dtype, [x.shape[0], cOut, tOut], attrs);
}

/** Column indices idx[k, t] = k * dilation + t * stride into the padded input. */
function columnIndices(xp: Tensor, p: ConvParams, tOut: Dim): Tensor {
  const g = xp.graph;
  if (typeof tOut === 'number') {
    const idx = new BigInt64Array(p.k * tOut);
    for (let k = 0; k < p.k; k++) for (let t = 0; t < tOut; t++) idx[k * tOut + t] = BigInt(k * p.dilation + t * p.stride);
    return g.constant(idx, [p.k, tOut], 'conv_cols');
  }
  // Run-time output length: (T_padded - span) / stride + 1 (integer division of non-negatives).
  const tp = node1(g, 'Gather', [shapeOf(xp), g.int64s([2])], 'int64', [1], { axis: 0 });
  const span = p.dilation * (p.k - 1) + 1;
  const n = node1(
    g,
    'Add',
    [node1(g, 'Div', [node1(g, 'Sub', [tp, g.int64s([span])], 'int64', [1]), g.int64s([p.stride])], 'int64', [1]), g.int64s([1])],
    'int64',
    [1],
  );
  const n0 = node1(g, 'Squeeze', [n, g.int64s([0])], 'int64', []);
  const t = node1(g, 'Range', [g.scalar(0, 'int64'), n0, g.scalar(1, 'int64')], 'int64', [tOut]);
  const ts = node1(g, 'Mul', [t, g.scalar(p.stride, 'int64')], 'int64', [tOut]);
  const offs = BigInt64Array.from({ length: p.k }, (_, k) => BigInt(k * p.dilation));
  return node1(
    g,
    'Add',
    [node1(g, 'Unsqueeze', [ts, g.int64s([0])], 'int64', [1, tOut]), g.constant(offs, [p.k, 1], 'conv_offsets')],
    'int64',
    [p.k, tOut],
  );
}

/** The im2col form: cols [N, C_in, K, T_out] gathered from the padded input, then one batched MatMul. */
function conv1dIm2col(x: Tensor, w: Tensor, b: Tensor | null, p: ConvParams, tOut: Dim): Tensor {
  const xp = p.padL || p.padR ? pad(x, [0, 0, p.padL, 0, 0, p.padR]) : x;
  const cols = gather(xp, columnIndices(xp, p, tOut), 2); // [N, C_in, K, T_out]
  const cg = p.cIn / p.groups;
  const og = p.cOut / p.groups;
  const colsG = reshape(cols, [0, p.groups, cg * p.k, tOut]); // [N, G, C_in/G * K, T_out]
  const wG = reshape(w, [p.groups, og, cg * p.k]); // [G, C_out/G, C_in/G * K]
  let y = reshape(matmul(wG, colsG), [0, p.cOut, -1]); // [N, C_out, T_out]
  if (b) y = add(y, reshape(b, [p.cOut, 1]));
  return y;
}

// ---- gradient rule ----

/*
 * dx: the transposed convolution of dy with the same weight (ONNX ConvTranspose uses
 * the forward weight layout [C_out, C_in/G, K] as its [C_in', C_out'/G, K], and its
 * group, stride, dilation and pads mean exactly the forward ones). Input positions
 * past the last window ((T + pads - span) % stride of them) get no gradient; with a
 * static T, output_padding adds them as zeros; with a symbolic T, the right pad is
 * left uncropped, output_padding = stride - 1 makes the result at least T long, and a
 * Slice to the run-time T cuts it.
 *
 * dw: a Conv with batch and channel roles swapped. For group gr, output channel o,
 * input channel c of that group and tap k,
 *   dw[o, c, k] = sum_{n, t} dy[n, o, t] * xpad[n, gr*Cg + c, k*dilation + t*stride],
 * which is a convolution whose "batch" is c (Cg of them), whose "channels" are
 * (gr, n) (G*N of them, G groups of N), whose "kernel" is dy[n, o, :] (length T_out)
 * read with dilation = the forward stride, and whose stride is the forward dilation.
 * Its output length is >= K (the extra taps fall past the last window): slice to K.
 * This keeps the work in ONNX Runtime's Conv kernel (im2col of a small matrix and one
 * GEMM per "batch" item), with no K-fold copy of the input as an explicit im2col would
 * need; for the wav2vec2 first layer (C_in = 1) the swapped conv is a single GEMM of
 * [512 x 4*T_out] by [4*T_out x 10]. Groups (including depthwise, G = C_in) ride on
 * the swapped conv's own group attribute.
 *
 * db: dy summed over batch and time.
 */
defineGradient('Conv', ({ node, x, dy, needs }) => {
  const g = node.outputs[0].graph;
  const [xin, w] = [x[0]!, x[1]!];
  const d = dy[0]!;
  const a = node.attrs;
  const stride = (a.strides as number[])[0];
  const dilation = (a.dilations as number[])[0];
  const [padL, padR] = a.pads as number[];
  const groups = a.group as number;
  const [cOut, cInG, k] = w.shape as number[];
  const tIn = xin.shape[2];
  const span = dilation * (k - 1) + 1;
  let dx: Tensor | null = null;
  let dw: Tensor | null = null;
  let db: Tensor | null = null;

  if (needs(0)) {
    const ct = (pads: number[], outPad: number, shape: Dim[]): Tensor =>
      node1(g, 'ConvTranspose', [d, w], d.dtype, shape, {
        kernel_shape: [k],
        strides: [stride],
        dilations: [dilation],
        group: groups,
        pads,
        output_padding: [outPad],
      });
    if (typeof tIn === 'number') {
      const rem = (tIn + padL + padR - span) % stride;
      dx = ct([padL, padR], rem, xin.shape as Dim[]);
    } else {
      const long = ct([padL, 0], stride - 1, [xin.shape[0], xin.shape[1], derivedDim('convT')]);
      const end = node1(g, 'Gather', [shapeOf(xin), g.int64s([2])], 'int64', [1], { axis: 0 });
      dx = node1(g, 'Slice', [long, g.int64s([0]), end, g.int64s([2]), g.int64s([1])], d.dtype, xin.shape);
    }
  }

  if (needs(1)) {
    const n = xin.shape[0];
    // x' [Cg, G*N, T]: channel (gr, n) holds x[n, gr*Cg + c, :].
    let xs: Tensor;
    if (groups === 1) xs = transpose(xin, [1, 0, 2]);
    else {
      const x4 = transpose(reshape(xin, [0, groups, cInG, -1]), [2, 1, 0, 3]); // [Cg, G, N, T]
      const spec =
        typeof tIn === 'number'
          ? g.int64s([cInG, -1, tIn])
          : node1(g, 'Concat', [g.int64s([cInG, -1]), node1(g, 'Gather', [shapeOf(xin), g.int64s([2])], 'int64', [1], { axis: 0 })], 'int64', [3], { axis: 0 });
      const gn = typeof n === 'number' ? groups * n : derivedDim('groups_x_batch');
      xs = node1(g, 'Reshape', [x4, spec], xin.dtype, [cInG, gn, tIn]);
    }
    const ws = transpose(d, [1, 0, 2]); // [C_out, N, T_out]
    const tOut = d.shape[2];
    let kOut: Dim = derivedDim('taps');
    if (typeof tIn === 'number' && typeof tOut === 'number')
      kOut = Math.floor((tIn + padL + padR - stride * (tOut - 1) - 1) / dilation) + 1;
    const full = node1(g, 'Conv', [xs, ws], xin.dtype, [cInG, cOut, kOut], {
      strides: [dilation],
      dilations: [stride],
      pads: [padL, padR],
      group: groups,
    }); // [Cg, C_out, K']
    let t = transpose(full, [1, 0, 2]); // [C_out, Cg, K']
    if (kOut !== k) t = slice(t, [0], [k], [2]);
    dw = t;
  }

  if (needs(2)) db = reduceSum(d, [0, 2]);
  return [dx, dw, db];
});
