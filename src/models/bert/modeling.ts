/**
 * BERT and RoBERTa encoders as graph builders (Hugging Face's BertModel / RobertaModel
 * without the pooler): word + position + token-type embeddings, LayerNorm, dropout, then
 * post-LN layers (self-attention under the key padding mask, residual + LayerNorm,
 * feed-forward, residual + LayerNorm). Scopes are the Hugging Face attribute names, so
 * parameter names are the checkpoint's (`encoder.layer.3.attention.self.query.weight`).
 */
import type { Graph, Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import { node1 } from '../../graph/ops/util.js';
import { embedding, linear } from '../../graph/layers/linear.js';
import { BERT_ATTENTION_NAMES, multiHeadAttention } from '../../graph/layers/attention.js';
import { layerNormLayer } from '../../graph/layers/norm.js';
import { gelu, geluTanh } from '../../graph/layers/activations.js';
import type { EncoderOutput } from '../encoder.js';
import type { BertActivation, BertArch } from './config.js';

export interface BertInputs {
  /** int64 [batch, seq]. */
  input_ids: Tensor;
  /** int64 [batch, seq], 1 = real token. */
  attention_mask: Tensor;
  /** int64 [batch, seq]; absent = all 0 (Hugging Face's default). */
  token_type_ids?: Tensor;
}

function activation(x: Tensor, kind: BertActivation): Tensor {
  switch (kind) {
    case 'gelu':
    case 'gelu_python':
      return gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return geluTanh(x);
    case 'relu':
      return ops.relu(x);
  }
}

/**
 * Position ids [batch, seq] or [seq, 1]-broadcastable: BERT 0..seq-1; RoBERTa
 * cumsum(ids != pad) * (ids != pad) + pad (padding tokens get pad_token_id itself).
 */
export function positionIds(g: Graph, ids: Tensor, arch: BertArch): Tensor {
  if (!arch.paddingOffsetPositions) return ops.rangeAlong(ids, 1);
  const real = ops.cast(ops.not(ops.equal(ids, g.scalar(arch.padTokenId, 'int64'))), 'int64');
  const counted = node1(g, 'CumSum', [real, g.scalar(1, 'int64')], 'int64', real.shape);
  return ops.add(ops.mul(counted, real), g.scalar(arch.padTokenId, 'int64'));
}

/** The encoder under the caller's scope; every hidden state out (embeddings first). */
export function buildBert(arch: BertArch, inputs: BertInputs, opts: { training: boolean }): EncoderOutput {
  const { input_ids: ids, attention_mask: mask } = inputs;
  const g = ids.graph;
  const seq = ids.shape[1];
  if (typeof seq === 'number' && seq > arch.maxLength)
    throw g.error(
      'bert',
      `${seq} tokens do not fit the position table (max_position_embeddings ${arch.maxPositions}: at most ${arch.maxLength} tokens)`,
      [ids],
    );
  const h = arch.hiddenSize;
  const pHidden = opts.training ? arch.hiddenDropout : 0;
  const pAttn = opts.training ? arch.attentionDropout : 0;
  const init = { kind: 'normal' as const, std: arch.initializerRange };
  let x = g.scope('embeddings', () => {
    const words = embedding(ids, 'word_embeddings', arch.vocabSize, h, init);
    const types = inputs.token_type_ids ?? ops.zerosLike(ids);
    const t = embedding(types, 'token_type_embeddings', arch.typeVocabSize, h, init);
    const pos = embedding(positionIds(g, ids, arch), 'position_embeddings', arch.maxPositions, h, init);
    return ops.dropout(
      layerNormLayer(ops.add(ops.add(words, t), pos), 'LayerNorm', arch.layerNormEps),
      pHidden,
    );
  });
  const hiddenStates = [x];
  for (let i = 0; i < arch.numLayers; i++) {
    const input = x;
    x = g.scope(`encoder.layer.${i}`, () => {
      const att = multiHeadAttention(input, 'attention', {
        numHeads: arch.numHeads,
        names: BERT_ATTENTION_NAMES,
        mask,
        dropout: pAttn,
      }).context;
      const a = layerNormLayer(
        ops.add(ops.dropout(att, pHidden), input),
        'attention.output.LayerNorm',
        arch.layerNormEps,
      );
      const inner = activation(
        linear(a, 'intermediate.dense', arch.intermediateSize, { init }),
        arch.hiddenAct,
      );
      const ff = linear(inner, 'output.dense', h, { init });
      return layerNormLayer(ops.add(ops.dropout(ff, pHidden), a), 'output.LayerNorm', arch.layerNormEps);
    });
    hiddenStates.push(x);
  }
  return { hidden: x, hiddenStates, mask };
}
