/**
 * The exported model folder: what `lemer export` writes and `Lemer.load` reads. Everything
 * a prediction needs is in it (no training code, corpus or Python):
 *
 * | file | what |
 * | --- | --- |
 * | `lemer-model.json` | format and version, model kind, labels, graph inputs and outputs, files, text and speech settings |
 * | `model.onnx` | the inference graph, standard ONNX (opset 17), weights as initializers |
 * | `speech.onnx` | LE-MER models only: the same graph cut to its speech branch (G_s), for audio without a transcript |
 * | `model.int8.onnx` | with `--quantize int8`: MatMul weights quantised to 8 bits (DynamicQuantizeLinear + MatMulInteger) |
 * | `model.safetensors` | every weight under its graph name (Hugging Face names under `text_encoder.`, `speech_encoder.`, `head.`) |
 * | `label-embeddings.safetensors` | the head's label embeddings L_t, L_s (also in model.safetensors) |
 * | `labels.json` | the label set, in logit order |
 * | `tokenizer.json` | the text tokenizer (models with a text branch) |
 * | `preprocessor.json` | audio front end: sample rate, waveform or log-mel settings, normalisation |
 * | `config.yaml` | the resolved training config, for the record |
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const MODEL_FORMAT = 'lemer-model';
export const MODEL_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'lemer-model.json';

/** `score-fusion`: a text and a speech model side by side, their logits summed (needs both inputs, as lemer). */
export type ModelKind = 'lemer' | 'text' | 'speech' | 'score-fusion';

export interface InputSpec {
  dtype: string;
  shape: (number | string)[];
}

export interface FrontEndSpec {
  kind: 'logmel' | 'waveform';
  sampleRate: number;
  logMel?: Record<string, unknown> & { normalize?: 'utterance' | 'none' | 'global' };
}

export interface ModelManifest {
  format: typeof MODEL_FORMAT;
  version: number;
  kind: ModelKind;
  labels: string[];
  /** lemer's version that wrote it. */
  createdBy: string;
  createdAt: string;
  /** The run or checkpoint it came from. */
  source: string;
  description: string;
  inputs: Record<string, InputSpec>;
  /** Output names of model.onnx. */
  outputs: string[];
  files: {
    graph: string;
    weights: string;
    labels: string;
    config: string;
    tokenizer?: string;
    preprocessor?: string;
    labelEmbeddings?: string;
    speechGraph?: string;
    int8Graph?: string;
  };
  text?: { maxTokens: number; history: number; labelScope: 'context' | 'current' };
  speech?: FrontEndSpec;
  /** How audio without a transcript is classified, when it can be. */
  speechOnly?: {
    /**
     * `speech-label-attention` (LE-MER): the speech branch's p_g^s, the graph's
     * `speech_label_probs` output where it has one, else softmax(temperature * masked mean
     * over frames of G_s). `speech-model` (score fusion): the speech model's own
     * prediction, the graph's `speech_probs`.
     */
    method: 'speech-label-attention' | 'speech-model';
    temperature: number;
    inputs: Record<string, InputSpec>;
    outputs: string[];
  };
  quantized?: {
    int8: { matmuls: number; bytes: number; accuracyChange?: number; uaChange?: number; speedup?: number };
  };
}

export class ModelFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFolderError';
  }
}

/** Reads and checks a model folder's manifest and that every file it names is there. */
export function readManifest(dir: string): ModelManifest {
  if (!existsSync(dir)) throw new ModelFolderError(`${dir}: model folder not found`);
  if (!statSync(dir).isDirectory())
    throw new ModelFolderError(`${dir}: not a folder (a model is a folder written by 'lemer export')`);
  const file = join(dir, MANIFEST_FILE);
  if (!existsSync(file))
    throw new ModelFolderError(
      `${file}: missing: ${dir} is not a lemer model folder (write one with 'lemer export <run> --out <dir>')`,
    );
  return parseManifest(readFileSync(file, 'utf8'), file, (name) => {
    const p = join(dir, name);
    return existsSync(p) ? null : p;
  });
}

/**
 * Parses and checks a manifest's text (`file` names it in messages). `missing(name)` says
 * where a file the manifest lists is absent (null: present); without it (a web page, whose
 * fetches name what is missing) files are not checked here.
 */
export function parseManifest(
  text: string,
  file: string,
  missing?: (name: string) => string | null,
): ModelManifest {
  let m: ModelManifest;
  try {
    m = JSON.parse(text) as ModelManifest;
  } catch (err) {
    throw new ModelFolderError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (m?.format !== MODEL_FORMAT)
    throw new ModelFolderError(`${file}: format is ${JSON.stringify(m?.format)}, expected "${MODEL_FORMAT}"`);
  if (m.version !== MODEL_FORMAT_VERSION)
    throw new ModelFolderError(
      `${file}: model folder format version ${JSON.stringify(m.version)}; this lemer reads version ${MODEL_FORMAT_VERSION}` +
        (typeof m.version === 'number' && m.version > MODEL_FORMAT_VERSION
          ? ' (written by a newer lemer: upgrade lemer)'
          : ' (export the model again with this lemer)'),
    );
  if (!Array.isArray(m.labels) || m.labels.length < 2)
    throw new ModelFolderError(`${file}: labels must list at least two classes`);
  if (!['lemer', 'text', 'speech', 'score-fusion'].includes(m.kind))
    throw new ModelFolderError(`${file}: unknown model kind ${JSON.stringify(m.kind)}`);
  for (const [key, name] of Object.entries(m.files ?? {})) {
    if (typeof name !== 'string' || !missing) continue;
    const p = missing(name);
    if (p !== null) throw new ModelFolderError(`${p}: missing (${MANIFEST_FILE} lists it as files.${key})`);
  }
  for (const need of ['graph', 'labels'] as const)
    if (!m.files?.[need]) throw new ModelFolderError(`${file}: files.${need} is missing`);
  if (m.kind !== 'speech' && !m.files.tokenizer)
    throw new ModelFolderError(`${file}: a ${m.kind} model needs files.tokenizer`);
  if (m.kind !== 'text' && !m.speech)
    throw new ModelFolderError(`${file}: a ${m.kind} model needs its speech front end (speech)`);
  return m;
}
