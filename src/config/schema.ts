import { z } from 'zod';

/*
 * One experiment = one config file. Every default is the paper's value (SPEC.md) unless its
 * comment says "our choice". Objects are strict: a misspelt key is an error, never ignored.
 * `.prefault({})` (not `.default`) so that a missing section is filled by its own defaults.
 */

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const posNum = z.number().positive();
const nonNeg = z.number().nonnegative();

export const textSchema = z
  .strictObject({
    /** Tokens of history + current utterance together, at most (paper: 150). */
    maxTokens: posInt.default(150),
    /** Previous utterances of the same dialogue given as context (paper: 10). */
    history: nonNegInt.default(10),
    /** Keywords per class for the semantic label embedding (paper: K = 9). */
    labelK: posInt.default(9),
    /** Table 1 init variants of L_t. */
    labelInit: z.enum(['tfidf', 'label-words', 'random']).default('tfidf'),
    /** Keyword embeddings: encoder output hidden states (paper reading) or input word-piece embeddings. */
    labelSource: z.enum(['hidden', 'wordpiece']).default('hidden'),
    /** Label-token attention over the whole context or over the current utterance's tokens only. */
    labelScope: z.enum(['context', 'current']).default('context'),
  })
  .prefault({});

/** Key names follow src/audio's LogMelOptions, so that the section passes straight through. */
export const logMelSchema = z
  .strictObject({
    numBins: posInt.default(80),
    frameLengthMs: posNum.default(25),
    frameShiftMs: posNum.default(10),
    /** Per-utterance mean/variance normalisation (paper) or none. */
    normalize: z.enum(['utterance', 'none', 'global']).default('utterance'),
    /**
     * Our choice: floor on each bin's standard deviation in per-utterance normalisation, in
     * nats (src/audio cmvn). Keeps near-constant bins (dithered silence, a pure tone's empty
     * bins) bounded; real speech bins lie above it.
     */
    stdFloor: posNum.default(1),
    /** Keep mel filters that cover no FFT bin at the log floor, as torchaudio's kaldi.fbank (e.g. 128 bins). */
    allowEmptyFilters: z.boolean().default(false),
  })
  .prefault({});

/**
 * The paper applies SpecAugment without giving settings. Our choice, the defaults of
 * src/audio's specAugment: no time warp, 2 time masks of up to 40 frames (and at most 20% of
 * the utterance each), 2 frequency masks of up to 27 bins, masked cells set to 0 (with
 * `logMel.normalize: global`, to each bin's training mean: 0 once the model normalises).
 */
export const specAugmentSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    timeMasks: nonNegInt.default(2),
    timeMaskMax: nonNegInt.default(40),
    timeMaskMaxRatio: z.number().min(0).max(1).default(0.2),
    freqMasks: nonNegInt.default(2),
    freqMaskMax: nonNegInt.default(27),
    fill: z.enum(['zero', 'mean']).default('zero'),
    /**
     * Our addition, off by default (not in the paper): frequency warping before the masks, each
     * utterance's mel bins stretched by a factor in [1 - w, 1 + w] (like vocal-tract-length
     * perturbation: other speakers' formants, for small corpora with few speakers).
     */
    freqWarp: z.number().min(0).lt(1).default(0),
  })
  .prefault({});

export const speechSchema = z
  .strictObject({
    /** Encoders take 16 kHz waveforms; audio is resampled to this. */
    sampleRate: posInt.default(16000),
    /** Speech codes per class for the tonal label embedding (paper: K = 100). */
    labelK: posInt.default(100),
    /** Table 1 init variants of L_s. */
    labelInit: z.enum(['codebook', 'bert', 'random']).default('codebook'),
    /** codebook init: mean hidden state at frames with a top-K code (default) or codebook vectors + learned projection. */
    codebookMode: z.enum(['hidden-mean', 'projection']).default('hidden-mean'),
    /** Where frame codes come from: the encoder's quantizer, k-means over features, or whichever the encoder has. */
    codes: z.enum(['auto', 'quantizer', 'kmeans']).default('auto'),
    logMel: logMelSchema,
    specAugment: specAugmentSchema,
  })
  .prefault({});

export const headSchema = z
  .strictObject({
    /** Table 3: constraint = C1 (LE-MER), sum = C2, label-only = C3, vanilla = C4; score-fusion = Table 2. */
    fusion: z.enum(['constraint', 'sum', 'label-only', 'vanilla', 'score-fusion']).default('constraint'),
    /** Scale of the cosine logits of the label-attention heads (paper-literal: 1). */
    labelTemperature: posNum.default(1),
    /** A_l normalised like A_r (softmax over frames) before L_c, or raw. */
    alNorm: z.enum(['softmax', 'raw']).default('softmax'),
    /** Loss weights mu1..mu4 of Eq 12: L = mu1 L_m + mu2 L_c + mu3 L_g^t + mu4 L_g^s. */
    mu: z
      .strictObject({
        fusion: nonNeg.default(1),
        constraint: nonNeg.default(0.5),
        textLabel: nonNeg.default(0.2),
        speechLabel: nonNeg.default(0.2),
      })
      .prefault({}),
  })
  .prefault({});

export const optimSchema = z
  .strictObject({
    /** 'adam' (torch.optim.Adam, the paper) or 'adamw' (decoupled weight decay). */
    name: z.enum(['adam', 'adamw']).default('adam'),
    /** L2 (Adam) or decoupled (AdamW) weight decay; biases and norm weights are excluded. */
    weightDecay: nonNeg.default(0),
    /** After warm-up: constant (paper), or linear / cosine decay to zero at the last step. */
    decay: z.enum(['constant', 'linear', 'cosine']).default('constant'),
    /** Adam betas and epsilon: PyTorch's defaults (the paper gives none). */
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: posNum.default(1e-8),
    /** Linear warm-up steps (paper: 8000). */
    warmupSteps: nonNegInt.default(8000),
    lr: z
      .strictObject({
        speech: nonNeg.default(1e-6),
        text: nonNeg.default(5e-6),
        /** Our choice: the paper gives no rate for the head, only that it is separate. */
        head: nonNeg.default(1e-4),
      })
      .prefault({}),
    batchSize: posInt.default(16),
    /** Micro-batches summed per optimiser step, where memory is short. */
    gradAccum: posInt.default(1),
    /** Global gradient-norm clipping; null turns it off. Our choice: 1.0 (the paper gives none). */
    clipNorm: posNum.nullable().default(1),
    /**
     * Where Adam runs: 'graph' (nodes of the training step), 'host' (the step outputs the
     * gradients, the update runs in place on the host arrays: no second copy of weights and
     * Adam state, about half the memory when fine-tuning base-size encoders), 'auto' (host
     * from 20 M trained parameters on, and with runtime.stepsPerRun 1 only). Same numbers.
     */
    placement: z.enum(['graph', 'host', 'auto']).default('auto'),
  })
  .prefault({});

const encoderSchema = (freeze: boolean) =>
  z
    .strictObject({
      /** A local Hugging Face model folder (config.json, *.safetensors, tokenizer files). Nothing is downloaded. */
      path: z.string().min(1).nullable().default(null),
      /** Frozen encoders are not trained; their features can be cached. */
      freeze: z.boolean().default(freeze),
    })
    .prefault({});

/** Where and how graphs run (ONNX Runtime). */
export const runtimeSchema = z
  .strictObject({
    /** cpu (default); cuda and webgpu where this onnxruntime-node install has them (see README, GPU). */
    executionProvider: z.enum(['cpu', 'cuda', 'webgpu', 'dml', 'coreml']).default('cpu'),
    /** Intra-op threads; null = ONNX Runtime's default (one per core). */
    threads: posInt.nullable().default(null),
    /** Training steps per ONNX Runtime run (an ONNX Loop): fewer copies of weights and state. */
    stepsPerRun: posInt.default(1),
  })
  .prefault({});

/**
 * Sizes of the encoders built in place (trained from scratch) when `encoders.<m>.path` is
 * null: the demo's, and a start for real data without pretrained weights. Our choice:
 * small enough that the demo's cross-validation runs in minutes on two cores.
 */
export const inPlaceTextSchema = z
  .strictObject({
    /** A BERT-shaped encoder; its WordPiece vocabulary is built from the training fold's texts. */
    vocabSize: posInt.default(1000),
    hiddenSize: posInt.default(64),
    numLayers: posInt.default(2),
    numHeads: posInt.default(4),
    intermediateSize: posInt.default(128),
    dropout: z.number().min(0).lt(1).default(0.1),
  })
  .prefault({});

export const inPlaceSpeechSchema = z
  .strictObject({
    /**
     * compact: 1-D convolution subsampling (x4 in time) + attention / depthwise-conv / FFN blocks
     * (src/train/inplace.ts, fast: the demo's); conformer: the paper-style log-mel conformer
     * (src/models/conformer: 2-D convolution subsampling, relative positions, BatchNorm).
     */
    kind: z.enum(['compact', 'conformer']).default('compact'),
    hiddenSize: posInt.default(64),
    numLayers: posInt.default(2),
    numHeads: posInt.default(4),
    ffnDim: posInt.default(128),
    convKernel: posInt.default(15),
    dropout: z.number().min(0).lt(1).default(0.1),
  })
  .prefault({});

/** How `lemer train` / `lemer cv` fit a model (src/train). Our choices where the paper is silent. */
export const trainSchema = z
  .strictObject({
    /** What is trained: the fused model, one modality, or both unimodal models with summed logits (Table 2). */
    model: z.enum(['lemer', 'text', 'speech', 'score-fusion']).default('lemer'),
    /** Unimodal models with or without their label-embedding head (Tables 1-2); LE-MER always has them. */
    labelEmbeddings: z.boolean().default(true),
    /** Passes over the training part. Our choice (the paper gives none). */
    epochs: posInt.default(30),
    /** Stop after this many validations without a better validation UA; null = never stop early. */
    patience: posInt.nullable().default(5),
    /** Test weights: the average of the N best validation checkpoints (1 = the best one; ESPnet's avg-num). */
    averageBest: posInt.default(1),
    /** Share of each fold's training utterances held out (seeded) for early stopping and the best checkpoint. */
    validFraction: z.number().gt(0).lt(1).default(0.1),
    /**
     * What the validation part is drawn by: single utterances (default), or whole speakers /
     * sessions of the training part (a share validFraction of them, at least one), so that
     * early stopping foresees an unseen speaker as the test fold is one.
     */
    validBy: z.enum(['utterance', 'speaker', 'session']).default('utterance'),
    /** Warm-up as a share of the run's updates (small data); null = optim.warmupSteps. */
    warmupFraction: z.number().min(0).max(1).nullable().default(null),
    /** Validate every this many epochs. */
    evalEvery: posInt.default(1),
    /** Write the resumable checkpoint every this many epochs. */
    checkpointEvery: posInt.default(1),
    /** Fine-tune only the top N layers of each (unfrozen) encoder; null = all layers. */
    trainableLayers: nonNegInt.nullable().default(null),
    /** Dropout on the head's pooled vector before the classifier (training only). Our choice: 0.1. */
    headDropout: z.number().min(0).lt(1).default(0.1),
    /** The head reads a learned softmax-weighted sum of every encoder layer (SUPERB) instead of the last one. */
    layerWeights: z.boolean().default(false),
    /** Class-balanced loss weights (inverse class frequency in the training part). Off, as in the paper. */
    classBalanced: z.boolean().default(false),
    /** Utterances per forward pass when predicting (validation, test). */
    evalBatchSize: posInt.default(32),
    /** Decoded audio, log-mel and frozen-encoder features; null = $LEMER_CACHE/train (default ~/.cache/lemer/train). */
    cacheDir: z.string().min(1).nullable().default(null),
    /** Audio that fails to decode: stop before training (fail) or leave those utterances out, counted (skip). */
    badAudio: z.enum(['fail', 'skip']).default('fail'),
    /** Speech codes from k-means (encoders without a quantizer): number of clusters over the training fold's frames. Our choice. */
    speechCodes: posInt.default(256),
    inPlace: z.strictObject({ text: inPlaceTextSchema, speech: inPlaceSpeechSchema }).prefault({}),
  })
  .prefault({});

/**
 * 2nd-stage pretraining (paper 3.2, SPEC "2nd stage pretraining") as a step of `lemer cv`:
 * per fold, wav2vec 2.0-style self-supervised training of the speech encoder on that fold's
 * training audio only (src/pretrain), saved in the fold's folder; fine-tuning starts from it.
 */
export const pretrainSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Updates (our choice: the paper gives none). */
    steps: posInt.default(1000),
    batchSize: posInt.default(8),
    /** Peak learning rate (AdamW, linear warm-up then linear decay). */
    lr: posNum.default(5e-4),
    /** Warm-up updates; null = a tenth of the steps. */
    warmupSteps: nonNegInt.nullable().default(null),
    /** Longer utterances are cut to this. */
    maxSeconds: posNum.default(15),
    /** Share of encoder frames masked before span overlaps (wav2vec 2.0: 0.65). */
    maskProb: z.number().gt(0).max(1).default(0.65),
    /** Span length in encoder frames; null = 5 for the conformer (40 ms frames), 10 for wav2vec2. */
    maskLength: posInt.nullable().default(null),
    /** Negatives per masked frame; null = the encoder config's num_negatives (100). */
    numNegatives: posInt.nullable().default(null),
    /**
     * The quantiser of an in-place conformer (train.inPlace.speech.kind conformer), which has
     * no config.json of its own: groups G, entries per group V, code-vector size D (and the
     * projection of the contrastive loss). Folders use their config's values.
     */
    quantizer: z
      .strictObject({
        groups: posInt.default(2),
        perGroup: posInt.default(320),
        dim: posInt.default(256),
        projDim: posInt.default(256),
      })
      .prefault({}),
  })
  .prefault({});

/** Score fusion of two unimodal models (Table 2): how their logits are weighted before the sum. */
export const scoreFusionSchema = z
  .strictObject({
    /**
     * none: the plain sum (paper); validation-ua: each model's logits times its validation UA
     * above chance (normalised over the two); temperature: each model's logits divided by a
     * temperature fitted on the validation part (least NLL).
     */
    weighting: z.enum(['none', 'validation-ua', 'temperature']).default('none'),
  })
  .prefault({});

export const configSchema = z.strictObject({
  /** Class names in logit order (paper: IEMOCAP 4 classes, exc merged into hap). */
  classes: z
    .array(z.string().min(1))
    .min(2)
    .default(['ang', 'hap', 'sad', 'neu'])
    .refine((c) => new Set(c).size === c.length, { message: 'class names must be unique' }),
  /** Corpus spec, as for --corpus: iemocap:<dir>, emodb:<dir>, meld:<dir>, manifest:<file>, demo. */
  corpus: z.string().min(1).default('demo'),
  /**
   * Renames the corpus' labels and keeps only the mapped ones, as --label-map
   * (`{ Joyful: hap, Mad: ang }`); null: the corpus' labels as they are.
   */
  labelMap: z.record(z.string().min(1), z.string().min(1)).nullable().default(null),
  /** Invalid UTF-8 in corpus text files: an error naming file and line (default), or warn (U+FFFD, counted). */
  invalidUtf8: z.enum(['error', 'warn']).default('error'),
  /** Cross-validation folds: leave-one-session-out (paper) or leave-one-speaker-out. */
  protocol: z.enum(['session', 'speaker']).default('session'),
  seed: z.number().int().default(42),
  text: textSchema,
  speech: speechSchema,
  head: headSchema,
  optim: optimSchema,
  runtime: runtimeSchema,
  train: trainSchema,
  pretrain: pretrainSchema,
  scoreFusion: scoreFusionSchema,
  encoders: z
    .strictObject({
      text: encoderSchema(false),
      speech: encoderSchema(false),
    })
    .prefault({}),
});

/** A validated config with every default filled in. */
export type LemerConfig = z.output<typeof configSchema>;
/** What a config file may contain: every key optional. */
export type LemerConfigInput = z.input<typeof configSchema>;
