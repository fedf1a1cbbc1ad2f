/**
 * Per-frame speech codes from a pretrained folder's quantiser (eval form: the argmax per
 * group, no noise), one packed integer per valid frame: sum_g idx_g * V^(G-1-g). The
 * conformer quantises its normalised subsampled features, wav2vec2 its extract_features,
 * as in pretraining. Encoders without a quantiser get codes from src/models/codes (k-means).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor, RuntimeOptions } from '../graph/runtime.js';
import { ParameterStore } from '../graph/params.js';
import { readSafetensors, SafetensorsFile } from '../graph/safetensors.js';
import { Predictor } from '../graph/train.js';
import type { Graph, Tensor } from '../graph/graph.js';
import type { InputDecl } from '../graph/train.js';
import {
  CONFORMER_MODEL_TYPE,
  conformerArch,
  conformerEncoder,
  conformerWeightsFromCheckpoint,
  parseConformerConfig,
} from '../models/conformer/index.js';
import {
  buildWav2Vec2,
  parseWav2Vec2Config,
  wav2vec2Arch,
  wav2vec2Inputs,
} from '../models/wav2vec2/index.js';
import { findHfWeightsFile, loadHfWeights } from '../models/hf/weights.js';
import { gumbelVectorQuantizer, parsePretrainingConfig } from '../models/wav2vec2/quantizer.js';
import { normalised } from './conformer.js';
import { PRETRAINABLE_WAV2VEC2, wav2vec2PretrainingParams } from './wav2vec2.js';

export interface QuantizerCodes {
  /** Packed codes of each utterance's valid frames, in batch order. */
  codes: Int32Array[];
  /** G and V: codes lie in [0, V^G). */
  numGroups: number;
  numVars: number;
}

/** Codes of every utterance in `batches` (the encoder's inputs: input_features or input_values, attention_mask). */
export async function quantizerCodes(
  dir: string,
  batches: Iterable<Record<string, HostTensor>>,
  opts: { runtime?: RuntimeOptions } = {},
): Promise<QuantizerCodes> {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new Error(`${dir}: no config.json`);
  const raw = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  const pcfg = parsePretrainingConfig(raw, cfgPath);
  const file = findHfWeightsFile(dir);
  if (!file) throw new Error(`${dir}: no weights file`);
  const tensors = file.endsWith('model.safetensors')
    ? readSafetensors(file).tensors
    : loadHfWeights(dir).tensors;
  if (!tensors.has('quantizer.codevectors'))
    throw new Error(`${file}: no quantizer (quantizer.codevectors): use k-means codes for this encoder`);
  const params = new ParameterStore();
  let inputs: Record<string, InputDecl>;
  let features: (
    g: Graph,
    i: Record<string, Tensor>,
  ) => {
    x: Tensor;
    mask: Tensor;
  };
  if (raw.model_type === CONFORMER_MODEL_TYPE) {
    const arch = conformerArch(parseConformerConfig(raw, cfgPath));
    for (const [k, v] of conformerWeightsFromCheckpoint(arch, tensors, file).weights) params.set(k, v);
    for (const [k, v] of tensors) if (k.startsWith('quantizer.')) params.set(k, v);
    const enc = conformerEncoder(raw, { configSource: cfgPath });
    inputs = enc.inputs;
    features = (g, i) => {
      const out = enc.buildWith(g, i, { training: false });
      return { x: normalised(out.subsampled), mask: out.mask };
    };
  } else if (typeof raw.model_type === 'string' && raw.model_type in PRETRAINABLE_WAV2VEC2) {
    const arch = wav2vec2Arch(parseWav2Vec2Config(raw, cfgPath));
    for (const [k, v] of wav2vec2PretrainingParams(arch, tensors, file))
      if (k !== 'masked_spec_embed') params.set(k, v);
    inputs = wav2vec2Inputs();
    features = (_g, i) => {
      const out = buildWav2Vec2(arch, { input_values: i.input_values, attention_mask: i.attention_mask });
      return { x: out.extractFeatures!, mask: out.mask };
    };
  } else
    throw new Error(`${cfgPath}: model_type ${JSON.stringify(raw.model_type)} has no quantiser lemer builds`);
  for (const k of [...params.names()]) if (/^project_(q|hid)\./.test(k)) params.delete(k);
  const p = await Predictor.create({
    inputs,
    params,
    runtime: opts.runtime ?? { threads: 1 },
    build: (g, i) => {
      const { x, mask } = features(g, i);
      const q = gumbelVectorQuantizer(x, {
        numGroups: pcfg.num_codevector_groups,
        numVars: pcfg.num_codevectors_per_group,
        codevectorDim: pcfg.codevector_dim,
        training: false,
      });
      return { code: q.code, mask };
    },
  });
  if (p.initialised.length) {
    await p.release();
    throw new Error(`${file}: lacks ${p.initialised.join(', ')}`);
  }
  const codes: Int32Array[] = [];
  try {
    for (const feeds of batches) {
      const out = await p.run(feeds);
      const [B, T] = out.code.shape;
      for (let b = 0; b < B; b++) {
        const row: number[] = [];
        for (let t = 0; t < T; t++) if (out.mask.data[b * T + t]) row.push(Number(out.code.data[b * T + t]));
        codes.push(Int32Array.from(row));
      }
    }
  } finally {
    await p.release();
  }
  return { codes, numGroups: pcfg.num_codevector_groups, numVars: pcfg.num_codevectors_per_group };
}

/** The quantiser's code-vector table of a folder, where it has one (a pretraining checkpoint). */
function codevectorTensor(dir: string): HostTensor | null {
  const file = findHfWeightsFile(dir);
  if (!file) return null;
  if (file.endsWith('.safetensors') && !file.endsWith('.index.json')) {
    const f = SafetensorsFile.open(file);
    try {
      return f.names.includes('quantizer.codevectors') ? f.read('quantizer.codevectors') : null;
    } finally {
      f.close();
    }
  }
  return loadHfWeights(dir).tensors.get('quantizer.codevectors') ?? null;
}

/** Whether a speech encoder folder holds a quantiser (its codes can label frames). */
export function hasQuantizer(dir: string): boolean {
  return codevectorTensor(dir) !== null;
}

/** The codebook of a folder's quantiser: the code vector of a packed code, the G group entries concatenated. */
export interface Codebook {
  numGroups: number;
  numVars: number;
  /** D = G * (D / G). */
  dim: number;
  vectorOf(code: number): Float32Array;
}

export function quantizerCodebook(dir: string): Codebook {
  const cfgPath = join(dir, 'config.json');
  const pcfg = parsePretrainingConfig(JSON.parse(readFileSync(cfgPath, 'utf8')) as unknown, cfgPath);
  const t = codevectorTensor(dir);
  if (!t) throw new Error(`${dir}: no quantizer (quantizer.codevectors) to take codebook vectors from`);
  const G = pcfg.num_codevector_groups;
  const V = pcfg.num_codevectors_per_group;
  const per = pcfg.codevector_dim / G;
  if (t.shape.join() !== [1, G * V, per].join())
    throw new Error(
      `${dir}: quantizer.codevectors has shape [${t.shape}], config.json says [1, ${G * V}, ${per}]`,
    );
  const data = Float32Array.from(t.data as ArrayLike<number>);
  return {
    numGroups: G,
    numVars: V,
    dim: G * per,
    vectorOf(code: number): Float32Array {
      if (!(Number.isInteger(code) && code >= 0 && code < V ** G))
        throw new Error(`${dir}: code ${code} is outside the codebook (0 .. ${V ** G - 1})`);
      const out = new Float32Array(G * per);
      let rest = code;
      for (let g = G - 1; g >= 0; g--) {
        const idx = rest % V;
        rest = Math.floor(rest / V);
        out.set(data.subarray((g * V + idx) * per, (g * V + idx + 1) * per), g * per);
      }
      return out;
    },
  };
}
