/**
 * config.json of the wav2vec2 family (`model_type` wav2vec2, hubert, wavlm,
 * wav2vec2-conformer) with Hugging Face's snake_case keys and the base checkpoints'
 * defaults (Wav2Vec2Config, HubertConfig, WavLMConfig, Wav2Vec2ConformerConfig). Keys that
 * do not change the graph (vocab_size, ctc_*, mask_*, classifier sizes, architectures)
 * pass through; graph-changing values lemer does not build are rejected, naming file and
 * key. `wav2vec2Arch` turns the parsed config into the normalised view the builder reads.
 */
import { z } from 'zod';
import { ConfigError, formatIssues } from '../../config/load.js';

export const WAV2VEC2_MODEL_TYPES = ['wav2vec2', 'hubert', 'wavlm', 'wav2vec2-conformer'] as const;
export type Wav2Vec2ModelType = (typeof WAV2VEC2_MODEL_TYPES)[number];

/** Activations lemer builds, under Hugging Face's ACT2FN names. */
export const WAV2VEC2_ACTIVATIONS = ['gelu', 'relu', 'gelu_new', 'swish', 'silu'] as const;
export type Wav2Vec2Activation = (typeof WAV2VEC2_ACTIVATIONS)[number];

const posInt = z.number().int().positive();
const prob = z.number().min(0).max(1);
const act = z.enum(WAV2VEC2_ACTIVATIONS);

export const wav2vec2ConfigSchema = z.looseObject({
  model_type: z.enum(WAV2VEC2_MODEL_TYPES).default('wav2vec2'),
  hidden_size: posInt.default(768),
  num_hidden_layers: posInt.default(12),
  num_attention_heads: posInt.default(12),
  intermediate_size: posInt.default(3072),
  hidden_act: act.default('gelu'),
  hidden_dropout: prob.default(0.1),
  activation_dropout: prob.default(0.1),
  attention_dropout: prob.default(0.1),
  feat_proj_dropout: prob.default(0.0),
  layerdrop: prob.default(0.1),
  layer_norm_eps: z.number().positive().default(1e-5),
  feat_extract_norm: z.enum(['group', 'layer']).default('group'),
  feat_extract_activation: act.default('gelu'),
  conv_dim: z.array(posInt).min(1).default([512, 512, 512, 512, 512, 512, 512]),
  conv_stride: z.array(posInt).min(1).default([5, 2, 2, 2, 2, 2, 2]),
  conv_kernel: z.array(posInt).min(1).default([10, 3, 3, 3, 3, 2, 2]),
  conv_bias: z.boolean().default(false),
  num_feat_extract_layers: posInt.optional(),
  num_conv_pos_embeddings: posInt.default(128),
  num_conv_pos_embedding_groups: posInt.default(16),
  do_stable_layer_norm: z.boolean().default(false),
  // HuBERT
  feat_proj_layer_norm: z.boolean().default(true),
  conv_pos_batch_norm: z.literal(false).default(false),
  // WavLM
  num_buckets: posInt.default(320),
  max_bucket_distance: posInt.default(800),
  // wav2vec2-conformer
  position_embeddings_type: z.enum(['relative', 'rotary']).nullable().default('relative'),
  rotary_embedding_base: z.number().positive().default(10000),
  max_source_positions: posInt.default(5000),
  conv_depthwise_kernel_size: posInt.default(31),
  conformer_conv_dropout: prob.default(0.1),
  // Not built: an adapter on top of the encoder, attention adapters (MMS).
  add_adapter: z.literal(false).default(false),
  adapter_attn_dim: z.null().optional(),
});

export type Wav2Vec2Config = z.infer<typeof wav2vec2ConfigSchema>;

/** The normalised view the graph builder reads. */
export interface Wav2Vec2Arch {
  modelType: Wav2Vec2ModelType;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  hiddenAct: Wav2Vec2Activation;
  hiddenDropout: number;
  activationDropout: number;
  attentionDropout: number;
  featProjDropout: number;
  /** LayerDrop: each layer is skipped with this probability in training (WavLM never skips layer 0). */
  layerdrop: number;
  layerNormEps: number;
  featExtractNorm: 'group' | 'layer';
  featExtractAct: Wav2Vec2Activation;
  /** One entry per conv layer of the feature encoder. */
  conv: { dim: number; kernel: number; stride: number }[];
  convBias: boolean;
  posConvKernel: number;
  posConvGroups: number;
  /** Pre-LN layers with the encoder's LayerNorm at the end (large checkpoints). */
  stableLayerNorm: boolean;
  /** LayerNorm before the feature projection (always for wav2vec2 / WavLM / conformer; HuBERT's option). */
  featProjLayerNorm: boolean;
  numBuckets: number;
  maxBucketDistance: number;
  positionEmbeddingsType: 'relative' | 'rotary' | null;
  rotaryBase: number;
  maxSourcePositions: number;
  depthwiseKernel: number;
  conformerConvDropout: number;
}

/**
 * Parses a config.json object. `source` names the file in errors. Cross-field checks:
 * conv lists of one length (and num_feat_extract_layers, when present, equal to it),
 * heads dividing the hidden size, the conformer's odd depthwise kernel, an even head
 * size for rotary embeddings.
 */
export function parseWav2Vec2Config(raw: unknown, source = 'config.json'): Wav2Vec2Config {
  const r = wav2vec2ConfigSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(source, formatIssues(r.error.issues));
  const c = r.data;
  const issues: string[] = [];
  const n = c.conv_dim.length;
  if (c.conv_kernel.length !== n || c.conv_stride.length !== n)
    issues.push(
      `conv_dim, conv_kernel and conv_stride must have one length, got ${n}, ${c.conv_kernel.length}, ${c.conv_stride.length}`,
    );
  if (c.num_feat_extract_layers !== undefined && c.num_feat_extract_layers !== n)
    issues.push(`num_feat_extract_layers is ${c.num_feat_extract_layers} but conv_dim has ${n} entries`);
  if (c.hidden_size % c.num_attention_heads !== 0)
    issues.push(
      `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
    );
  if (c.hidden_size % c.num_conv_pos_embedding_groups !== 0)
    issues.push(
      `hidden_size ${c.hidden_size} is not divisible by num_conv_pos_embedding_groups ${c.num_conv_pos_embedding_groups}`,
    );
  if (c.model_type === 'wav2vec2-conformer') {
    if (c.conv_depthwise_kernel_size % 2 !== 1)
      issues.push(
        `conv_depthwise_kernel_size must be odd ('SAME' padding), got ${c.conv_depthwise_kernel_size}`,
      );
    const dh = c.hidden_size / c.num_attention_heads;
    if (c.position_embeddings_type === 'rotary' && dh % 2 !== 0)
      issues.push(`rotary position embeddings need an even head size, got ${dh}`);
    if (c.position_embeddings_type === 'relative' && c.hidden_size % 2 !== 0)
      issues.push(`relative position embeddings need an even hidden_size, got ${c.hidden_size}`);
  }
  if (issues.length) throw new ConfigError(source, issues);
  return c;
}

/** The builder's view of a parsed config. */
export function wav2vec2Arch(c: Wav2Vec2Config): Wav2Vec2Arch {
  const mt = c.model_type;
  return {
    modelType: mt,
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    intermediateSize: c.intermediate_size,
    hiddenAct: c.hidden_act,
    hiddenDropout: c.hidden_dropout,
    activationDropout: c.activation_dropout,
    attentionDropout: c.attention_dropout,
    featProjDropout: c.feat_proj_dropout,
    layerdrop: c.layerdrop,
    layerNormEps: c.layer_norm_eps,
    featExtractNorm: c.feat_extract_norm,
    featExtractAct: c.feat_extract_activation,
    conv: c.conv_dim.map((dim, i) => ({ dim, kernel: c.conv_kernel[i], stride: c.conv_stride[i] })),
    convBias: c.conv_bias,
    posConvKernel: c.num_conv_pos_embeddings,
    posConvGroups: c.num_conv_pos_embedding_groups,
    // The conformer has its own block; its encoder is pre-LN-like with a final LayerNorm.
    stableLayerNorm: mt === 'wav2vec2-conformer' ? false : c.do_stable_layer_norm,
    featProjLayerNorm: mt === 'hubert' ? c.feat_proj_layer_norm : true,
    numBuckets: c.num_buckets,
    maxBucketDistance: c.max_bucket_distance,
    positionEmbeddingsType: c.position_embeddings_type,
    rotaryBase: c.rotary_embedding_base,
    maxSourcePositions: c.max_source_positions,
    depthwiseKernel: c.conv_depthwise_kernel_size,
    conformerConvDropout: c.conformer_conv_dropout,
  };
}

/** Feature-encoder output length per input length (HF `_get_feat_extract_output_lengths`, floor division). */
export function featExtractOutputLength(arch: Pick<Wav2Vec2Arch, 'conv'>, samples: number): number {
  let l = samples;
  for (const { kernel, stride } of arch.conv) l = Math.floor((l - kernel) / stride) + 1;
  return Math.max(l, 0);
}

/** The fewest samples that give one frame: the feature encoder's receptive field (400 for base). */
export function minInputSamples(arch: Pick<Wav2Vec2Arch, 'conv'>): number {
  let l = 1;
  for (let i = arch.conv.length - 1; i >= 0; i--) l = (l - 1) * arch.conv[i].stride + arch.conv[i].kernel;
  return l;
}
