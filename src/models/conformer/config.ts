/**
 * config.json of lemer's log-mel conformer (`model_type: lemer-conformer`): the paper's
 * fbank-input speech encoder, trained from scratch (no hub checkpoint exists), so the
 * keys are lemer's own, written in Hugging Face's snake_case style (they reuse
 * Wav2Vec2ConformerConfig's names where the meaning is the same) and the defaults are
 * small: hidden 144, 4 layers, 4 heads, FFN 576, depthwise kernel 15 (Conformer-S's
 * width with fewer layers, sized for the demo corpus and EmoDB on a CPU).
 */
import { z } from 'zod';
import { ConfigError, formatIssues } from '../../config/load.js';

export const CONFORMER_MODEL_TYPE = 'lemer-conformer';

const posInt = z.number().int().positive();
const prob = z.number().min(0).max(1);

export const conformerConfigSchema = z.looseObject({
  model_type: z.literal(CONFORMER_MODEL_TYPE).default(CONFORMER_MODEL_TYPE),
  /** Mel bins of `input_features` (the front end's 80-bin log-mel). */
  num_mel_bins: posInt.default(80),
  /** Channels of the two stride-2 Conv2d layers of the subsampling (default: hidden_size). */
  subsampling_channels: posInt.nullable().default(null),
  hidden_size: posInt.default(144),
  num_hidden_layers: posInt.default(4),
  num_attention_heads: posInt.default(4),
  intermediate_size: posInt.default(576),
  conv_depthwise_kernel_size: posInt.default(15),
  /** Normalisation in the conv module: BatchNorm1d (the paper's) or LayerNorm over channels. */
  conv_norm: z.enum(['batch_norm', 'layer_norm']).default('batch_norm'),
  hidden_act: z.enum(['swish', 'silu']).default('swish'),
  hidden_dropout: prob.default(0.1),
  activation_dropout: prob.default(0.1),
  attention_dropout: prob.default(0.1),
  conformer_conv_dropout: prob.default(0.1),
  layer_norm_eps: z.number().positive().default(1e-5),
  batch_norm_momentum: z.number().gt(0).max(1).default(0.1),
  position_embeddings_type: z.literal('relative').default('relative'),
});

export type ConformerConfig = z.infer<typeof conformerConfigSchema>;

/** The normalised view the graph builder reads. */
export interface ConformerArch {
  modelType: typeof CONFORMER_MODEL_TYPE;
  melBins: number;
  subsamplingChannels: number;
  /** Frequency bins left after the two stride-2 convs (80 -> 39 -> 19). */
  subsampledBins: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  depthwiseKernel: number;
  convNorm: 'batch_norm' | 'layer_norm';
  hiddenDropout: number;
  activationDropout: number;
  attentionDropout: number;
  convDropout: number;
  layerNormEps: number;
  batchNormMomentum: number;
}

/** Output length of one Conv2d(kernel 3, stride 2, no padding) axis. */
export const halve = (n: number): number => Math.max(0, Math.floor((n - 3) / 2) + 1);

/** Frames after the x4 subsampling: floor((floor((n - 1) / 2) - 1) / 2), 0 below 7 frames. */
export function subsampledLength(frames: number): number {
  return frames < 3 ? 0 : halve(halve(frames));
}

/** Fewest input frames that give one encoder frame. */
export const MIN_CONFORMER_FRAMES = 7;

export function parseConformerConfig(raw: unknown, source = 'config.json'): ConformerConfig {
  const r = conformerConfigSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(source, formatIssues(r.error.issues));
  const c = r.data;
  const issues: string[] = [];
  if (c.hidden_size % c.num_attention_heads !== 0)
    issues.push(
      `hidden_size: ${c.hidden_size} is not divisible by num_attention_heads (${c.num_attention_heads})`,
    );
  else if ((c.hidden_size / c.num_attention_heads) % 2 !== 0 || c.hidden_size % 2 !== 0)
    issues.push(`hidden_size: ${c.hidden_size} must be even (sinusoidal relative positions)`);
  if (c.conv_depthwise_kernel_size % 2 !== 1)
    issues.push(`conv_depthwise_kernel_size: ${c.conv_depthwise_kernel_size} must be odd ('same' padding)`);
  if (halve(halve(c.num_mel_bins)) < 1)
    issues.push(`num_mel_bins: ${c.num_mel_bins} is too few for two stride-2 3x3 convs (need >= 7)`);
  if (issues.length) throw new ConfigError(source, issues);
  return c;
}

export function conformerArch(c: ConformerConfig): ConformerArch {
  return {
    modelType: CONFORMER_MODEL_TYPE,
    melBins: c.num_mel_bins,
    subsamplingChannels: c.subsampling_channels ?? c.hidden_size,
    subsampledBins: halve(halve(c.num_mel_bins)),
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    intermediateSize: c.intermediate_size,
    depthwiseKernel: c.conv_depthwise_kernel_size,
    convNorm: c.conv_norm,
    hiddenDropout: c.hidden_dropout,
    activationDropout: c.activation_dropout,
    attentionDropout: c.attention_dropout,
    convDropout: c.conformer_conv_dropout,
    layerNormEps: c.layer_norm_eps,
    batchNormMomentum: c.batch_norm_momentum,
  };
}
