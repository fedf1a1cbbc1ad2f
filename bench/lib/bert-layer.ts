// One BERT-base-sized post-LN encoder layer written with the engine, the same
// computation as bench/torch_reference.py's layer (so times compare like for like).
import type { Graph, Tensor } from '../../src/graph/graph.js';
import * as ops from '../../src/graph/ops/index.js';
import { linear } from '../../src/graph/layers/linear.js';
import { layerNormLayer } from '../../src/graph/layers/norm.js';
import { gelu } from '../../src/graph/layers/activations.js';

export interface LayerConfig {
  hidden: number;
  heads: number;
  ffn: number;
  eps: number;
}

export const BERT_BASE_LAYER: LayerConfig = { hidden: 768, heads: 12, ffn: 3072, eps: 1e-12 };

/** x [B, T, H], additive mask [B, 1, 1, T] (0 keep, -1e4 pad) -> [B, T, H]. */
export function encoderLayer(
  g: Graph,
  x: Tensor,
  additiveMask: Tensor,
  cfg: LayerConfig = BERT_BASE_LAYER,
): Tensor {
  const { hidden: H, heads: N } = cfg;
  const dh = H / N;
  const split = (t: Tensor) => ops.transpose(ops.reshape(t, [0, 0, N, dh]), [0, 2, 1, 3]);
  return g.scope('layer', () => {
    const q = split(linear(x, 'attention.self.query', H));
    const k = split(linear(x, 'attention.self.key', H));
    const v = split(linear(x, 'attention.self.value', H));
    const scores = ops.add(ops.mul(ops.matmul(q, ops.transposeLast2(k)), 1 / Math.sqrt(dh)), additiveMask);
    const ctx = ops.reshape(ops.transpose(ops.matmul(ops.softmax(scores, -1), v), [0, 2, 1, 3]), [0, 0, H]);
    const attn = layerNormLayer(
      ops.add(linear(ctx, 'attention.output.dense', H), x),
      'attention.output.LayerNorm',
      cfg.eps,
    );
    const inter = gelu(linear(attn, 'intermediate.dense', cfg.ffn));
    return layerNormLayer(ops.add(linear(inter, 'output.dense', H), attn), 'output.LayerNorm', cfg.eps);
  });
}
