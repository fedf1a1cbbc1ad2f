/**
 * Small encoders built in place (random initialisation, trained from scratch), used when a
 * config names no encoder folder: the demo's, and a start for real data without pretrained
 * weights. They follow the encoder contract (src/models/encoder.ts), so the head and the
 * training loop treat them as any loaded encoder.
 *
 * The project's own BERT (src/models/bert) and log-mel conformer (src/models/conformer)
 * replace these once they land; these stay as the fallback so that `lemer cv` works
 * whatever is there.
 */
import type { Graph, Tensor } from '../graph/graph.js';
import * as ops from '../graph/ops/index.js';
import { embedding, linear } from '../graph/layers/linear.js';
import { BERT_ATTENTION_NAMES, multiHeadAttention } from '../graph/layers/attention.js';
import { layerNormLayer } from '../graph/layers/norm.js';
import { gelu, silu } from '../graph/layers/activations.js';
import { conv1dLayer } from '../graph/layers/conv.js';
import type { Encoder, EncoderOutput } from '../models/encoder.js';

export interface InPlaceTextConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  dropout: number;
  maxPositions: number;
}

/** A BERT-shaped text encoder (post-LN, HF BERT parameter names, no pooler). */
export function inPlaceTextEncoder(c: InPlaceTextConfig): Encoder {
  return {
    modality: 'text',
    modelType: 'bert',
    hiddenSize: c.hiddenSize,
    numLayers: c.numLayers,
    inputs: {
      input_ids: { dtype: 'int64', shape: ['batch', 'tokens'] },
      attention_mask: { dtype: 'int64', shape: ['batch', 'tokens'] },
      token_type_ids: { dtype: 'int64', shape: ['batch', 'tokens'] },
    },
    build(g: Graph, inputs: Record<string, Tensor>, opts): EncoderOutput {
      const p = opts.training ? c.dropout : 0;
      const ids = inputs.input_ids;
      const mask = inputs.attention_mask;
      let x = g.scope('embeddings', () => {
        const words = embedding(ids, 'word_embeddings', c.vocabSize, c.hiddenSize);
        const pos = embedding(ops.rangeAlong(ids, 1), 'position_embeddings', c.maxPositions, c.hiddenSize);
        const types = embedding(inputs.token_type_ids, 'token_type_embeddings', 2, c.hiddenSize);
        return ops.dropout(layerNormLayer(ops.add(ops.add(words, pos), types), 'LayerNorm', 1e-12), p);
      });
      const hiddenStates = [x];
      for (let i = 0; i < c.numLayers; i++) {
        x = g.scope(`encoder.layer.${i}`, () => {
          const att = multiHeadAttention(x, 'attention', {
            numHeads: c.numHeads,
            names: BERT_ATTENTION_NAMES,
            mask,
            dropout: p,
          }).context;
          const a = layerNormLayer(ops.add(x, ops.dropout(att, p)), 'attention.output.LayerNorm', 1e-12);
          const ff = linear(
            gelu(linear(a, 'intermediate.dense', c.intermediateSize)),
            'output.dense',
            c.hiddenSize,
          );
          return layerNormLayer(ops.add(a, ops.dropout(ff, p)), 'output.LayerNorm', 1e-12);
        });
        hiddenStates.push(x);
      }
      return { hidden: x, hiddenStates, mask };
    },
    weights: null,
    config: { model_type: 'bert', in_place: true, ...c },
    source: `in-place BERT (hidden ${c.hiddenSize}, ${c.numLayers} layers, vocabulary ${c.vocabSize})`,
  };
}

export interface InPlaceSpeechConfig {
  numBins: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  ffnDim: number;
  convKernel: number;
  dropout: number;
}

/**
 * A log-mel encoder: two stride-2 convolutions (x4 subsampling in time), then pre-LN blocks
 * of self-attention, a depthwise convolution module and a feed-forward layer (a compact
 * conformer). Padded frames are zeroed before every convolution, so they never leak into
 * real ones.
 */
export function inPlaceSpeechEncoder(c: InPlaceSpeechConfig): Encoder {
  return {
    modality: 'speech',
    modelType: 'lemer-conformer',
    hiddenSize: c.hiddenSize,
    numLayers: c.numLayers,
    inputs: {
      input_features: { dtype: 'float32', shape: ['batch', 'frames', c.numBins] },
      attention_mask: { dtype: 'int64', shape: ['batch', 'frames'] },
    },
    build(g: Graph, inputs: Record<string, Tensor>, opts): EncoderOutput {
      const p = opts.training ? c.dropout : 0;
      const h = c.hiddenSize;
      let mask = inputs.attention_mask;
      let x = inputs.input_features;
      const zeroPad = (t: Tensor, m: Tensor) => ops.mul(t, ops.unsqueeze(ops.cast(m, t.dtype), -1));
      x = g.scope('subsampling', () => {
        let y = ops.transpose(zeroPad(x, mask), [0, 2, 1]);
        for (let i = 0; i < 2; i++) {
          y = ops.relu(
            conv1dLayer(y, `conv.${i}`, { outChannels: h, kernel: 3, stride: 2, padding: 1 }).withShape([
              'batch',
              h,
              `frames_${i + 1}`,
            ]),
          );
          // Kernel 3, stride 2, padding 1: output t is centred on input 2t, real iff 2t < length.
          mask = ops.slice(mask, [0], [2 ** 31 - 1], [1], [2]).withShape(['batch', `frames_${i + 1}`]);
          y = ops.mul(y, ops.unsqueeze(ops.cast(mask, y.dtype), 1));
        }
        return linear(ops.transpose(y, [0, 2, 1]), 'out', h);
      });
      const hiddenStates = [x];
      for (let i = 0; i < c.numLayers; i++) {
        x = g.scope(`encoder.layers.${i}`, () => {
          const att = multiHeadAttention(layerNormLayer(x, 'self_attn_layer_norm'), 'self_attn', {
            numHeads: c.numHeads,
            mask,
            dropout: p,
          }).context;
          let y = ops.add(x, ops.dropout(att, p));
          const conv = g.scope('conv_module', () => {
            let z = ops.transpose(zeroPad(layerNormLayer(y, 'layer_norm'), mask), [0, 2, 1]);
            z = conv1dLayer(z, 'depthwise_conv', {
              outChannels: h,
              kernel: c.convKernel,
              padding: (c.convKernel - 1) >> 1,
              groups: h,
            }).withShape(['batch', h, `frames_2`]);
            return linear(silu(ops.transpose(z, [0, 2, 1])), 'pointwise_conv', h);
          });
          y = ops.add(y, ops.dropout(conv, p));
          const ff = linear(
            ops.dropout(
              silu(linear(layerNormLayer(y, 'ffn_layer_norm'), 'ffn.intermediate_dense', c.ffnDim)),
              p,
            ),
            'ffn.output_dense',
            h,
          );
          return ops.add(y, ops.dropout(ff, p));
        });
        hiddenStates.push(x);
      }
      x = layerNormLayer(x, 'encoder.layer_norm');
      hiddenStates[hiddenStates.length - 1] = x;
      return { hidden: x, hiddenStates, mask };
    },
    weights: null,
    config: { model_type: 'lemer-conformer', in_place: true, ...c },
    source: `in-place log-mel conformer (hidden ${c.hiddenSize}, ${c.numLayers} layers)`,
  };
}
