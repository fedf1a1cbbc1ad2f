// wav2vec2 (base, group-norm variant) feature-extractor layer 0, written with the engine
// the same way as bench/torch_reference.py's ConvLayer0:
// Conv1d(1, 512, kernel 10, stride 5, no bias) + GroupNorm(512, 512) + exact GELU.
import type { Tensor } from '../../src/graph/graph.js';
import { conv1dLayer } from '../../src/graph/layers/conv.js';
import { groupNorm } from '../../src/graph/layers/norm.js';
import { gelu } from '../../src/graph/layers/activations.js';

/** wav [B, 1, samples] -> [B, 512, frames]. */
export function convLayer0(wav: Tensor): Tensor {
  const g = wav.graph;
  return g.scope('feature_extractor.conv_layers.0', () => {
    const h = conv1dLayer(wav, 'conv', { outChannels: 512, kernel: 10, stride: 5, bias: false });
    return gelu(groupNorm(h, 'layer_norm', { groups: 512 }));
  });
}
