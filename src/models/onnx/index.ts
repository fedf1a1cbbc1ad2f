/**
 * Frozen encoders from ONNX exports, as transformers.js users have them: a folder with
 * config.json, preprocessor_config.json (speech) or tokenizer files (text), and
 * onnx/model.onnx or a variant (model_quantized.onnx, model_fp16.onnx, ...; optimum's
 * layout with model.onnx at the top works too). ONNX Runtime runs the file as is; lemer
 * only feeds the inputs the file declares (Hugging Face names) and returns
 * last_hidden_state with its mask, for the LE-MER head and the feature cache. Nothing
 * here trains: use the graph encoders (src/models/encoders.ts) for fine-tuning.
 *
 * The speech frame mask follows Hugging Face's output-length arithmetic over config.json's
 * conv_kernel / conv_stride (the wav2vec2 family); the waveform normalisation that
 * preprocessor_config.json asks for belongs to the feature front end, not here.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { DType, TypedArray } from '../../graph/dtype.js';
import type { HostTensor } from '../../graph/runtime.js';
import type { Modality } from '../encoder.js';
import { HfLoadError, readHfConfig } from '../hf/config.js';

/** transformers.js' file names per dtype (`dtype` option there). */
export const ONNX_VARIANTS: Record<string, string> = {
  fp32: 'model.onnx',
  fp16: 'model_fp16.onnx',
  quantized: 'model_quantized.onnx',
  q8: 'model_quantized.onnx',
  int8: 'model_int8.onnx',
  uint8: 'model_uint8.onnx',
  q4: 'model_q4.onnx',
  q4f16: 'model_q4f16.onnx',
  bnb4: 'model_bnb4.onnx',
};

const TEXT_TYPES = new Set([
  'bert',
  'roberta',
  'distilbert',
  'albert',
  'electra',
  'deberta',
  'deberta-v2',
  'xlm-roberta',
  'mpnet',
  'camembert',
]);
const SPEECH_TYPES = new Set([
  'wav2vec2',
  'hubert',
  'wavlm',
  'wav2vec2-conformer',
  'data2vec-audio',
  'unispeech',
  'unispeech-sat',
  'sew',
  'sew-d',
]);
/** wav2vec2-base's feature encoder, the default of the wav2vec2 family's configs. */
const W2V2_KERNELS = [10, 3, 3, 3, 3, 2, 2];
const W2V2_STRIDES = [5, 2, 2, 2, 2, 2, 2];

export interface OnnxEncoderOptions {
  /** A key of ONNX_VARIANTS, or a file name inside onnx/ (default: model.onnx, else the only .onnx file). */
  variant?: string;
  threads?: number;
  executionProvider?: 'cpu' | 'cuda' | 'webgpu' | 'dml' | 'coreml';
}

export interface OnnxEncoderOutput {
  /** last_hidden_state as float32 [batch, T, hidden]. */
  hidden: HostTensor;
  /** int64 [batch, T], 1 = real token or frame. */
  mask: HostTensor;
}

/** The .onnx file a folder would run, by the variant rules above. */
export function findOnnxFile(dir: string, variant?: string): string {
  const sub = join(dir, 'onnx');
  const places = [sub, dir].filter((p) => existsSync(p) && statSync(p).isDirectory());
  const files = places.flatMap((p) =>
    readdirSync(p)
      .filter((f) => f.endsWith('.onnx'))
      .map((f) => join(p, f)),
  );
  if (variant) {
    const name = ONNX_VARIANTS[variant] ?? variant;
    const hit = files.find((f) => f.endsWith(`/${name}`));
    if (!hit)
      throw new HfLoadError(
        `${dir}: no ONNX file ${name} for variant '${variant}' (found: ${files.map((f) => f.slice(dir.length + 1)).join(', ') || 'none'})`,
      );
    return hit;
  }
  const plain = files.find((f) => f.endsWith('/model.onnx'));
  if (plain) return plain;
  if (files.length === 1) return files[0];
  if (files.length === 0)
    throw new HfLoadError(
      `${dir}: no ONNX export (expected onnx/model.onnx or a variant such as onnx/model_quantized.onnx)`,
    );
  throw new HfLoadError(
    `${dir}: several ONNX files and no model.onnx: pick one with a variant (${files.map((f) => f.slice(dir.length + 1)).join(', ')})`,
  );
}

function fromOrt(t: ort.Tensor): HostTensor {
  if (t.type === 'float16') {
    const src = t.data as Uint16Array;
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const h = src[i];
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      out[i] =
        e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
    return { dtype: 'float32', shape: t.dims.map(Number), data: out };
  }
  return { dtype: t.type as DType, shape: t.dims.map(Number), data: t.data as TypedArray };
}

function f32ToF16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < x.length; i++) {
    f[0] = x[i];
    const b = u[0];
    const sign = (b >>> 16) & 0x8000;
    const e = ((b >>> 23) & 0xff) - 127 + 15;
    const m = b & 0x7fffff;
    if (e >= 31) out[i] = sign | 0x7c00 | (((b >>> 23) & 0xff) === 0xff && m ? 0x200 : 0);
    else if (e <= 0) out[i] = e < -10 ? sign : sign | ((m | 0x800000) >> (14 - e));
    else out[i] = sign | (((e << 10) | (m >> 13)) + ((m >> 12) & 1)); // round half up; a carry bumps the exponent
  }
  return out;
}

/** Frames after two 3x3 stride-2 convolutions without padding (conformer subsampling). */
function subsample4(n: number): number {
  const once = (x: number) => (x >= 3 ? Math.floor((x - 3) / 2) + 1 : 0);
  return once(once(n));
}

export class FrozenOnnxEncoder {
  private constructor(
    readonly dir: string,
    readonly file: string,
    readonly modality: Modality,
    readonly modelType: string,
    readonly hiddenSize: number | null,
    readonly config: Record<string, unknown>,
    /** preprocessor_config.json, when the folder has one. */
    readonly preprocessor: Record<string, unknown> | null,
    private readonly session: ort.InferenceSession,
    readonly outputName: string,
  ) {}

  /** Opens a folder's ONNX export. Errors name the folder or file. */
  static async load(dir: string, opts: OnnxEncoderOptions = {}): Promise<FrozenOnnxEncoder> {
    const { config, path } = readHfConfig(dir);
    const file = findOnnxFile(dir, opts.variant);
    let pre: Record<string, unknown> | null = null;
    const prePath = join(dir, 'preprocessor_config.json');
    if (existsSync(prePath)) {
      try {
        pre = JSON.parse(readFileSync(prePath, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new HfLoadError(`${prePath}: not valid JSON (${(err as Error).message})`);
      }
    }
    let session: ort.InferenceSession;
    try {
      const so: ort.InferenceSession.SessionOptions = {
        executionProviders: [opts.executionProvider ?? 'cpu'],
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      };
      if (opts.threads) so.intraOpNumThreads = opts.threads;
      session = await ort.InferenceSession.create(file, so);
    } catch (err) {
      throw new HfLoadError(`${file}: ONNX Runtime cannot load it: ${(err as Error).message}`);
    }
    const inputs = session.inputNames;
    const modelType = typeof config.model_type === 'string' ? config.model_type : 'unknown';
    const modality: Modality | null = inputs.includes('input_ids')
      ? 'text'
      : inputs.includes('input_values') || inputs.includes('input_features')
        ? 'speech'
        : TEXT_TYPES.has(modelType)
          ? 'text'
          : SPEECH_TYPES.has(modelType)
            ? 'speech'
            : null;
    if (!modality) {
      await session.release();
      throw new HfLoadError(
        `${file}: neither a text encoder (input_ids) nor a speech encoder (input_values / input_features); inputs: ${inputs.join(', ')}`,
      );
    }
    const outs = session.outputNames;
    const outputName = outs.includes('last_hidden_state')
      ? 'last_hidden_state'
      : outs.length === 1
        ? outs[0]
        : null;
    if (!outputName) {
      await session.release();
      throw new HfLoadError(`${file}: no last_hidden_state output (outputs: ${outs.join(', ')})`);
    }
    const hs = config.hidden_size ?? config.dim ?? config.d_model;
    void path;
    return new FrozenOnnxEncoder(
      dir,
      file,
      modality,
      modelType,
      typeof hs === 'number' ? hs : null,
      config,
      pre,
      session,
      outputName,
    );
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  private inputType(name: string): string | null {
    const m = this.session.inputMetadata.find((x) => x.name === name);
    return m && m.isTensor ? m.type : null;
  }

  /** Frames of the encoder output for `samples` input samples (wav2vec2 family arithmetic). */
  outputLength(samples: number): number {
    const k = Array.isArray(this.config.conv_kernel) ? (this.config.conv_kernel as number[]) : W2V2_KERNELS;
    const s = Array.isArray(this.config.conv_stride) ? (this.config.conv_stride as number[]) : W2V2_STRIDES;
    let n = samples;
    for (let i = 0; i < k.length; i++) n = n >= k[i] ? Math.floor((n - k[i]) / s[i]) + 1 : 0;
    return n;
  }

  /**
   * Runs the export. Text: input_ids, attention_mask and token_type_ids (int64 [batch, seq];
   * token types default to 0, the mask to all ones); speech: input_values float32
   * [batch, samples] (or input_features) and attention_mask. Only the inputs the file
   * declares are fed.
   */
  async run(feeds: Record<string, HostTensor>): Promise<OnnxEncoderOutput> {
    const main =
      this.modality === 'text'
        ? 'input_ids'
        : this.inputNames.includes('input_features')
          ? 'input_features'
          : 'input_values';
    const x = feeds[main];
    if (!x) throw new HfLoadError(`${this.file}: the ${this.modality} encoder needs '${main}'`);
    const [B, L] = x.shape;
    const ones = () => ({ dtype: 'int64' as const, shape: [B, L], data: new BigInt64Array(B * L).fill(1n) });
    const mask = feeds.attention_mask ?? ones();
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      let t: HostTensor | undefined = feeds[name];
      if (!t && name === 'attention_mask') t = mask;
      if (!t && name === 'token_type_ids')
        t = { dtype: 'int64', shape: [B, L], data: new BigInt64Array(B * L) };
      if (!t)
        throw new HfLoadError(`${this.file}: the export needs input '${name}', which lemer does not make`);
      const want = this.inputType(name);
      if (want === 'float16' && t.dtype === 'float32')
        ortFeeds[name] = new ort.Tensor('float16', f32ToF16(t.data as Float32Array), t.shape);
      else if (want === 'int32' && t.dtype === 'int64')
        ortFeeds[name] = new ort.Tensor('int32', Int32Array.from(t.data as BigInt64Array, Number), t.shape);
      else ortFeeds[name] = new ort.Tensor(t.dtype, t.data as never, t.shape);
    }
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run(ortFeeds, [this.outputName]);
    } catch (err) {
      throw new HfLoadError(`${this.file}: running it failed: ${(err as Error).message}`);
    }
    let hidden = fromOrt(out[this.outputName] as ort.Tensor);
    if (hidden.dtype === 'float64')
      hidden = { ...hidden, dtype: 'float32', data: Float32Array.from(hidden.data as Float64Array) };
    const T = hidden.shape[1];
    if (this.modality === 'text' || T === L) return { hidden, mask: { ...mask, shape: [B, L] } };
    // Speech: frames per row from the valid sample count.
    const m = new BigInt64Array(B * T);
    const md = mask.data as BigInt64Array;
    for (let b = 0; b < B; b++) {
      let n = 0;
      for (let i = 0; i < L; i++) n += md[b * L + i] ? 1 : 0;
      // log-mel exports without a conv stack in config.json: the usual x4 subsampling (two
      // 3x3 stride-2 convs) when it explains T, else frames in proportion.
      const frames =
        main === 'input_features' && !Array.isArray(this.config.conv_kernel)
          ? subsample4(L) === T
            ? subsample4(n)
            : Math.ceil((n * T) / L)
          : this.outputLength(n);
      m.fill(1n, b * T, b * T + Math.min(T, frames));
    }
    return { hidden, mask: { dtype: 'int64', shape: [B, T], data: m } };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Opens a folder's ONNX export as a frozen encoder. */
export function loadOnnxEncoder(dir: string, opts: OnnxEncoderOptions = {}): Promise<FrozenOnnxEncoder> {
  return FrozenOnnxEncoder.load(dir, opts);
}

/** Whether a folder holds an ONNX export lemer would run. */
export function hasOnnxExport(dir: string): boolean {
  try {
    findOnnxFile(dir);
    return true;
  } catch {
    return false;
  }
}
