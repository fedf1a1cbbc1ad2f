/**
 * A compact log-mel speech encoder built in place (random init, trained from scratch): two
 * stride-2 1-D convolutions over time (x4 subsampling), then pre-LN blocks of
 * self-attention, a depthwise convolution module and a feed-forward layer. It follows the
 * encoder contract (src/models/encoder.ts). The demo uses it by default
 * (`train.inPlace.speech.kind: compact`) because a training step of it is about 40 times
 * cheaper than one of the paper-style conformer (src/models/conformer, 2-D convolution
 * subsampling; `kind: conformer`), which keeps `lemer cv` on the demo within minutes on two
 * cores. Padded frames are zeroed before every convolution, so they never leak into real ones.
 */
import type { Graph, Tensor } from '../graph/graph.js';
import * as ops from '../graph/ops/index.js';
import { linear } from '../graph/layers/linear.js';
import { multiHeadAttention } from '../graph/layers/attention.js';
import { layerNormLayer } from '../graph/layers/norm.js';
import { silu } from '../graph/layers/activations.js';
import { conv1dLayer } from '../graph/layers/conv.js';
import type { Encoder, EncoderOutput } from '../models/encoder.js';

export interface CompactSpeechConfig {
  numBins: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  ffnDim: number;
  convKernel: number;
  dropout: number;
}

export function compactSpeechEncoder(c: CompactSpeechConfig): Encoder {
  return {
    modality: 'speech',
    modelType: 'lemer-compact-logmel',
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
      const zeroPad = (t: Tensor, m: Tensor) => ops.mul(t, ops.unsqueeze(ops.cast(m, t.dtype), -1));
      let x = g.scope('subsampling', () => {
        let y = ops.transpose(zeroPad(inputs.input_features, mask), [0, 2, 1]);
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
            const z = ops.transpose(zeroPad(layerNormLayer(y, 'layer_norm'), mask), [0, 2, 1]);
            const dw = conv1dLayer(z, 'depthwise_conv', {
              outChannels: h,
              kernel: c.convKernel,
              padding: (c.convKernel - 1) >> 1,
              groups: h,
            }).withShape(['batch', h, 'frames_2']);
            return linear(silu(ops.transpose(dw, [0, 2, 1])), 'pointwise_conv', h);
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
    config: { model_type: 'lemer-compact-logmel', in_place: true, ...c },
    source: `in-place compact log-mel encoder (hidden ${c.hiddenSize}, ${c.numLayers} layers)`,
  };
}
