/**
 * Layers: functions that create their parameters under a scope and return a tensor.
 * Parameter names and layouts follow Hugging Face (Linear weight is [out, in]) so that
 * pretrained safetensors load by name with no reshuffling.
 */
import type { ParamInit, Tensor } from '../graph.js';
import { add, matmul, transpose, gather } from '../ops/index.js';

export interface LinearOptions {
  bias?: boolean;
  /** Default: normal(0, 0.02), as BERT and wav2vec2 initialise. */
  init?: ParamInit;
}

/** y = x W^T + b over the last axis; W is [out, in] as in torch.nn.Linear. */
export function linear(x: Tensor, name: string, outFeatures: number, opts: LinearOptions = {}): Tensor {
  const g = x.graph;
  const inFeatures = x.shape[x.rank - 1];
  if (typeof inFeatures !== 'number')
    throw g.error('linear', `'${name}' needs a static last dim, got '${inFeatures}'`, [x]);
  return g.scope(name, () => {
    const w = g.param('weight', [outFeatures, inFeatures], {
      init: opts.init ?? { kind: 'normal', std: 0.02 },
    });
    let y = matmul(x, transpose(w, [1, 0]));
    if (opts.bias ?? true) y = add(y, g.param('bias', [outFeatures]));
    return y;
  });
}

/** Rows of a [num, dim] table picked by int64 ids (torch.nn.Embedding). */
export function embedding(ids: Tensor, name: string, num: number, dim: number, init?: ParamInit): Tensor {
  const g = ids.graph;
  return g.scope(name, () =>
    gather(g.param('weight', [num, dim], { init: init ?? { kind: 'normal', std: 0.02 } }), ids, 0),
  );
}
