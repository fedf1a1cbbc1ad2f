/**
 * Writes a model folder (see folder.ts) from a model's inference builder and its weights.
 * The folder is built in a temporary sibling and renamed into place: readers see the old
 * folder or the whole new one.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { Graph, Tensor } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import type { HostTensor } from '../graph/runtime.js';
import { safetensorsBytes } from '../graph/safetensors.js';
import { lemerVersion } from '../graph/checkpoint.js';
import { Predictor, type BuildContext, type InputDecl } from '../graph/train.js';
import {
  inlineParams,
  markInt8,
  pruneGraph,
  quantizeMatMulsInt8,
  type QuantizeSummary,
} from './graph-passes.js';
import {
  MANIFEST_FILE,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  type FrontEndSpec,
  type ModelKind,
  type ModelManifest,
} from './folder.js';

/** The outputs the predictor reads, when the model has them. */
export const ATTENTION_OUTPUTS = ['text_label_attention', 'speech_label_attention'] as const;
export const MASK_OUTPUTS = ['text_mask', 'speech_mask'] as const;

export interface ExportSpec {
  kind: ModelKind;
  labels: string[];
  /** The model's inference inputs and builder (src/models/lemer's lemerModel, or any of that shape). */
  model: {
    inputs: Record<string, InputDecl>;
    infer(g: Graph, inputs: Record<string, Tensor>, ctx: BuildContext): Record<string, Tensor>;
  };
  /** Every weight, by graph parameter name. */
  params:
    | Map<string, HostTensor>
    | { get(name: string): HostTensor | undefined; entries(): Iterable<[string, HostTensor]> };
  /** A tokenizer.json object (text models). */
  tokenizer?: Record<string, unknown> | null;
  tokenizerConfig?: Record<string, unknown> | null;
  text?: { maxTokens: number; history: number; labelScope: 'context' | 'current' };
  speech?: FrontEndSpec;
  /** The head's label temperature (the speech-only path's softmax scale). */
  labelTemperature?: number;
  /** The resolved config, for the record. */
  config?: unknown;
  source: string;
  description: string;
}

export interface ExportOptions {
  quantize?: 'int8' | null;
  /** Weights with fewer values stay float in the int8 graph (default 4096: tiny layers gain nothing). */
  int8MinValues?: number;
  /** Called with each file written, for logs. */
  log?: (msg: string) => void;
}

export interface ExportResult {
  dir: string;
  manifest: ModelManifest;
  files: Record<string, number>;
  int8?: QuantizeSummary;
}

function buildInferGraph(spec: ExportSpec, keep?: readonly string[]): Graph {
  const g = Predictor.buildGraph({
    inputs: spec.model.inputs,
    build: spec.model.infer,
    ortContribOps: false, // standard ONNX: loadable by any ONNX Runtime
  });
  inlineParams(g, (n) => spec.params.get(n));
  pruneGraph(g, keep);
  return g;
}

function inputsOf(g: Graph): Record<string, { dtype: string; shape: (number | string)[] }> {
  return Object.fromEntries(
    g.inputs.map((t) => [
      t.name,
      { dtype: t.dtype, shape: t.shape.map((d) => (typeof d === 'number' ? d : String(d))) },
    ]),
  );
}

/** Writes `files` into a fresh temporary sibling of `out`, then swaps it into place. */
function writeFolderAtomic(out: string, files: Map<string, string | Uint8Array>): void {
  const dir = resolve(out);
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.${process.pid}.${Date.now()}.tmp`);
  const old = join(dirname(dir), `.${basename(dir)}.${process.pid}.${Date.now()}.old`);
  try {
    mkdirSync(tmp);
    for (const [name, data] of files) writeFileSync(join(tmp, name), data);
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (existsSync(old) && !existsSync(dir)) renameSync(old, dir);
    throw err;
  }
  rmSync(old, { recursive: true, force: true });
}

/** Builds the graphs and writes the model folder `out`. */
export function writeModelFolder(spec: ExportSpec, out: string, opts: ExportOptions = {}): ExportResult {
  const files = new Map<string, string | Uint8Array>();
  const g = buildInferGraph(spec);
  const outputs = g.outputs.map((o) => o.name);
  for (const need of ['logits', 'probs'])
    if (!outputs.includes(need))
      throw new Error(`export: the model's inference graph has no '${need}' output`);
  const doc = `lemer ${spec.kind} model (${spec.labels.join(', ')}) from ${spec.source}`;
  files.set('model.onnx', toOnnx(g, { docString: doc }));

  // Weights, under their graph names.
  const weights: Record<string, HostTensor> = {};
  for (const [n, t] of spec.params.entries()) if (g.params.has(n)) weights[n] = t;
  files.set('model.safetensors', safetensorsBytes(weights, { format: 'pt', source: 'lemer export' }));
  const labelEmb = Object.fromEntries(
    // Score fusion: each model's under its scope (text_model.head.label_embeddings.text, ...).
    Object.entries(weights).filter(([n]) => /(^|\.)head\.label_embeddings\./.test(n)),
  );

  const manifest: ModelManifest = {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    kind: spec.kind,
    labels: [...spec.labels],
    createdBy: lemerVersion(),
    createdAt: new Date().toISOString(),
    source: spec.source,
    description: spec.description,
    inputs: inputsOf(g),
    outputs,
    files: {
      graph: 'model.onnx',
      weights: 'model.safetensors',
      labels: 'labels.json',
      config: 'config.yaml',
    },
  };
  if (Object.keys(labelEmb).length) {
    files.set('label-embeddings.safetensors', safetensorsBytes(labelEmb));
    manifest.files.labelEmbeddings = 'label-embeddings.safetensors';
  }
  files.set('labels.json', JSON.stringify(spec.labels, null, 1) + '\n');
  files.set(
    'config.yaml',
    `# resolved config of ${spec.source}\n${toYaml(spec.config ?? {}, { lineWidth: 0 })}`,
  );
  if (spec.kind !== 'speech') {
    if (!spec.tokenizer) throw new Error(`export: a ${spec.kind} model needs its tokenizer`);
    if (!spec.text) throw new Error(`export: a ${spec.kind} model needs its text settings`);
    files.set('tokenizer.json', JSON.stringify(spec.tokenizer));
    if (spec.tokenizerConfig)
      files.set('tokenizer_config.json', JSON.stringify(spec.tokenizerConfig, null, 1));
    manifest.files.tokenizer = 'tokenizer.json';
    manifest.text = { ...spec.text };
  }
  if (spec.kind !== 'text') {
    if (!spec.speech) throw new Error(`export: a ${spec.kind} model needs its speech front end`);
    files.set('preprocessor.json', JSON.stringify(spec.speech, null, 1) + '\n');
    manifest.files.preprocessor = 'preprocessor.json';
    manifest.speech = { ...spec.speech };
  }
  // Audio without a transcript: the speech branch alone (p_g^s from G_s), a graph cut to it.
  if (spec.kind === 'lemer' && outputs.includes('speech_label_attention')) {
    // p_g^s itself where the model outputs it (src/models/lemer: 'speech_label_probs'), else computed from G_s.
    const keep = ['speech_label_attention', 'speech_label_probs', 'speech_mask'].filter((o) =>
      outputs.includes(o),
    );
    const sg = buildInferGraph(spec, keep);
    if (sg.inputs.some((t) => t.name.startsWith('text.')))
      throw new Error(
        'export: the speech label attention depends on text inputs; cannot cut a speech-only graph',
      );
    files.set('speech.onnx', toOnnx(sg, { docString: `${doc}: speech branch only (G_s)` }));
    manifest.files.speechGraph = 'speech.onnx';
    manifest.speechOnly = {
      method: 'speech-label-attention',
      temperature: spec.labelTemperature ?? 1,
      inputs: inputsOf(sg),
      outputs: keep,
    };
  }
  // Score fusion without a transcript: the speech model's own prediction.
  if (spec.kind === 'score-fusion' && outputs.includes('speech_probs')) {
    const keep = ['speech_probs', 'speech_label_attention', 'speech_mask'].filter((o) => outputs.includes(o));
    const sg = buildInferGraph(spec, keep);
    if (sg.inputs.some((t) => t.name.startsWith('text.')))
      throw new Error('export: the speech model depends on text inputs; cannot cut a speech-only graph');
    files.set('speech.onnx', toOnnx(sg, { docString: `${doc}: the speech model only` }));
    manifest.files.speechGraph = 'speech.onnx';
    manifest.speechOnly = { method: 'speech-model', temperature: 1, inputs: inputsOf(sg), outputs: keep };
  }
  let int8: QuantizeSummary | undefined;
  if (opts.quantize === 'int8') {
    const qg = buildInferGraph(spec);
    int8 = quantizeMatMulsInt8(qg, { minValues: opts.int8MinValues });
    const bytes = markInt8(
      toOnnx(qg, { docString: `${doc}: int8 weight-quantised MatMuls` }),
      int8.int8Initializers,
    );
    files.set('model.int8.onnx', bytes);
    manifest.files.int8Graph = 'model.int8.onnx';
    manifest.quantized = { int8: { matmuls: int8.matmuls, bytes: bytes.length } };
  }
  files.set(MANIFEST_FILE, JSON.stringify(manifest, null, 2) + '\n');
  writeFolderAtomic(out, files);
  const sizes: Record<string, number> = {};
  for (const [k, v] of files) sizes[k] = typeof v === 'string' ? Buffer.byteLength(v) : v.length;
  opts.log?.(`wrote ${out}: ${[...files.keys()].join(', ')}`);
  return { dir: resolve(out), manifest, files: sizes, int8 };
}

/** Updates the manifest of a written folder (the int8 accuracy and speed figures). */
export function updateManifest(dir: string, m: ModelManifest): void {
  const tmp = join(dir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n');
  renameSync(tmp, join(dir, MANIFEST_FILE));
}
