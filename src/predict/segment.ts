/**
 * Long recordings: voice-activity segmentation with Silero VAD as @ricky0123/vad-web ships
 * it (its model file, model wrapper and frame processor: thresholds, redemption,
 * pre-speech padding, minimum speech), run on lemer's own onnxruntime-node instead of the
 * package's WASM runtime (same API, native speed, no browser `fetch`).
 *
 * The audio is streamed: a WAV file is read in chunks and resampled to 16 kHz chunk by
 * chunk (wav-stream.ts), frames of 96 ms go through the VAD, and each speech segment is
 * handed on as soon as it ends; memory holds one chunk plus the current segment (capped at
 * `maxSegmentSeconds`), whatever the recording's length. Other inputs (FLAC, bytes,
 * samples) are decoded whole first.
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { prepareAudio, type AudioInput } from './input.js';
import { probeAudioFile, readWavChunks, resampleStream } from './wav-stream.js';

const require = createRequire(import.meta.url);

export interface SegmentOptions {
  /** Frames above this speech probability count as speech (default 0.5, vad-web's). */
  positiveSpeechThreshold?: number;
  /** Speech ends after frames below this (default 0.35, vad-web's). */
  negativeSpeechThreshold?: number;
  /**
   * Silence that ends a segment, ms (default 300; vad-web's 1400 merges utterances that
   * are a normal turn pause apart).
   */
  redemptionMs?: number;
  /** Audio kept before the detected start, ms (default 100). */
  preSpeechPadMs?: number;
  /** Shorter speech is dropped as a misfire, ms (default 250). */
  minSpeechMs?: number;
  /** A segment is cut here even without a pause (default 20 s): the model reads utterances. */
  maxSegmentSeconds?: number;
  /** Seconds of audio read per chunk (default 10). */
  chunkSeconds?: number;
}

export interface Segment {
  /** Start and end in seconds from the beginning of the recording. */
  start: number;
  end: number;
  /** 16 kHz mono samples of the segment. */
  samples: Float32Array;
}

const RATE = 16000;
const FRAME = 1536; // Silero legacy model: 96 ms frames at 16 kHz

interface VadParts {
  SileroLegacy: {
    new: (
      o: unknown,
      fetch: () => Promise<ArrayBuffer>,
    ) => Promise<{
      process: (f: Float32Array) => Promise<{ isSpeech: number }>;
      reset_state: () => void;
      release: () => Promise<void>;
    }>;
  };
  FrameProcessor: new (
    process: (f: Float32Array) => Promise<{ isSpeech: number; notSpeech: number }>,
    reset: () => void,
    opts: Record<string, unknown>,
    msPerFrame: number,
  ) => {
    resume(): void;
    process(f: Float32Array, on: (e: { msg: string; audio?: Float32Array }) => void): Promise<void>;
    endSegment(on: (e: { msg: string; audio?: Float32Array }) => void): unknown;
    speaking: boolean;
    audioBuffer: unknown[];
  };
  Message: { SpeechEnd: string };
  modelFile: string;
}

function vadParts(): VadParts {
  const main = require.resolve('@ricky0123/vad-web');
  const dist = dirname(main);
  // The package logs with console.log (stdout): keep results on stdout clean.
  const logging = require(join(dist, 'logging.js')) as { log: Record<string, (m: unknown) => void> };
  logging.log.debug = () => undefined;
  logging.log.warn = (m) => process.emitWarning(`VAD: ${String(m)}`);
  logging.log.error = (m) => process.emitWarning(`VAD: ${String(m)}`);
  const models = require(join(dist, 'models', 'index.js')) as { SileroLegacy: VadParts['SileroLegacy'] };
  const fp = require(join(dist, 'frame-processor.js')) as { FrameProcessor: VadParts['FrameProcessor'] };
  const msg = require(join(dist, 'messages.js')) as { Message: VadParts['Message'] };
  return {
    SileroLegacy: models.SileroLegacy,
    FrameProcessor: fp.FrameProcessor,
    Message: msg.Message,
    modelFile: join(dist, 'silero_vad_legacy.onnx'),
  };
}

/** 16 kHz mono chunks of any audio input, streamed where it is a WAV file. */
async function* audioChunks(input: AudioInput, chunkSeconds: number): AsyncGenerator<Float32Array> {
  if (typeof input === 'string') {
    const h = await probeAudioFile(input);
    if (h?.format === 'wav' && h.frames) {
      yield* resampleStream(readWavChunks(input, h, chunkSeconds), h.sampleRate, RATE, h.frames);
      return;
    }
  }
  const a = await prepareAudio(input, { maxSeconds: Infinity, warnSeconds: Infinity });
  const step = Math.round(chunkSeconds * RATE);
  for (let i = 0; i < a.samples.length; i += step) yield a.samples.subarray(i, i + step);
}

/** Speech segments of a recording, in order, as they are found. */
export async function* segmentAudio(input: AudioInput, opts: SegmentOptions = {}): AsyncGenerator<Segment> {
  const parts = vadParts();
  const bytes = await readFile(parts.modelFile);
  // vad-web's SileroLegacy takes the ONNX Runtime module to use: ours (native, 1 thread: 96 ms frames are tiny).
  const ortOne = {
    ...ort,
    InferenceSession: {
      create: (b: ArrayBuffer) =>
        ort.InferenceSession.create(new Uint8Array(b), { intraOpNumThreads: 1, interOpNumThreads: 1 }),
    },
  };
  const model = await parts.SileroLegacy.new(ortOne, async () =>
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
  const fp = new parts.FrameProcessor(
    async (f) => {
      const p = await model.process(f);
      return { isSpeech: p.isSpeech, notSpeech: 1 - p.isSpeech };
    },
    model.reset_state,
    {
      positiveSpeechThreshold: opts.positiveSpeechThreshold ?? 0.5,
      negativeSpeechThreshold: opts.negativeSpeechThreshold ?? 0.35,
      redemptionMs: opts.redemptionMs ?? 300,
      preSpeechPadMs: opts.preSpeechPadMs ?? 100,
      minSpeechMs: opts.minSpeechMs ?? 250,
      submitUserSpeechOnPause: false,
    },
    (FRAME / RATE) * 1000,
  );
  fp.resume();
  const maxFrames = Math.max(1, Math.floor(((opts.maxSegmentSeconds ?? 20) * RATE) / FRAME));
  let frameIndex = 0;
  let total = 0; // real samples fed (the last frame is padded with silence)
  const found: Segment[] = [];
  // A segment's audio is contiguous up to the frame that ended it: its start follows from its length.
  const onEvent = (endFrame: number) => (e: { msg: string; audio?: Float32Array }) => {
    if (e.msg !== parts.Message.SpeechEnd || !e.audio) return;
    const endSample = endFrame * FRAME;
    const startSample = Math.max(0, endSample - e.audio.length);
    const realEnd = Math.min(endSample, total);
    const samples = e.audio.subarray(
      e.audio.length - (endSample - startSample),
      e.audio.length - (endSample - realEnd),
    );
    found.push({ start: startSample / RATE, end: realEnd / RATE, samples });
  };
  let carry = new Float32Array(0);
  try {
    for await (const chunk of audioChunks(input, opts.chunkSeconds ?? 10)) {
      total += chunk.length;
      const buf = new Float32Array(carry.length + chunk.length);
      buf.set(carry);
      buf.set(chunk, carry.length);
      let o = 0;
      for (; o + FRAME <= buf.length; o += FRAME) {
        frameIndex += 1;
        await fp.process(buf.slice(o, o + FRAME), onEvent(frameIndex));
        if (fp.speaking && fp.audioBuffer.length >= maxFrames) fp.endSegment(onEvent(frameIndex));
        while (found.length) yield found.shift()!;
      }
      carry = buf.slice(o);
    }
    // The last partial frame, padded with silence, then whatever speech is still open.
    if (carry.length) {
      const last = new Float32Array(FRAME);
      last.set(carry);
      frameIndex += 1;
      await fp.process(last, onEvent(frameIndex));
    }
    fp.endSegment(onEvent(frameIndex));
    while (found.length) yield found.shift()!;
  } finally {
    await model.release();
  }
}
