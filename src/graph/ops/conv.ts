/**
 * 1-D convolution (torch.nn.functional.conv1d semantics: cross-correlation, NCT layout)
 * and instance normalisation (the fused kernel behind GroupNorm), with gradient rules.
 *
 * Float32 (and any type the provider has a Conv kernel for) records one ONNX `Conv`.
 * ONNX Runtime's CPU provider has no float64 Conv, so float64 graphs (gradient checks)
 * get an im2col + MatMul lowering made of ops that do have float64 kernels and their
 * own gradient rules (Pad, Gather, Reshape, MatMul). `impl` forces either form.
 */
import { defineGradient } from '../gradients.js';
import { f, type AttrValue, type FloatAttr, type Tensor } from '../graph.js';
import { type Dim, derivedDim, fmtShape } from '../shape.js';
import { add, cast, mul, reciprocal, sqrt, sub } from './elementwise.js';
import { matmul } from './linalg.js';
import { reduceMean, reduceSum } from './reduce.js';
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
  if (x.rank !== 3)
    throw g.error(op, `conv1d input must be [batch, channels, time], got rank ${x.rank}`, ins);
  if (w.rank !== 3)
    throw g.error(
      op,
      `conv1d weight must be [out_channels, in_channels / groups, kernel], got rank ${w.rank}`,
      ins,
    );
  const [cOut, cInG, k] = w.shape;
  if (typeof cOut !== 'number' || typeof cInG !== 'number' || typeof k !== 'number')
    throw g.error(op, `conv1d weight needs a static shape, got ${fmtShape(w.shape)}`, ins);
  const cIn = x.shape[1];
  if (typeof cIn !== 'number') throw g.error(op, `conv1d needs a static channel dim, got '${cIn}'`, ins);
  const stride = opts.stride ?? 1;
  const dilation = opts.dilation ?? 1;
  const groups = opts.groups ?? 1;
  const [padL, padR] =
    typeof opts.padding === 'number' ? [opts.padding, opts.padding] : (opts.padding ?? [0, 0]);
  if (!isPosInt(stride) || !isPosInt(dilation) || !isPosInt(groups))
    throw g.error(
      op,
      `stride, dilation and groups must be integers >= 1, got stride ${stride}, dilation ${dilation}, groups ${groups}`,
      ins,
    );
  if (!Number.isInteger(padL) || !Number.isInteger(padR) || padL < 0 || padR < 0)
    throw g.error(op, `padding must be integers >= 0, got [${padL}, ${padR}]`, ins);
  if (cIn % groups !== 0)
    throw g.error(op, `groups ${groups} does not divide the ${cIn} input channels`, ins);
  if (cOut % groups !== 0)
    throw g.error(op, `groups ${groups} does not divide the ${cOut} output channels`, ins);
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

/**
 * Column indices k * dilation + t * stride into the padded input's time axis (the last
 * axis of `xp`, or axis `timeAxis`), as idx[k, t] ('kt') or idx[t, k] ('tk').
 */
function columnIndices(
  xp: Tensor,
  p: ConvParams,
  tOut: Dim,
  order: 'kt' | 'tk' = 'kt',
  timeAxis = 2,
): Tensor {
  const g = xp.graph;
  if (typeof tOut === 'number') {
    const idx = new BigInt64Array(p.k * tOut);
    for (let k = 0; k < p.k; k++)
      for (let t = 0; t < tOut; t++)
        idx[order === 'kt' ? k * tOut + t : t * p.k + k] = BigInt(k * p.dilation + t * p.stride);
    return g.constant(idx, order === 'kt' ? [p.k, tOut] : [tOut, p.k], 'conv_cols');
  }
  // Run-time output length: (T_padded - span) / stride + 1 (integer division of non-negatives).
  const tp = node1(g, 'Gather', [shapeOf(xp), g.int64s([timeAxis])], 'int64', [1], { axis: 0 });
  const span = p.dilation * (p.k - 1) + 1;
  const n = node1(
    g,
    'Add',
    [
      node1(
        g,
        'Div',
        [node1(g, 'Sub', [tp, g.int64s([span])], 'int64', [1]), g.int64s([p.stride])],
        'int64',
        [1],
      ),
      g.int64s([1]),
    ],
    'int64',
    [1],
  );
  const n0 = node1(g, 'Squeeze', [n, g.int64s([0])], 'int64', []);
  const t = node1(g, 'Range', [g.scalar(0, 'int64'), n0, g.scalar(1, 'int64')], 'int64', [tOut]);
  const ts = node1(g, 'Mul', [t, g.scalar(p.stride, 'int64')], 'int64', [tOut]);
  const offs = BigInt64Array.from({ length: p.k }, (_, k) => BigInt(k * p.dilation));
  if (order === 'tk')
    return node1(
      g,
      'Add',
      [
        node1(g, 'Unsqueeze', [ts, g.int64s([1])], 'int64', [tOut, 1]),
        g.constant(offs, [1, p.k], 'conv_offsets'),
      ],
      'int64',
      [tOut, p.k],
    );
  return node1(
    g,
    'Add',
    [
      node1(g, 'Unsqueeze', [ts, g.int64s([0])], 'int64', [1, tOut]),
      g.constant(offs, [p.k, 1], 'conv_offsets'),
    ],
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
 * dx, stride 1: a Conv of dy with the time-flipped weight, in/out channels swapped
 * within each group, pads (K-1)*dilation - pad: ONNX Runtime's Conv kernels are far
 * faster than its ConvTranspose for depthwise and grouped weights (measured, batch 4:
 * depthwise k=31 over 256 x 1200: ConvTranspose 101 ms vs the forward Conv 5 ms;
 * wav2vec2's positional conv k=128 groups 16: 630 ms vs 128 ms).
 *
 * dx, stride > 1 (or a pad wider than the kernel's reach): the transposed convolution
 * of dy with the same weight (ONNX ConvTranspose uses the forward weight layout
 * [C_out, C_in/G, K] as its [C_in', C_out'/G, K], and its group, stride, dilation and
 * pads mean exactly the forward ones). Input positions
 * past the last window ((T + pads - span) % stride of them) get no gradient; with a
 * static T, output_padding adds them as zeros; with a symbolic T, the right pad is
 * left uncropped, output_padding = stride - 1 makes the result at least T long, and a
 * Slice to the run-time T cuts it.
 *
 * dw[o, c, k] = sum_{n, t} dy[n, o, t] * xpad[n, gr(o)*Cg + c, k*dilation + t*stride],
 * Cg = C_in / groups. Two formulations, picked by which keeps ONNX Runtime's kernels
 * compute-bound (measured, batch 4, 2 threads; any correct formulation works for any
 * groups, this is about speed):
 *
 * - groups == 1 and Cg > 1 (wav2vec2 conv layers 2-7, pointwise convs): im2col +
 *   batched MatMul. x is transposed to [N, T, C] so that one Gather along time with
 *   indices [T_out, K] copies contiguous C-long rows into cols [N, T_out, K*C]; then
 *   dw = sum_n dy[n] @ cols[n] (one GEMM of [C_out x T_out] by [T_out x K*C] per
 *   sample; a pointwise conv needs no cols at all, ORT folds the transpose into the
 *   MatMul). Costs one K-fold copy of x/stride; for Conv1d(512, 512, 3, stride 2) over
 *   9599 frames: 230 ms where the swapped conv below took 2.2 s, because its GEMM has
 *   only K' = 3 columns and streams all of dy once per input channel.
 *
 * - otherwise (C_in / groups == 1: the wav2vec2 first layer and depthwise convs; and
 *   grouped convs such as the positional conv, whose K is large): a Conv with batch
 *   and channel roles swapped. Its "batch" is c (Cg items), its "kernel" is dy read
 *   with dilation = the forward stride, its stride is the forward dilation, and its
 *   output length K' >= K is sliced to K (the extra taps fall past the last window).
 *   With a static batch the batch joins the groups: x' = [Cg, N*G, T] (for Cg == 1 a
 *   free reshape), dy reshaped to N*C_out one-channel kernels (free), group N*G,
 *   output [Cg, N*C_out, K'] summed over n: no copy of dy at all. With a symbolic
 *   batch (an attribute cannot depend on it) the batch is the contracted channel axis
 *   instead and dy is transposed to [C_out, N, T_out]. For the wav2vec2 first layer
 *   (Conv1d(1, 512, 10, stride 5) over 4 x 48000 samples) forward + dw take 10 ms
 *   (static batch) and 16 ms (symbolic batch, the 79 MB transpose of dy).
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
    const reach = dilation * (k - 1);
    if (stride === 1 && padL <= reach && padR <= reach) {
      // Stride 1: a plain Conv of dy with the weight flipped in time and in/out channels
      // swapped per group, padded by reach - pad on each side (length T exactly).
      const cOutG = cOut / groups;
      let wt = w;
      if (cOutG > 1 || cInG > 1)
        wt = reshape(transpose(reshape(w, [groups, cOutG, cInG, k]), [0, 2, 1, 3]), [
          groups * cInG,
          cOutG,
          k,
        ]);
      const wf =
        k > 1
          ? node1(
              g,
              'Slice',
              [wt, g.int64s([k - 1]), g.int64s([-(2 ** 53)]), g.int64s([2]), g.int64s([-1])],
              wt.dtype,
              wt.shape,
            )
          : wt; // reversed in time
      dx = node1(g, 'Conv', [d, wf], d.dtype, xin.shape, {
        kernel_shape: [k],
        strides: [1],
        pads: [reach - padL, reach - padR],
        dilations: [dilation],
        group: groups,
      });
    } else if (typeof tIn === 'number') {
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
    const tOut = d.shape[2];
    let kOut: Dim = derivedDim('taps');
    if (typeof tIn === 'number' && typeof tOut === 'number')
      kOut = Math.floor((tIn + padL + padR - stride * (tOut - 1) - 1) / dilation) + 1;
    const swapped = { strides: [dilation], dilations: [stride], pads: [padL, padR] };
    let t: Tensor; // [C_out, Cg, K'] (K' = K on the im2col path)
    if (groups === 1 && cInG > 1) {
      const p: ConvParams = { stride, padL, padR, dilation, groups, k, cIn: cInG, cOut };
      kOut = k;
      if (k === 1 && stride === 1 && padL === 0 && padR === 0) {
        // Pointwise: dW = sum_n dy[n] x[n]^T (ORT folds the transpose into the MatMul).
        t = reshape(reduceSum(matmul(d, transpose(xin, [0, 2, 1])), [0]), [cOut, cInG, 1]);
      } else {
        const xt = transpose(xin, [0, 2, 1]); // [N, T, C]
        const xp = padL || padR ? pad(xt, [0, padL, 0, 0, padR, 0]) : xt;
        const cols = reshape(gather(xp, columnIndices(xp, p, tOut, 'tk', 1), 1), [0, tOut, k * cInG]); // [N, T_out, K*C]
        t = transpose(reshape(reduceSum(matmul(d, cols), [0]), [cOut, k, cInG]), [0, 2, 1]);
      }
    } else if (typeof n === 'number') {
      // Static batch: the batch joins the groups, so dy needs no transpose. x' [Cg, N*G, T]
      // (channel (n, gr) = x[n, gr*Cg + c, :]; for Cg == 1 a free reshape), dy as N*G*C_out/G
      // kernels of one channel each, group N*G; out [Cg, N*C_out, K'] summed over n.
      const xs =
        cInG === 1
          ? reshape(xin, [1, n * groups, -1])
          : reshape(transpose(reshape(xin, [n, groups, cInG, -1]), [2, 0, 1, 3]), [cInG, n * groups, -1]);
      const ws = node1(g, 'Reshape', [d, g.int64s([n * cOut, 1, -1])], d.dtype, [n * cOut, 1, tOut]);
      const full = node1(g, 'Conv', [xs, ws], xin.dtype, [cInG, n * cOut, kOut], {
        ...swapped,
        group: n * groups,
      });
      const summed = reduceSum(
        node1(g, 'Reshape', [full, g.int64s([cInG, n, cOut, -1])], d.dtype, [cInG, n, cOut, kOut]),
        [1],
      );
      t = cInG === 1 ? reshape(summed, [cOut, 1, -1]) : transpose(summed, [1, 0, 2]);
    } else {
      // Symbolic batch: the batch is the swapped conv's channel axis (contracted), dy
      // transposed to [C_out, N, T_out] kernels. x' [Cg, G*N, T]: channel (gr, n).
      let xs: Tensor;
      if (groups === 1) xs = transpose(xin, [1, 0, 2]);
      else {
        const x4 = transpose(reshape(xin, [0, groups, cInG, -1]), [2, 1, 0, 3]); // [Cg, G, N, T]
        const spec =
          typeof tIn === 'number'
            ? g.int64s([cInG, -1, tIn])
            : node1(
                g,
                'Concat',
                [
                  g.int64s([cInG, -1]),
                  node1(g, 'Gather', [shapeOf(xin), g.int64s([2])], 'int64', [1], { axis: 0 }),
                ],
                'int64',
                [3],
                { axis: 0 },
              );
        xs = node1(g, 'Reshape', [x4, spec], xin.dtype, [cInG, derivedDim('groups_x_batch'), tIn]);
      }
      const ws = transpose(d, [1, 0, 2]); // [C_out, N, T_out]
      const full = node1(g, 'Conv', [xs, ws], xin.dtype, [cInG, cOut, kOut], { ...swapped, group: groups }); // [Cg, C_out, K']
      t = transpose(full, [1, 0, 2]);
    }
    if (kOut !== k) t = slice(t, [0], [k], [2]);
    dw = t;
  }

  if (needs(2)) db = reduceSum(d, [0, 2]);
  return [dx, dw, db];
});

// ---- instance normalisation ----

/**
 * ONNX InstanceNormalization: x [N, C, L] normalised over L for each (n, c) with the
 * biased variance, then y = scale[c] * xhat + bias[c]. This is GroupNorm with
 * groups == channels (wav2vec2's first layer), and any GroupNorm after a reshape to
 * [N, groups, C/groups * T]. One fused forward pass where the composed form takes five,
 * and a gradient rule (below) with fewer passes than the op-by-op chain.
 * The CPU provider has no float64 kernel: float64 lowers to ReduceMean / Sub / Mul.
 */
export function instanceNorm(x: Tensor, scale: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const g = x.graph;
  const op = 'InstanceNormalization';
  requireFloat(op, x, scale, bias);
  sameDtype(op, x, scale);
  sameDtype(op, x, bias);
  const c = x.shape[1];
  if (x.rank !== 3 || typeof c !== 'number')
    throw g.error(op, `needs x [batch, channels, length] with static channels, got ${fmtShape(x.shape)}`, [
      x,
      scale,
      bias,
    ]);
  for (const p of [scale, bias])
    if (p.rank !== 1 || p.shape[0] !== c)
      throw g.error(op, `scale and bias must be [${c}]`, [x, scale, bias]);
  if (x.dtype === 'float64') {
    const centred = sub(x, reduceMean(x, 2, true));
    const variance = reduceMean(mul(centred, centred), 2, true);
    const k = mul(reciprocal(sqrt(add(variance, eps))), reshape(scale, [c, 1]));
    return add(mul(centred, k), reshape(bias, [c, 1]));
  }
  return node1(g, op, [x, scale, bias], x.dtype, x.shape, { epsilon: f(eps) });
}

/*
 * Per row (n, c) of length L, with xhat = (x - mean) * r, r = 1 / sqrt(var + eps),
 * a = mean(dy), b = mean(dy * xhat):
 *   dx     = scale * r * (dy - a - xhat * b)
 *   dscale = sum_n L * b,   dbias = sum_n L * a.
 * The op does not output its statistics: one LayerNormalization over the last axis
 * (unit scale, zero shift) recomputes xhat, mean and r in one fused pass (measured
 * faster than ReduceMean + Sub + ReduceSumSquare). The rule then costs that pass,
 * 5 full-size writes and 2 reductions, against about 13 writes for
 * LayerNormalization's own rule plus a separate affine.
 */
defineGradient('InstanceNormalization', ({ node, x, dy, needs }) => {
  const [xin, scale] = [x[0]!, x[1]!];
  const g = xin.graph;
  const eps = (node.attrs.epsilon as FloatAttr).value;
  const c = xin.shape[1] as number;
  const d = dy[0]!;
  const lenI = node1(g, 'Gather', [shapeOf(xin), g.int64s([2])], 'int64', [1], { axis: 0 });
  const len = cast(lenI, xin.dtype); // [1]
  const stat = [xin.shape[0], c, 1];
  const [xhat, , invStd] = g.node(
    'LayerNormalization',
    [
      xin,
      node1(g, 'Expand', [g.scalar(1, xin.dtype), lenI], xin.dtype, [xin.shape[2]]),
      node1(g, 'Expand', [g.scalar(0, xin.dtype), lenI], xin.dtype, [xin.shape[2]]),
    ],
    [
      { dtype: xin.dtype, shape: xin.shape },
      { dtype: xin.dtype, shape: stat },
      { dtype: xin.dtype, shape: stat },
    ],
    { axis: -1, epsilon: f(eps), stash_type: 1 },
  );
  const a = needs(0) || needs(2) ? reduceMean(d, 2, true) : null;
  const b = needs(0) || needs(1) ? reduceMean(mul(d, xhat), 2, true) : null;
  let dx: Tensor | null = null;
  if (needs(0)) dx = mul(sub(sub(d, a!), mul(xhat, b!)), mul(invStd, reshape(scale, [c, 1])));
  const perChannel = (t: Tensor): Tensor => reduceSum(mul(t, len), [0, 2]); // [N, C, 1] -> [C]
  return [dx, needs(1) ? perChannel(b!) : null, needs(2) ? perChannel(a!) : null];
});
