/**
 * The wav2vec2 family as one graph builder: wav2vec2 (group- or layer-norm feature
 * encoder, post-LN or "stable layer norm" pre-LN transformer), HuBERT (optional feature
 * projection LayerNorm), WavLM (gated relative position bias) and wav2vec2-conformer
 * (relative or rotary positions, conformer blocks). The variant is data (`Wav2Vec2Arch`);
 * each difference is one named builder below. Scopes follow Hugging Face's module
 * attributes, so parameter names are the base model's safetensors keys
 * (`feature_extractor.conv_layers.0.conv.weight`, `encoder.layers.3.attention.q_proj.weight`).
 *
 * Semantics are those of transformers' modeling_wav2vec2.py / modeling_hubert.py /
 * modeling_wavlm.py / modeling_wav2vec2_conformer.py in eval mode, including their quirks:
 * group norm (base checkpoints) normalises over padded samples too, so a padded row differs
 * from the same row alone, as in Hugging Face; the conformer's depthwise convolution sees
 * padded frames; its `pos_conv_embed` weights exist in checkpoints but are never used.
 * LayerDrop is HF's: in training each layer is skipped with probability `layerdrop` (one
 * draw per layer and step; both branches are computed, the gradient takes the drawn one).
 * Not built: the SpecAugment-style time masking of fine-tuning (`mask_time_prob`; HF's
 * `masked_spec_embed` is listed as unused), adapters.
 */
import type { Graph, Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import { node1 } from '../../graph/ops/util.js';
import { conv1dLayer, weightNormConv1d } from '../../graph/layers/conv.js';
import { batchNorm1d, groupNorm, layerNormLayer } from '../../graph/layers/norm.js';
import { embedding, linear } from '../../graph/layers/linear.js';
import { applySpanMask } from '../../graph/layers/ssl.js';
import { gelu, geluTanh, glu, silu } from '../../graph/layers/activations.js';
import {
  CONFORMER_ATTENTION_NAMES,
  WAV2VEC2_ATTENTION_NAMES,
  multiHeadAttention,
  relativePositionBucket,
  relativeShift,
} from '../../graph/layers/attention.js';
import type { EncoderOutput } from '../encoder.js';
import type { Wav2Vec2Activation, Wav2Vec2Arch } from './config.js';

export interface Wav2Vec2BuildOptions {
  /**
   * Hugging Face's `freeze_feature_encoder()`: the conv feature encoder gets no gradient
   * (its output passes a stop-gradient, so a training graph has no backward through it
   * and its parameters are left out of the update); the feature projection still trains.
   */
  freezeFeatureEncoder?: boolean;
  /**
   * Frames to mask [B, T] (1 / true = masked), as Wav2Vec2ForPreTraining and HF's
   * SpecAugment-style fine-tuning do: after the feature projection those frames are
   * replaced by the learned `masked_spec_embed` (then a parameter of the graph). Its
   * dims are taken to be the frames' (the run-time sizes must agree: `frameLengths`,
   * `featExtractOutputLength`).
   */
  maskTimeIndices?: Tensor;
}

/** Parameter names of the conv feature encoder (what `freezeFeatureEncoder` freezes). */
export const isFeatureEncoderParam = (name: string): boolean => name.startsWith('feature_extractor.');

function activation(x: Tensor, kind: Wav2Vec2Activation): Tensor {
  switch (kind) {
    case 'gelu':
      return gelu(x);
    case 'gelu_new':
      return geluTanh(x);
    case 'relu':
      return ops.relu(x);
    case 'swish':
    case 'silu':
      return silu(x);
  }
}

/** [B, C, T] -> [B, T, C] and back. */
const swapCT = (x: Tensor): Tensor => ops.transpose(x, [0, 2, 1]);

/** Wav2Vec2FeatureEncoder: waveform [B, S] -> conv features [B, C, T]. */
export function featureEncoder(arch: Wav2Vec2Arch, wave: Tensor): Tensor {
  const g = wave.graph;
  return g.scope('feature_extractor', () => {
    let x = ops.unsqueeze(wave, 1);
    arch.conv.forEach((c, i) => {
      x = g.scope(`conv_layers.${i}`, () => {
        let y = conv1dLayer(x, 'conv', {
          outChannels: c.dim,
          kernel: c.kernel,
          stride: c.stride,
          bias: arch.convBias,
        });
        // GroupNorm on the first layer only (one group per channel), or LayerNorm on each.
        if (arch.featExtractNorm === 'group' && i === 0) y = groupNorm(y, 'layer_norm', { groups: c.dim });
        else if (arch.featExtractNorm === 'layer') y = swapCT(layerNormLayer(swapCT(y), 'layer_norm'));
        return activation(y, arch.featExtractAct);
      });
    });
    return x;
  });
}

/**
 * Valid frames per utterance from the sample mask [B, S] (HF `_get_feat_extract_output_lengths`
 * of the mask's sum): L <- floor((L - kernel) / stride) + 1 per conv layer, clamped at 0.
 * ONNX integer Div truncates towards zero; an offset makes it floor for negative numerators.
 */
export function frameLengths(arch: Wav2Vec2Arch, sampleMask: Tensor): Tensor {
  const big = 2 ** 40;
  let l = ops.reduceSum(sampleMask.dtype === 'int64' ? sampleMask : ops.cast(sampleMask, 'int64'), 1);
  for (const { kernel, stride } of arch.conv)
    l = ops.add(ops.sub(ops.div(ops.add(l, stride * big - kernel), stride), big), 1);
  return ops.maximum(l, 0);
}

/** Frame mask [B, T] (bool) of frames < length, T being the features' axis 1. */
function frameMaskFor(lengths: Tensor, features: Tensor): Tensor {
  const t = ops.squeeze(ops.rangeAlong(features, 1), 1); // [T]
  return ops.less(ops.unsqueeze(t, 0), ops.unsqueeze(lengths, 1));
}

/** Wav2Vec2FeatureProjection (HuBERT: LayerNorm optional): returns the projected states and the projection's input. */
function featureProjection(arch: Wav2Vec2Arch, feats: Tensor): { hidden: Tensor; normed: Tensor } {
  const g = feats.graph;
  return g.scope('feature_projection', () => {
    const normed = arch.featProjLayerNorm ? layerNormLayer(feats, 'layer_norm', arch.layerNormEps) : feats;
    const hidden = ops.dropout(linear(normed, 'projection', arch.hiddenSize), arch.featProjDropout);
    return { hidden, normed };
  });
}

/** Wav2Vec2PositionalConvEmbedding: weight-normed grouped conv, same-pad trim, activation. */
/**
 * Parameters are `pos_conv_embed.conv.weight_g` / `weight_v` (torch.nn.utils.weight_norm);
 * names.ts folds the newer `parametrizations.weight.original0/1` onto them.
 */
function posConvEmbed(arch: Wav2Vec2Arch, h: Tensor): Tensor {
  const g = h.graph;
  return g.scope('pos_conv_embed', () => {
    const k = arch.posConvKernel;
    let y = weightNormConv1d(swapCT(h), 'conv', {
      outChannels: arch.hiddenSize,
      kernel: k,
      padding: Math.floor(k / 2),
      groups: arch.posConvGroups,
      dim: 2,
      paramNames: 'legacy',
    });
    if (k % 2 === 0) y = ops.slice(y, [0], [-1], [2]);
    // Back to the frames' own dim name before any op whose gradient mixes y with dy.
    y = y.withShape([h.shape[0], h.shape[2], h.shape[1]]);
    return swapCT(activation(y, arch.featExtractAct));
  });
}

function feedForward(arch: Wav2Vec2Arch, x: Tensor, name: string): Tensor {
  const g = x.graph;
  return g.scope(name, () => {
    const y = ops.dropout(
      activation(linear(x, 'intermediate_dense', arch.intermediateSize), arch.hiddenAct),
      arch.activationDropout,
    );
    return ops.dropout(linear(y, 'output_dense', arch.hiddenSize), arch.hiddenDropout);
  });
}

/**
 * WavLM's relative position bias (layer 0's `attention.rel_attn_embed`): [1, H, T, T], the
 * bucket of key - query looked up per head. Beyond max_bucket_distance the bucket no
 * longer changes, so offsets are clipped to it and read from a host-computed table.
 */
function wavlmPositionBias(arch: Wav2Vec2Arch, x: Tensor): Tensor {
  const g = x.graph;
  const d = arch.maxBucketDistance;
  const rows = relativePositionBucket(d + 1, 2 * d + 1, {
    numBuckets: arch.numBuckets,
    maxDistance: d,
  });
  const table = g.constant(rows.slice(d * (2 * d + 1), (d + 1) * (2 * d + 1)), [2 * d + 1], 'rel_buckets');
  const q = ops.rangeAlong(x, 1); // [T, 1]
  const rel = ops.sub(ops.transpose(q, [1, 0]), q); // [T, T]: key - query
  const clipped = ops.minimum(ops.maximum(rel, -d), d);
  const buckets = ops.gather(table, ops.add(clipped, d), 0);
  const values = embedding(buckets, 'rel_attn_embed', arch.numBuckets, arch.numHeads, {
    kind: 'normal',
    std: 1,
  });
  return ops.unsqueeze(ops.transpose(values, [2, 0, 1]), 0);
}

/**
 * WavLM's gate on the position bias, from the attention input x [B, T, D] per head:
 * g = a * (b * const - 1) + 2 with (a, b) = sigmoid(sum of 4-wide chunks of
 * gru_rel_pos_linear(x_head)); returns g * bias, [B, H, T, T].
 */
function wavlmGatedBias(arch: Wav2Vec2Arch, x: Tensor, bias: Tensor): Tensor {
  const g = x.graph;
  const h = arch.numHeads;
  const dh = arch.hiddenSize / h;
  const xh = ops.transpose(ops.reshape(x, [0, 0, h, dh]), [0, 2, 1, 3]);
  const proj = linear(xh, 'gru_rel_pos_linear', 8);
  const [a, b] = ops.split(ops.sigmoid(ops.reduceSum(ops.reshape(proj, [0, 0, 0, 2, 4]), 4)), [1, 1], 3);
  const c = g.param('gru_rel_pos_const', [1, h, 1, 1], { init: { kind: 'ones' } });
  const gate = ops.add(ops.mul(a, ops.sub(ops.mul(b, c), 1)), 2);
  return ops.mul(gate, bias);
}

interface LayerContext {
  arch: Wav2Vec2Arch;
  mask: Tensor;
  /** WavLM: the ungated bias from layer 0, shared by every later layer. */
  positionBias: Tensor | null;
}

/** Self-attention of a wav2vec2 / HuBERT / WavLM layer (scope `attention`). */
function selfAttention(ctx: LayerContext, x: Tensor, layer: number): Tensor {
  const { arch } = ctx;
  const g = x.graph;
  let positionBias: Tensor | undefined;
  if (arch.modelType === 'wavlm')
    positionBias = g.scope('attention', () => {
      if (layer === 0) ctx.positionBias = wavlmPositionBias(arch, x);
      return wavlmGatedBias(arch, x, ctx.positionBias!);
    });
  return multiHeadAttention(x, 'attention', {
    numHeads: arch.numHeads,
    names: WAV2VEC2_ATTENTION_NAMES,
    mask: ctx.mask,
    dropout: arch.attentionDropout,
    positionBias,
  }).context;
}

/** Wav2Vec2EncoderLayer (post-LN) or Wav2Vec2EncoderLayerStableLayerNorm (pre-LN). */
function encoderLayer(ctx: LayerContext, x: Tensor, i: number): Tensor {
  const { arch } = ctx;
  const eps = arch.layerNormEps;
  return x.graph.scope(`layers.${i}`, () => {
    if (arch.stableLayerNorm) {
      const a = selfAttention(ctx, layerNormLayer(x, 'layer_norm', eps), i);
      const h = ops.add(x, ops.dropout(a, arch.hiddenDropout));
      return ops.add(h, feedForward(arch, layerNormLayer(h, 'final_layer_norm', eps), 'feed_forward'));
    }
    const a = selfAttention(ctx, x, i);
    const h = layerNormLayer(ops.add(x, ops.dropout(a, arch.hiddenDropout)), 'layer_norm', eps);
    return layerNormLayer(ops.add(h, feedForward(arch, h, 'feed_forward')), 'final_layer_norm', eps);
  });
}

// ---- wav2vec2-conformer ----

/** float32 as torch computes it (each step rounded), so that positions match PyTorch's bit for bit where it can. */
const f32 = Math.fround;

/**
 * Wav2Vec2ConformerRelPositionalEmbedding for the run-time length T: [2T - 1, D] rows for
 * relative positions T-1 down to -(T-1), sin on even and cos on odd features.
 */
function relPositionEmbeddings(arch: Wav2Vec2Arch, x: Tensor): Tensor {
  const g = x.graph;
  const d = arch.hiddenSize;
  const k = f32(-(Math.log(10000) / d));
  const div = new Float32Array(d / 2).map((_, i) => f32(Math.exp(f32(2 * i * k))));
  const r = ops.rangeAlong(x, 1); // [T, 1]
  const last = ops.reduceMax(r, [0, 1], true); // [[T - 1]]
  const pos = ops.concat([ops.sub(last, r), ops.slice(ops.neg(r), [1], [2 ** 62], [0])], 0); // [2T-1, 1]
  const angles = ops.mul(ops.cast(pos, x.dtype), constantOf(g, div, x.dtype)); // [2T-1, D/2]
  const sin = node1(g, 'Sin', [angles], x.dtype, angles.shape);
  const cos = node1(g, 'Cos', [angles], x.dtype, angles.shape);
  return ops.reshape(ops.concat([ops.unsqueeze(sin, 2), ops.unsqueeze(cos, 2)], 2), [0, d]);
}

function constantOf(g: Graph, v: Float32Array, dtype: Tensor['dtype']): Tensor {
  return g.constant(dtype === 'float64' ? Float64Array.from(v) : v, [v.length]);
}

/**
 * Transformer-XL relative scores as Wav2Vec2ConformerSelfAttention computes them:
 * (q + u) k^T + shift((q + v) (W_pos pe)^T); the scaling follows in the attention.
 */
function relativeScores(arch: Wav2Vec2Arch, pe: Tensor): (q: Tensor, k: Tensor) => Tensor {
  return (q, k) => {
    const g = q.graph;
    const h = arch.numHeads;
    const dh = arch.hiddenSize / h;
    const p = ops.transpose(
      ops.reshape(linear(pe, 'linear_pos', arch.hiddenSize, { bias: false }), [0, h, dh]),
      [1, 2, 0],
    ); // [H, dh, 2T-1]
    const init = { kind: 'normal', std: Math.sqrt(2 / (h + dh)) } as const;
    const u = ops.reshape(g.param('pos_bias_u', [h, dh], { init }), [h, 1, dh]);
    const v = ops.reshape(g.param('pos_bias_v', [h, dh], { init }), [h, 1, dh]);
    const ac = ops.matmul(ops.add(q, u), ops.transpose(k, [0, 1, 3, 2]));
    const bd = relativeShift(ops.matmul(ops.add(q, v), p)); // [B, H, T, T]
    return ops.add(ac, bd.withShape(ac.shape));
  };
}

/** Wav2Vec2ConformerRotaryPositionalEmbedding: cos and sin [T, 1, dh] for the run-time length. */
function rotaryEmbeddings(arch: Wav2Vec2Arch, x: Tensor): { cos: Tensor; sin: Tensor } {
  const g = x.graph;
  const dh = arch.hiddenSize / arch.numHeads;
  const inv = new Float32Array(dh / 2).map((_, i) =>
    f32(1 / f32(Math.pow(arch.rotaryBase, f32((2 * i) / dh)))),
  );
  const t = ops.cast(ops.rangeAlong(x, 1), x.dtype); // [T, 1]
  const freqs = ops.mul(t, constantOf(g, inv, x.dtype)); // [T, dh/2]
  const emb = ops.unsqueeze(ops.concat([freqs, freqs], 1), 1); // [T, 1, dh]
  return {
    cos: node1(g, 'Cos', [emb], x.dtype, emb.shape),
    sin: node1(g, 'Sin', [emb], x.dtype, emb.shape),
  };
}

/** HF's _apply_rotary_embedding on the attention input x [B, T, D] (before the projections). */
function applyRotary(arch: Wav2Vec2Arch, x: Tensor, rot: { cos: Tensor; sin: Tensor }): Tensor {
  const h = arch.numHeads;
  const dh = arch.hiddenSize / h;
  const x4 = ops.reshape(x, [0, 0, h, dh]);
  const [a, b] = ops.split(x4, [dh / 2, dh / 2], 3);
  const rotated = ops.concat([ops.neg(b), a], 3);
  const y = ops.add(ops.mul(x4, rot.cos), ops.mul(rotated.withShape(x4.shape), rot.sin));
  return ops.reshape(y, [0, 0, arch.hiddenSize]).withShape(x.shape);
}

/** Wav2Vec2ConformerConvolutionModule: LN, pointwise conv + GLU, depthwise conv, BatchNorm, act, pointwise conv. */
function conformerConvModule(arch: Wav2Vec2Arch, x: Tensor): Tensor {
  const g = x.graph;
  const d = arch.hiddenSize;
  const k = arch.depthwiseKernel;
  // Each conv's output gets the frames' dim name back at once (same length: 'SAME' padding).
  const [b, t] = [x.shape[0], x.shape[1]];
  return g.scope('conv_module', () => {
    let y = swapCT(layerNormLayer(x, 'layer_norm'));
    y = conv1dLayer(y, 'pointwise_conv1', { outChannels: 2 * d, kernel: 1, bias: false });
    y = glu(y.withShape([b, 2 * d, t]), 1);
    y = conv1dLayer(y, 'depthwise_conv', {
      outChannels: d,
      kernel: k,
      padding: (k - 1) / 2,
      groups: d,
      bias: false,
    });
    y = activation(batchNorm1d(y.withShape([b, d, t]), 'batch_norm'), arch.hiddenAct);
    y = conv1dLayer(y, 'pointwise_conv2', { outChannels: d, kernel: 1, bias: false }).withShape([b, d, t]);
    return swapCT(ops.dropout(y, arch.conformerConvDropout));
  });
}

interface ConformerPositions {
  rel: Tensor | null;
  rot: { cos: Tensor; sin: Tensor } | null;
}

/** Wav2Vec2ConformerEncoderLayer: half-step FFN, self-attention, conv module, half-step FFN, LayerNorm. */
function conformerLayer(ctx: LayerContext, pos: ConformerPositions, x: Tensor, i: number): Tensor {
  const { arch } = ctx;
  return x.graph.scope(`layers.${i}`, () => {
    let h = ops.add(ops.mul(feedForward(arch, layerNormLayer(x, 'ffn1_layer_norm'), 'ffn1'), 0.5), x);
    const normed = layerNormLayer(h, 'self_attn_layer_norm');
    const qk = pos.rot ? applyRotary(arch, normed, pos.rot) : normed;
    const a = multiHeadAttention(qk, 'self_attn', {
      numHeads: arch.numHeads,
      names: CONFORMER_ATTENTION_NAMES,
      value: normed,
      mask: ctx.mask,
      dropout: arch.attentionDropout,
      // Called inside the attention's scope: linear_pos and pos_bias_{u,v} live under self_attn.
      ...(pos.rel ? { scores: relativeScores(arch, pos.rel) } : {}),
    }).context;
    h = ops.add(ops.dropout(a, arch.attentionDropout), h);
    h = ops.add(h, conformerConvModule(arch, h));
    h = ops.add(ops.mul(feedForward(arch, layerNormLayer(h, 'ffn2_layer_norm'), 'ffn2'), 0.5), h);
    return layerNormLayer(h, 'final_layer_norm');
  });
}

/**
 * The whole base model: `input_values` [B, S] float and `attention_mask` [B, S] int64 ->
 * last hidden state, every hidden state (HF's `hidden_states`: the encoder input first),
 * the frame mask and the feature projection's input (HF's `extract_features`).
 */
export function buildWav2Vec2(
  arch: Wav2Vec2Arch,
  inputs: { input_values: Tensor; attention_mask: Tensor },
  opts: Wav2Vec2BuildOptions = {},
): EncoderOutput {
  const wave = inputs.input_values;
  const g = wave.graph;
  if (wave.rank !== 2 || inputs.attention_mask.rank !== 2)
    throw g.error('wav2vec2', 'input_values and attention_mask must be [batch, samples]', [
      wave,
      inputs.attention_mask,
    ]);
  let conv = featureEncoder(arch, wave.dtype === g.floatType ? wave : ops.cast(wave, g.floatType));
  if (opts.freezeFeatureEncoder) conv = ops.stopGradient(conv);
  const feats = swapCT(conv); // [B, T, C]
  const keep = frameMaskFor(frameLengths(arch, inputs.attention_mask), feats);
  const proj = featureProjection(arch, feats);
  const normed = proj.normed;
  let projected = proj.hidden;
  if (opts.maskTimeIndices) {
    const embed = g.param('masked_spec_embed', [arch.hiddenSize], {
      init: { kind: 'uniform', low: 0, high: 1 },
    });
    const m = opts.maskTimeIndices;
    projected = applySpanMask(projected, m.withShape([projected.shape[0], projected.shape[1]]), embed);
  }
  const ctx: LayerContext = { arch, mask: keep, positionBias: null };
  const layerDrop = (i: number, h: Tensor, layer: () => Tensor): Tensor => {
    const out = layer();
    if (!g.training || arch.layerdrop === 0 || (arch.modelType === 'wavlm' && i === 0)) return out;
    return ops.where(ops.less(ops.randomUniformLike(g.scalar(0)), arch.layerdrop), h, out);
  };
  const hiddenStates: Tensor[] = [];
  const last = g.scope('encoder', () => {
    // Padded frames are zeroed before the positional conv (HF: hidden_states[~mask] = 0).
    let h = ops.where(ops.unsqueeze(keep, 2), projected, 0);
    if (arch.modelType === 'wav2vec2-conformer') {
      h = ops.dropout(h, arch.hiddenDropout);
      const pos: ConformerPositions = {
        rel: arch.positionEmbeddingsType === 'relative' ? relPositionEmbeddings(arch, h) : null,
        rot: arch.positionEmbeddingsType === 'rotary' ? rotaryEmbeddings(arch, h) : null,
      };
      for (let i = 0; i < arch.numLayers; i++) {
        hiddenStates.push(h);
        const x = h;
        h = layerDrop(i, x, () => conformerLayer(ctx, pos, x, i));
      }
      return layerNormLayer(h, 'layer_norm', arch.layerNormEps);
    }
    h = ops.add(h, posConvEmbed(arch, h));
    if (!arch.stableLayerNorm) h = layerNormLayer(h, 'layer_norm', arch.layerNormEps);
    h = ops.dropout(h, arch.hiddenDropout);
    for (let i = 0; i < arch.numLayers; i++) {
      hiddenStates.push(h);
      const x = h;
      h = layerDrop(i, x, () => encoderLayer(ctx, x, i));
    }
    return arch.stableLayerNorm ? layerNormLayer(h, 'layer_norm', arch.layerNormEps) : h;
  });
  hiddenStates.push(last);
  return { hidden: last, hiddenStates, mask: ops.cast(keep, 'int64'), extractFeatures: normed };
}
