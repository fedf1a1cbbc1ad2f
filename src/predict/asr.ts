/**
 * Transcripts for audio that comes without one. A Transcriber turns 16 kHz mono samples
 * into text; lemer ships one for a local Whisper ONNX folder in the layout transformers.js
 * users have (config.json, generation_config.json, tokenizer files, onnx/encoder_model*.onnx,
 * onnx/decoder_model_merged*.onnx), run by @huggingface/transformers on the same
 * onnxruntime-node lemer uses, with remote downloads switched off. Tests inject their own.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface Transcriber {
  /** Where the transcript comes from, for the output (e.g. "whisper-onnx:/models/whisper-tiny"). */
  readonly source: string;
  transcribe(samples: Float32Array, sampleRate: number): Promise<string>;
  release?(): Promise<void>;
}

/** Files a transformers.js Whisper folder must hold, checked before the library sees it. */
const NEEDED = ['config.json', 'tokenizer.json', 'preprocessor_config.json'];

export interface WhisperOptions {
  /** Spoken language (Whisper name, e.g. "english"); default: Whisper detects it. */
  language?: string;
  /** ONNX weight variant in onnx/: "fp32" (encoder_model.onnx), "q8", "fp16", ... (default: whichever exists, fp32 first). */
  dtype?: string;
}

/** Picks the dtype whose encoder and decoder files are there. */
function pickDtype(dir: string, want?: string): string {
  const suffix: Record<string, string> = {
    fp32: '',
    fp16: '_fp16',
    q8: '_quantized',
    int8: '_int8',
    uint8: '_uint8',
    q4: '_q4',
    bnb4: '_bnb4',
  };
  const has = (d: string) =>
    existsSync(join(dir, 'onnx', `encoder_model${suffix[d]}.onnx`)) &&
    (existsSync(join(dir, 'onnx', `decoder_model_merged${suffix[d]}.onnx`)) ||
      existsSync(join(dir, 'onnx', `decoder_model${suffix[d]}.onnx`)));
  if (want) {
    if (!(want in suffix))
      throw new Error(`--asr dtype ${want}: unknown (known: ${Object.keys(suffix).join(', ')})`);
    if (!has(want))
      throw new Error(`${dir}: no onnx/encoder_model${suffix[want]}.onnx with its decoder for dtype ${want}`);
    return want;
  }
  const found = Object.keys(suffix).find(has);
  if (!found)
    throw new Error(
      `${dir}: no Whisper ONNX weights in onnx/ (expected encoder_model.onnx and decoder_model_merged.onnx, or a quantised variant)`,
    );
  return found;
}

/** A Transcriber over a local Whisper ONNX folder (transformers.js layout). Nothing is downloaded. */
export async function whisperTranscriber(folder: string, opts: WhisperOptions = {}): Promise<Transcriber> {
  const dir = resolve(folder);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new Error(`${folder}: ASR model folder not found`);
  for (const f of NEEDED)
    if (!existsSync(join(dir, f)))
      throw new Error(
        `${join(folder, f)}: missing; --asr wants a Whisper ONNX folder as transformers.js uses it`,
      );
  const dtype = pickDtype(dir, opts.dtype);
  const tr = await import('@huggingface/transformers');
  tr.env.allowRemoteModels = false;
  tr.env.allowLocalModels = true;
  // The absolute path as the model id: transformers.js reads a path that is no Hub id as
  // it is (and keys what it loaded by id, so two folders of the same name never mix).
  let pipe: Awaited<ReturnType<typeof tr.pipeline<'automatic-speech-recognition'>>>;
  try {
    pipe = await tr.pipeline('automatic-speech-recognition', dir, {
      local_files_only: true,
      dtype: dtype as 'fp32',
      device: 'cpu',
    });
  } catch (err) {
    throw new Error(`${folder}: cannot load the Whisper model: ${(err as Error).message}`);
  }
  return {
    source: `whisper-onnx:${folder} (${dtype})`,
    async transcribe(samples, sampleRate) {
      if (sampleRate !== 16000) throw new Error(`whisper: wants 16 kHz audio, got ${sampleRate} Hz`);
      const r = (await pipe(samples, {
        ...(opts.language ? { language: opts.language, task: 'transcribe' } : {}),
        chunk_length_s: samples.length > 30 * 16000 ? 30 : undefined,
      })) as { text: string } | { text: string }[];
      return (Array.isArray(r) ? r.map((x) => x.text).join(' ') : r.text).trim();
    },
    async release() {
      await pipe.dispose();
    },
  };
}
