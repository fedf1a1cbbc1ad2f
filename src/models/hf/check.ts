/**
 * `lemer encoder check`'s work: load a folder with the encoder registry, run one forward
 * on a built-in input (a short dialogue turn with history, or one second of synthetic
 * speech, batched with a padded second row) and, where the folder holds an ONNX export
 * of the same model, the largest difference between lemer's last hidden state and ONNX
 * Runtime's run of that export over the valid (unpadded) positions.
 */
import { cmvn, logMel } from '../../audio/logmel.js';
import type { Tensor } from '../../graph/graph.js';
import { ParameterStore } from '../../graph/params.js';
import type { HostTensor } from '../../graph/runtime.js';
import { Predictor } from '../../graph/train.js';
import { loadTokenizer, padBatch } from '../../text/tokenizer.js';
import type { Encoder } from '../encoder.js';
import { loadEncoder, type LoadedEncoder } from '../encoders.js';
import { FrozenOnnxEncoder, findOnnxFile, hasOnnxExport } from '../onnx/index.js';

export interface EncoderCheckOptions {
  /** An ONNX variant or file (see ONNX_VARIANTS); default: the folder's onnx/model.onnx when present. */
  onnx?: string;
  /** Skip the ONNX comparison even when an export is there. */
  noOnnx?: boolean;
  threads?: number;
}

export interface EncoderCheckResult {
  folder: string;
  modelType: string;
  modality: 'text' | 'speech';
  architectures: string[];
  hiddenSize: number;
  numLayers: number;
  parameters: number;
  /** Tensors per stored dtype in the weights file. */
  storedDtypes: Record<string, number>;
  computeDtype: 'float32';
  files: string[];
  unused: string[];
  input: { description: string; shapes: Record<string, number[]> };
  output: { shape: number[]; hiddenStates: number; mean: number; std: number; finite: boolean; ms: number };
  onnx: {
    file: string;
    maxAbsDiff: number;
    /** Whether the frozen encoder's mask (Hugging Face's length arithmetic) equals lemer's. */
    masksAgree: boolean;
    ms: number;
  } | null;
}

const TEXT_HISTORY = 'Where were you last night?';
const TEXT_CURRENT = "I can't believe you forgot again!";

/** Deterministic speech-like test signal: harmonics of a gliding pitch plus a little noise. */
function syntheticSpeech(n: number, sampleRate = 16000): Float32Array {
  const x = new Float32Array(n);
  let phase = 0;
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    const f0 = 120 + 40 * Math.sin((2 * Math.PI * i) / sampleRate);
    phase += (2 * Math.PI * f0) / sampleRate;
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const noise = (seed / 4294967296 - 0.5) * 0.02;
    x[i] = 0.3 * Math.sin(phase) + 0.15 * Math.sin(2 * phase) + 0.08 * Math.sin(3 * phase) + noise;
  }
  return x;
}

const i64 = (shape: number[], values: ArrayLike<number | bigint>): HostTensor => ({
  dtype: 'int64',
  shape,
  data: BigInt64Array.from(Array.from(values, (v) => BigInt(v))),
});

async function textFeeds(
  dir: string,
  enc: Encoder,
): Promise<{ feeds: Record<string, HostTensor>; description: string }> {
  let tok = null;
  try {
    tok = await loadTokenizer(dir);
  } catch {
    tok = null;
  }
  let rows: { ids: number[]; typeIds: number[] }[];
  let description: string;
  let pad = typeof enc.config.pad_token_id === 'number' ? enc.config.pad_token_id : 0;
  if (tok) {
    const limit = (enc as { maxLength?: number }).maxLength;
    const maxLength = Math.min(64, limit ?? 64);
    rows = [
      tok.encode(TEXT_CURRENT, { history: [TEXT_HISTORY], maxLength }),
      tok.encode(TEXT_HISTORY, { maxLength }),
    ];
    pad = tok.padId;
    description = `"${TEXT_HISTORY}" + "${TEXT_CURRENT}" and "${TEXT_HISTORY}" alone (padded), through ${tok.source}`;
  } else {
    const vocab = typeof enc.config.vocab_size === 'number' ? enc.config.vocab_size : 100;
    const ids = Array.from({ length: 12 }, (_, i) => 3 + ((i * 7) % Math.max(1, vocab - 3)));
    rows = [
      { ids, typeIds: ids.map((_, i) => (i < 5 ? 0 : 1)) },
      { ids: ids.slice(0, 7), typeIds: ids.slice(0, 7).map(() => 0) },
    ];
    description = 'fixed token ids (no tokenizer in the folder), a row of 12 and a padded row of 7';
  }
  const b = padBatch(
    rows.map((r) => ({ ...r, currentStart: 0, currentEnd: r.ids.length })),
    pad,
  );
  const feeds: Record<string, HostTensor> = {
    input_ids: { dtype: 'int64', shape: [...b.shape], data: b.ids },
    attention_mask: i64(
      [...b.shape],
      Array.from(b.mask, (m) => (m ? 1 : 0)),
    ),
  };
  if (enc.inputs.token_type_ids)
    feeds.token_type_ids = { dtype: 'int64', shape: [...b.shape], data: b.typeIds };
  return { feeds, description };
}

function speechFeeds(enc: Encoder): { feeds: Record<string, HostTensor>; description: string } {
  const lengths = [16000, 9600];
  const S = lengths[0];
  const wave = syntheticSpeech(S);
  if (enc.inputs.input_features) {
    const bins = enc.inputs.input_features.shape[2];
    const f = [
      cmvn(logMel(wave, { numBins: typeof bins === 'number' ? bins : 80 })),
      cmvn(logMel(wave.subarray(0, lengths[1]), { numBins: typeof bins === 'number' ? bins : 80 })),
    ];
    const T = f[0].frames;
    const nb = f[0].bins;
    const data = new Float32Array(2 * T * nb);
    const mask = new Array<number>(2 * T).fill(0);
    f.forEach((x, r) => {
      data.set(x.data, r * T * nb);
      mask.fill(1, r * T, r * T + x.frames);
    });
    return {
      feeds: {
        input_features: { dtype: 'float32', shape: [2, T, nb], data },
        attention_mask: i64([2, T], mask),
      },
      description: `1 s and 0.6 s of a synthetic voiced signal, log-mel ${nb} bins, per-utterance normalised`,
    };
  }
  const data = new Float32Array(2 * S);
  const mask = new Array<number>(2 * S).fill(0);
  lengths.forEach((n, r) => {
    data.set(wave.subarray(0, n), r * S);
    mask.fill(1, r * S, r * S + n);
  });
  return {
    feeds: { input_values: { dtype: 'float32', shape: [2, S], data }, attention_mask: i64([2, S], mask) },
    description: '1 s and 0.6 s (padded) of a synthetic voiced signal at 16 kHz',
  };
}

async function forward(enc: Encoder, feeds: Record<string, HostTensor>, threads?: number) {
  const params = new ParameterStore();
  for (const [k, v] of enc.weights ?? []) params.set(k, v);
  let layers = 0;
  const p = await Predictor.create({
    inputs: enc.inputs,
    params,
    runtime: threads ? { threads } : {},
    build: (g, i) => {
      const out = enc.build(g, i, { training: false });
      layers = out.hiddenStates.length;
      return { hidden: out.hidden, mask: out.mask } as Record<string, Tensor>;
    },
  });
  const t0 = performance.now();
  const out = await p.run(feeds);
  const ms = performance.now() - t0;
  await p.release();
  return { hidden: out.hidden, mask: out.mask, layers, ms };
}

/** Loads, runs and (with an export beside it) compares a Hugging Face encoder folder. */
export async function checkEncoderFolder(
  dir: string,
  opts: EncoderCheckOptions = {},
): Promise<EncoderCheckResult> {
  const enc: LoadedEncoder = loadEncoder(dir);
  const built = enc.modality === 'text' ? await textFeeds(dir, enc) : speechFeeds(enc);
  const feeds: Record<string, HostTensor> = {};
  for (const k of Object.keys(enc.inputs)) {
    if (!built.feeds[k])
      throw new Error(`${dir}: the ${enc.modelType} encoder takes '${k}', which the check cannot make`);
    feeds[k] = built.feeds[k];
  }
  const checker = (enc as { checkInputs?: (f: Record<string, HostTensor>) => void }).checkInputs;
  checker?.(feeds);
  const run = await forward(enc, feeds, opts.threads);
  const h = run.hidden.data as Float32Array;
  let sum = 0;
  let sq = 0;
  let finite = true;
  for (const v of h) {
    if (!Number.isFinite(v)) finite = false;
    sum += v;
    sq += v * v;
  }
  const mean = sum / h.length;
  let parameters = 0;
  for (const t of enc.weights?.values() ?? []) parameters += t.data.length;
  const arch = enc.config.architectures;
  const result: EncoderCheckResult = {
    folder: dir,
    modelType: enc.modelType,
    modality: enc.modality,
    architectures: Array.isArray(arch) ? arch.map(String) : [],
    hiddenSize: enc.hiddenSize,
    numLayers: enc.numLayers,
    parameters,
    storedDtypes: enc.storedDtypes,
    computeDtype: 'float32',
    files: enc.files,
    unused: enc.unused,
    input: {
      description: built.description,
      shapes: Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, [...v.shape]])),
    },
    output: {
      shape: [...run.hidden.shape],
      hiddenStates: run.layers,
      mean: Number(mean.toFixed(6)),
      std: Number(Math.sqrt(Math.max(0, sq / h.length - mean * mean)).toFixed(6)),
      finite,
      ms: Math.round(run.ms * 10) / 10,
    },
    onnx: null,
  };
  if (!opts.noOnnx && (opts.onnx || hasOnnxExport(dir))) {
    const file = findOnnxFile(dir, opts.onnx);
    const frozen = await FrozenOnnxEncoder.load(dir, { variant: opts.onnx, threads: opts.threads });
    try {
      const t0 = performance.now();
      const o = await frozen.run(feeds);
      const ms = performance.now() - t0;
      const a = run.hidden;
      const b = o.hidden;
      if (a.shape.join() !== b.shape.join())
        throw new Error(
          `${file}: the export's last_hidden_state is [${b.shape.join(', ')}], lemer's [${a.shape.join(', ')}]`,
        );
      // Over valid positions only: what a padded position holds is no one's contract.
      const [B, T, D] = a.shape;
      const m = run.mask.data as BigInt64Array;
      let worst = 0;
      for (let i = 0; i < B * T; i++) {
        if (!m[i]) continue;
        for (let d = 0; d < D; d++)
          worst = Math.max(
            worst,
            Math.abs((a.data as Float32Array)[i * D + d] - (b.data as Float32Array)[i * D + d]),
          );
      }
      const om = o.mask.data as BigInt64Array;
      const masksAgree = om.length === m.length && m.every((v, i) => v === om[i]);
      result.onnx = { file, maxAbsDiff: worst, masksAgree, ms: Math.round(ms * 10) / 10 };
    } finally {
      await frozen.release();
    }
  }
  return result;
}

/** The human-readable report. */
export function formatEncoderCheck(r: EncoderCheckResult, tolerance?: number): string {
  const dtypes = Object.entries(r.storedDtypes)
    .map(([k, n]) => `${k} x ${n}`)
    .join(', ');
  const lines = [
    `folder: ${r.folder}`,
    `architecture: ${r.modelType} (${r.modality})${r.architectures.length ? `, saved as ${r.architectures.join(', ')}` : ''}; hidden ${r.hiddenSize}, ${r.numLayers} layers`,
    `parameters: ${r.parameters.toLocaleString('en-US')} (stored ${dtypes}; computed in ${r.computeDtype})`,
    `weights: ${r.files.slice(1).join(', ')}${r.unused.length ? `; ${r.unused.length} tensors not used by the encoder (${r.unused.slice(0, 4).join(', ')}${r.unused.length > 4 ? ', ...' : ''})` : ''}`,
    `input: ${r.input.description}; ${Object.entries(r.input.shapes)
      .map(([k, s]) => `${k} [${s.join(', ')}]`)
      .join(', ')}`,
    `forward: last_hidden_state [${r.output.shape.join(', ')}], ${r.output.hiddenStates} hidden states, mean ${r.output.mean}, std ${r.output.std}${r.output.finite ? '' : ', NOT FINITE'}, ${r.output.ms} ms`,
  ];
  if (r.onnx) {
    const verdict =
      tolerance === undefined
        ? ''
        : r.onnx.maxAbsDiff <= tolerance
          ? ` (within ${tolerance})`
          : ` (ABOVE ${tolerance})`;
    lines.push(
      `onnx: ${r.onnx.file}: largest |lemer - ONNX Runtime| over valid positions ${r.onnx.maxAbsDiff.toExponential(3)}${verdict}${r.onnx.masksAgree ? '' : '; the frame masks differ'}, ${r.onnx.ms} ms`,
    );
  } else lines.push('onnx: no export in the folder (onnx/model.onnx); nothing to compare');
  return lines.join('\n');
}
