/**
 * The contract between encoders (BERT, RoBERTa, the wav2vec2 family, the log-mel conformer,
 * frozen ONNX encoders) and what consumes them (the LE-MER head, unimodal models, training,
 * feature caches, `lemer encoder check`). An encoder is a graph builder plus, optionally, the
 * weights a folder gave it; it knows no corpus and no head.
 *
 * Input names follow Hugging Face's, batch-major:
 * - text: `input_ids`, `attention_mask`, `token_type_ids` (int64 [batch, seq]);
 * - waveform speech: `input_values` (float [batch, samples]), `attention_mask` (int64 [batch, samples]);
 * - log-mel speech: `input_features` (float [batch, frames, bins]), `attention_mask` (int64 [batch, frames]).
 * A model that holds two encoders prefixes their inputs itself (`text.input_ids`); the
 * encoder does not know.
 */
import type { Graph, Tensor } from '../graph/graph.js';
import type { HostTensor } from '../graph/runtime.js';
import type { InputDecl } from '../graph/train.js';

export type Modality = 'text' | 'speech';

export interface EncoderOutput {
  /** Last hidden states [batch, T, hiddenSize]. */
  hidden: Tensor;
  /**
   * Every hidden state, as Hugging Face's `hidden_states`: the embeddings (or feature
   * projection) output first, then one per layer; the last equals `hidden`.
   */
  hiddenStates: Tensor[];
  /** Valid positions of `hidden` [batch, T], int64, 1 = real frame or token. */
  mask: Tensor;
  /** Speech encoders with a CNN feature encoder: its output [batch, T, convDim] (before projection). */
  extractFeatures?: Tensor;
}

export interface BuildEncoderOptions {
  /** Dropout and similar on (training graphs) or off. */
  training: boolean;
}

export interface Encoder {
  modality: Modality;
  /** The folder's `model_type` (`bert`, `roberta`, `wav2vec2`, `hubert`, `wavlm`, `wav2vec2-conformer`, `lemer-conformer`, ...). */
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  /** Graph inputs this encoder reads (names as above), batch-major. */
  inputs: Record<string, InputDecl>;
  /**
   * Records the encoder in `g` inside the caller's current scope; parameter names under that
   * scope are the Hugging Face names (`encoder.layer.0.attention.self.query.weight`).
   */
  build(g: Graph, inputs: Record<string, Tensor>, opts: BuildEncoderOptions): EncoderOutput;
  /** Weights from the folder, under the graph's parameter names; null = random initialisation. */
  weights: Map<string, HostTensor> | null;
  /** The folder's config.json as read (or the config an in-place encoder was built from). */
  config: Record<string, unknown>;
  /** Where it came from: a folder path, or a description of an in-place encoder. */
  source: string;
}
