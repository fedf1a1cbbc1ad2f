/**
 * A small transformer classifier (BERT-shaped: embeddings + post-LN encoder layers with
 * multi-head self-attention under a key padding mask, masked mean-pool, linear head),
 * used to prove that the engine trains and as the smallest registered model. Parameter
 * names follow Hugging Face BERT (`embeddings.word_embeddings.weight`,
 * `encoder.layer.0.attention.self.query.weight`, ...).
 *
 * Its toy task (`makeOrderBatch`): each sequence holds one token A and one token B among
 * filler tokens; the class says whether A comes before B. Solving it needs positions and
 * attention, not just a bag of tokens.
 */
import type { Graph, Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import { embedding, linear } from '../../graph/layers/linear.js';
import { BERT_ATTENTION_NAMES, multiHeadAttention } from '../../graph/layers/attention.js';
import { accuracy, crossEntropy } from '../../graph/layers/losses.js';
import { maskedMean } from '../../graph/layers/pooling.js';
import { layerNormLayer } from '../../graph/layers/norm.js';
import { gelu, geluTanh } from '../../graph/layers/activations.js';
import type { HostTensor } from '../../graph/runtime.js';
import type { InputDecl } from '../../graph/train.js';
import type { Rng } from '../../util/random.js';

export interface ToyTransformerConfig {
  vocabSize: number;
  hiddenSize: number;
  numHeads: number;
  numLayers: number;
  intermediateSize: number;
  numClasses: number;
  maxPositions: number;
  /** Dropout on embeddings, attention weights and sublayer outputs (training only). */
  dropout: number;
  layerNormEps: number;
  /** Feed-forward activation, as Hugging Face names it ('gelu' is the erf form, 'gelu_new' the tanh one). */
  hiddenAct: 'gelu' | 'gelu_new' | 'relu';
}

export const TOY_TRANSFORMER_DEFAULTS: ToyTransformerConfig = {
  vocabSize: 16,
  hiddenSize: 32,
  numHeads: 4,
  numLayers: 2,
  intermediateSize: 64,
  numClasses: 2,
  maxPositions: 32,
  dropout: 0,
  layerNormEps: 1e-12,
  hiddenAct: 'gelu',
};

/** Inference inputs: token ids and the padding mask (1 = real token), both [batch, seq]. */
export function toyTransformerInputs(): Record<string, InputDecl> {
  return {
    input_ids: { dtype: 'int64', shape: ['batch', 'seq'] },
    attention_mask: { dtype: 'int64', shape: ['batch', 'seq'] },
  };
}

/** Training inputs: the inference inputs plus int64 class labels [batch]. */
export function toyTransformerTrainInputs(): Record<string, InputDecl> {
  return { ...toyTransformerInputs(), labels: { dtype: 'int64', shape: ['batch'] } };
}

function activation(x: Tensor, kind: ToyTransformerConfig['hiddenAct']): Tensor {
  switch (kind) {
    case 'gelu': // erf form (BERT)
      return gelu(x);
    case 'gelu_new': // tanh approximation
      return geluTanh(x);
    case 'relu':
      return ops.relu(x);
    default:
      throw new Error(`toy transformer: unknown hiddenAct '${String(kind)}'`);
  }
}

/** Logits [batch, classes] of the toy transformer. */
export function toyTransformer(
  g: Graph,
  inputs: { input_ids: Tensor; attention_mask: Tensor },
  config: Partial<ToyTransformerConfig> = {},
): Tensor {
  const c = { ...TOY_TRANSFORMER_DEFAULTS, ...config };
  const { input_ids: ids, attention_mask: mask } = inputs;
  const h = c.hiddenSize;
  let x = g.scope('embeddings', () => {
    const words = embedding(ids, 'word_embeddings', c.vocabSize, h);
    const positions = embedding(ops.rangeAlong(ids, 1), 'position_embeddings', c.maxPositions, h);
    return ops.dropout(layerNormLayer(ops.add(words, positions), 'LayerNorm', c.layerNormEps), c.dropout);
  });
  for (let i = 0; i < c.numLayers; i++) {
    x = g.scope(`encoder.layer.${i}`, () => {
      const att = multiHeadAttention(x, 'attention', {
        numHeads: c.numHeads,
        names: BERT_ATTENTION_NAMES,
        mask,
        dropout: c.dropout,
      }).context;
      const a = layerNormLayer(
        ops.add(x, ops.dropout(att, c.dropout)),
        'attention.output.LayerNorm',
        c.layerNormEps,
      );
      const ff = linear(
        activation(linear(a, 'intermediate.dense', c.intermediateSize), c.hiddenAct),
        'output.dense',
        h,
      );
      return layerNormLayer(ops.add(a, ops.dropout(ff, c.dropout)), 'output.LayerNorm', c.layerNormEps);
    });
  }
  return linear(maskedMean(x, mask), 'classifier', c.numClasses);
}

/** Loss (mean cross-entropy) and accuracy for training and evaluation. */
export function toyTransformerLoss(
  g: Graph,
  inputs: Record<string, Tensor>,
  config: Partial<ToyTransformerConfig> = {},
): { loss: Tensor; metrics: Record<string, Tensor> } {
  const logits = toyTransformer(
    g,
    { input_ids: inputs.input_ids, attention_mask: inputs.attention_mask },
    config,
  );
  return {
    loss: crossEntropy(logits, inputs.labels),
    metrics: { accuracy: accuracy(logits, inputs.labels) },
  };
}

/** Token ids of the order task. 0 is padding, 1 and 2 are A and B, the rest filler. */
export const ORDER_TASK = { pad: 0, a: 1, b: 2 } as const;

/**
 * A batch of the order task: lengths uniform in [minLen, maxLen], right-padded to maxLen;
 * label 1 when A comes before B. Half of the batch (rounded) has each label.
 */
export function makeOrderBatch(
  rng: Rng,
  batch: number,
  opts: { minLen?: number; maxLen?: number; vocabSize?: number } = {},
): Record<string, HostTensor> {
  const minLen = opts.minLen ?? 4;
  const maxLen = opts.maxLen ?? 10;
  const vocab = opts.vocabSize ?? TOY_TRANSFORMER_DEFAULTS.vocabSize;
  if (minLen < 2 || maxLen < minLen || vocab < 4)
    throw new Error('makeOrderBatch: need 2 <= minLen <= maxLen and vocabSize >= 4');
  const ids = new BigInt64Array(batch * maxLen);
  const mask = new BigInt64Array(batch * maxLen);
  const labels = new BigInt64Array(batch);
  for (let i = 0; i < batch; i++) {
    const len = rng.int(minLen, maxLen + 1);
    for (let t = 0; t < len; t++) {
      ids[i * maxLen + t] = BigInt(rng.int(3, vocab));
      mask[i * maxLen + t] = 1n;
    }
    const p = rng.int(0, len);
    let q = rng.int(0, len - 1);
    if (q >= p) q += 1;
    const label = i % 2;
    const [first, second] = p < q ? [p, q] : [q, p];
    ids[i * maxLen + first] = BigInt(label === 1 ? ORDER_TASK.a : ORDER_TASK.b);
    ids[i * maxLen + second] = BigInt(label === 1 ? ORDER_TASK.b : ORDER_TASK.a);
    labels[i] = BigInt(label);
  }
  return {
    input_ids: { dtype: 'int64', shape: [batch, maxLen], data: ids },
    attention_mask: { dtype: 'int64', shape: [batch, maxLen], data: mask },
    labels: { dtype: 'int64', shape: [batch], data: labels },
  };
}
