/**
 * The log-mel conformer as a graph builder: `input_features` [B, frames, mel] and
 * `attention_mask` [B, frames] -> conv subsampling x4 (two Conv2d(3x3, stride 2) + ReLU,
 * as ESPnet's Conv2dSubsampling and torchaudio's conformer front end), a linear to
 * hidden_size, then conformer blocks (Gulati et al. 2020): half-step feed-forward,
 * Transformer-XL relative-position self-attention (pos_bias_u / pos_bias_v, as
 * Wav2Vec2ConformerSelfAttention with position_embeddings_type 'relative'), depthwise
 * conv module (pointwise conv + GLU, depthwise conv, BatchNorm, swish, pointwise conv),
 * half-step feed-forward, LayerNorm.
 *
 * Scopes are the parameter names: `subsampling.conv.0`, `subsampling.conv.2`,
 * `subsampling.out`, then `encoder.layers.N.*` with Wav2Vec2ConformerEncoderLayer's
 * attribute names (`ffn1`, `self_attn.linear_q`, `self_attn.pos_bias_u`,
 * `conv_module.depthwise_conv`, `final_layer_norm`, ...).
 *
 * Padding: padded frames are zeroed before each depthwise convolution (as WeNet does), so
 * a padded row's valid frames equal the same utterance run alone in eval form (Hugging
 * Face's wav2vec2-conformer lets padding leak through that conv). In training form the
 * BatchNorm statistics still include padded frames, as in ESPnet.
 */
import type { Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import { node1, shapeOf } from '../../graph/ops/util.js';
import { derivedDim } from '../../graph/shape.js';
import { conv1dLayer } from '../../graph/layers/conv.js';
import { batchNorm1d, layerNormLayer } from '../../graph/layers/norm.js';
import { linear } from '../../graph/layers/linear.js';
import { glu, silu } from '../../graph/layers/activations.js';
import {
  CONFORMER_ATTENTION_NAMES,
  multiHeadAttention,
  relativeShift,
} from '../../graph/layers/attention.js';
import type { EncoderOutput } from '../encoder.js';
import { type ConformerArch, halve } from './config.js';

const swapCT = (x: Tensor): Tensor => ops.transpose(x, [0, 2, 1]);

/** Axis `a` of x's run-time shape, as an int64 [1]. */
function dimOf(x: Tensor, a: number): Tensor {
  const g = x.graph;
  return node1(g, 'Gather', [shapeOf(x), g.int64s([a])], 'int64', [1], { axis: 0 });
}

/**
 * torch.nn.Conv2d(cIn, cOut, 3, stride 2) + bias on x [B, C, T, F] (F static, T run-time):
 * params `<name>.weight` [cOut, C, 3, 3], `<name>.bias` [cOut]. Lowered onto the engine's
 * Conv1d (which has gradient rules and a float64 form): the three frequency taps are
 * gathered into channels and the output frequencies folded into the batch, so one 1-D
 * conv over time with weight [cOut, 3C, 3] does the whole 2-D conv.
 */
export function conv2dStride2(x: Tensor, name: string, cOut: number): Tensor {
  const g = x.graph;
  const [c, f] = [x.shape[1], x.shape[3]];
  if (x.rank !== 4 || typeof c !== 'number' || typeof f !== 'number' || f < 3)
    throw g.error(
      'conv2dStride2',
      `'${name}' needs [batch, channels, time, freq >= 3] with static channels and freq`,
      [x],
    );
  const fo = halve(f);
  const bound = 1 / Math.sqrt(c * 9);
  return g.scope(name, () => {
    const w = g.param('weight', [cOut, c, 3, 3], { init: { kind: 'uniform', low: -bound, high: bound } });
    const b = g.param('bias', [cOut], { init: { kind: 'uniform', low: -bound, high: bound } });
    // taps[b, c, t, kf * fo + j] = x[b, c, t, 2j + kf]
    const idx = Array.from({ length: 3 * fo }, (_, i) => 2 * (i % fo) + Math.floor(i / fo));
    const taps = ops.reshape(ops.gather(x, g.int64s(idx), 3), [0, 0, 0, 3, fo]); // [B, C, T, 3, fo]
    const folded5 = ops.transpose(taps, [0, 4, 3, 1, 2]); // [B, fo, 3, C, T]
    const folded = node1(
      g,
      'Reshape',
      [folded5, ops.concat([g.int64s([-1, 3 * c]), dimOf(folded5, 4)], 0)],
      x.dtype,
      [derivedDim('batch_freq'), 3 * c, x.shape[2]],
    ); // [B * fo, 3C, T], channel kf * C + c
    const w1 = ops.reshape(ops.transpose(w, [0, 3, 1, 2]), [cOut, 3 * c, 3]); // [cOut, (kf, c), kt]
    const y = ops.conv1d(folded, w1, b, { stride: 2 }); // [B * fo, cOut, T']
    const unfolded = node1(
      g,
      'Reshape',
      [y, ops.concat([dimOf(x, 0), g.int64s([fo, cOut]), dimOf(y, 2)], 0)],
      x.dtype,
      [x.shape[0], fo, cOut, y.shape[2]],
    );
    return ops.transpose(unfolded, [0, 2, 3, 1]); // [B, cOut, T', fo]
  });
}

/** Encoder frames per utterance from the input frame mask [B, frames]: the x4 subsampling's arithmetic. */
export function conformerFrameLengths(frameMask: Tensor): Tensor {
  let l = ops.reduceSum(frameMask.dtype === 'int64' ? frameMask : ops.cast(frameMask, 'int64'), 1);
  // floor((l - 3) / 2) + 1 = floor((l - 1) / 2), twice; clamped at 0 (ONNX integer Div truncates).
  for (let i = 0; i < 2; i++) l = ops.maximum(ops.div(ops.sub(ops.maximum(l, 1), 1), 2), 0);
  return l;
}

function frameMaskFor(lengths: Tensor, h: Tensor): Tensor {
  const t = ops.squeeze(ops.rangeAlong(h, 1), 1); // [T]
  return ops.less(ops.unsqueeze(t, 0), ops.unsqueeze(lengths, 1));
}

/** Conv2dSubsampling: [B, T, mel] -> [B, T / 4, hidden]. */
function subsampling(arch: ConformerArch, x: Tensor): Tensor {
  const g = x.graph;
  return g.scope('subsampling', () => {
    let y = ops.unsqueeze(x, 1); // [B, 1, T, mel]
    y = ops.relu(conv2dStride2(y, 'conv.0', arch.subsamplingChannels));
    y = ops.relu(conv2dStride2(y, 'conv.2', arch.subsamplingChannels));
    // [B, C, T', F'] -> [B, T', C * F'] (ESPnet: transpose(1, 2).view(b, t, c * f)).
    const flat = ops.reshape(ops.transpose(y, [0, 2, 1, 3]), [
      0,
      0,
      arch.subsamplingChannels * arch.subsampledBins,
    ]);
    return linear(flat, 'out', arch.hiddenSize);
  });
}

const f32 = Math.fround;

/**
 * Sinusoidal embeddings of relative positions T-1 down to -(T-1), [2T - 1, D], sin on
 * even and cos on odd features (Wav2Vec2ConformerRelPositionalEmbedding, ESPnet's
 * RelPositionalEncoding), for the run-time length T of h [B, T, D].
 */
export function relPositionEmbeddings(h: Tensor, d: number): Tensor {
  const g = h.graph;
  const k = f32(-(Math.log(10000) / d));
  const div = new Float32Array(d / 2).map((_, i) => f32(Math.exp(f32(2 * i * k))));
  const r = ops.rangeAlong(h, 1); // [T, 1]
  const last = ops.reduceMax(r, [0, 1], true);
  const pos = ops.concat([ops.sub(last, r), ops.slice(ops.neg(r), [1], [2 ** 62], [0])], 0); // [2T-1, 1]
  const angles = ops.mul(
    ops.cast(pos, h.dtype),
    g.constant(h.dtype === 'float64' ? Float64Array.from(div) : div, [d / 2]),
  );
  const sin = node1(g, 'Sin', [angles], h.dtype, angles.shape);
  const cos = node1(g, 'Cos', [angles], h.dtype, angles.shape);
  return ops.reshape(ops.concat([ops.unsqueeze(sin, 2), ops.unsqueeze(cos, 2)], 2), [0, d]);
}

/** (q + u) k^T + shift((q + v) (W_pos pe)^T), inside the attention's scope (the 1/sqrt(dh) follows there). */
function relativeScores(arch: ConformerArch, pe: Tensor): (q: Tensor, k: Tensor) => Tensor {
  return (q, k) => {
    const g = q.graph;
    const h = arch.numHeads;
    const dh = arch.hiddenSize / h;
    const p = ops.transpose(
      ops.reshape(linear(pe, 'linear_pos', arch.hiddenSize, { bias: false }), [0, h, dh]),
      [1, 2, 0],
    ); // [H, dh, 2T-1]
    const init = { kind: 'normal', std: Math.sqrt(2 / (h + dh)) } as const; // xavier_normal_ as ESPnet
    const u = ops.reshape(g.param('pos_bias_u', [h, dh], { init }), [h, 1, dh]);
    const v = ops.reshape(g.param('pos_bias_v', [h, dh], { init }), [h, 1, dh]);
    const ac = ops.matmul(ops.add(q, u), ops.transpose(k, [0, 1, 3, 2]));
    const bd = relativeShift(ops.matmul(ops.add(q, v), p));
    return ops.add(ac, bd.withShape(ac.shape));
  };
}

function feedForward(arch: ConformerArch, x: Tensor, name: string): Tensor {
  return x.graph.scope(name, () => {
    const y = ops.dropout(
      silu(linear(x, 'intermediate_dense', arch.intermediateSize)),
      arch.activationDropout,
    );
    return ops.dropout(linear(y, 'output_dense', arch.hiddenSize), arch.hiddenDropout);
  });
}

/** LN, pointwise conv (2D) + GLU, padded frames zeroed, depthwise conv, BatchNorm (or LayerNorm), swish, pointwise conv. */
function convModule(arch: ConformerArch, x: Tensor, keep: Tensor): Tensor {
  const g = x.graph;
  const d = arch.hiddenSize;
  const k = arch.depthwiseKernel;
  const [b, t] = [x.shape[0], x.shape[1]];
  return g.scope('conv_module', () => {
    let y = swapCT(layerNormLayer(x, 'layer_norm', arch.layerNormEps));
    y = conv1dLayer(y, 'pointwise_conv1', { outChannels: 2 * d, kernel: 1, bias: false });
    y = glu(y.withShape([b, 2 * d, t]), 1);
    y = ops.where(ops.unsqueeze(keep, 1), y, 0);
    y = conv1dLayer(y, 'depthwise_conv', {
      outChannels: d,
      kernel: k,
      padding: (k - 1) / 2,
      groups: d,
      bias: false,
    });
    y = y.withShape([b, d, t]);
    y =
      arch.convNorm === 'batch_norm'
        ? batchNorm1d(y, 'batch_norm', { eps: arch.layerNormEps, momentum: arch.batchNormMomentum })
        : swapCT(layerNormLayer(swapCT(y), 'conv_norm', arch.layerNormEps));
    y = conv1dLayer(silu(y), 'pointwise_conv2', { outChannels: d, kernel: 1, bias: false }).withShape([
      b,
      d,
      t,
    ]);
    return swapCT(ops.dropout(y, arch.convDropout));
  });
}

function conformerLayer(arch: ConformerArch, x: Tensor, pe: Tensor, keep: Tensor, i: number): Tensor {
  return x.graph.scope(`layers.${i}`, () => {
    let h = ops.add(
      ops.mul(feedForward(arch, layerNormLayer(x, 'ffn1_layer_norm', arch.layerNormEps), 'ffn1'), 0.5),
      x,
    );
    const normed = layerNormLayer(h, 'self_attn_layer_norm', arch.layerNormEps);
    const a = multiHeadAttention(normed, 'self_attn', {
      numHeads: arch.numHeads,
      names: CONFORMER_ATTENTION_NAMES,
      mask: keep,
      dropout: arch.attentionDropout,
      scores: relativeScores(arch, pe),
    }).context;
    h = ops.add(ops.dropout(a, arch.hiddenDropout), h);
    h = ops.add(h, convModule(arch, h, keep));
    h = ops.add(
      ops.mul(feedForward(arch, layerNormLayer(h, 'ffn2_layer_norm', arch.layerNormEps), 'ffn2'), 0.5),
      h,
    );
    return layerNormLayer(h, 'final_layer_norm', arch.layerNormEps);
  });
}

export interface ConformerOutput extends EncoderOutput {
  /** The subsampling's output [B, T', hidden] before dropout: what the SSL quantiser reads. */
  subsampled: Tensor;
}

export interface ConformerBuildOptions {
  /**
   * Replaces the subsampled features before the blocks (self-supervised pretraining masks
   * spans here): gets [B, T', hidden] and the frame mask [B, T'] (bool).
   */
  transformSubsampled?: (h: Tensor, keep: Tensor) => Tensor;
}

/**
 * The whole encoder: hidden states (the subsampling output first, then one per block; the
 * last is `hidden`), the frame mask [B, T'] int64.
 */
export function buildConformer(
  arch: ConformerArch,
  inputs: { input_features: Tensor; attention_mask: Tensor },
  opts: ConformerBuildOptions = {},
): ConformerOutput {
  const x = inputs.input_features;
  const g = x.graph;
  if (x.rank !== 3 || inputs.attention_mask.rank !== 2)
    throw g.error(
      'lemer-conformer',
      'input_features must be [batch, frames, mel] and attention_mask [batch, frames]',
      [x, inputs.attention_mask],
    );
  if (x.shape[2] !== arch.melBins)
    throw g.error(
      'lemer-conformer',
      `input_features has ${x.shape[2]} mel bins, the config says num_mel_bins ${arch.melBins}`,
      [x],
    );
  const feats = x.dtype === g.floatType ? x : ops.cast(x, g.floatType);
  const subsampled = subsampling(arch, feats);
  const keep = frameMaskFor(conformerFrameLengths(inputs.attention_mask), subsampled);
  const hiddenStates: Tensor[] = [];
  // The hook runs at the caller's scope (HF keeps masked_spec_embed at the model's root).
  const input = opts.transformSubsampled ? opts.transformSubsampled(subsampled, keep) : subsampled;
  const last = g.scope('encoder', () => {
    let h = ops.dropout(input, arch.hiddenDropout);
    const pe = relPositionEmbeddings(h, arch.hiddenSize);
    for (let i = 0; i < arch.numLayers; i++) {
      hiddenStates.push(h);
      h = conformerLayer(arch, h, pe, keep, i);
    }
    return h;
  });
  hiddenStates.push(last);
  return { hidden: last, hiddenStates, mask: ops.cast(keep, 'int64'), subsampled };
}
