/** `lemer features logmel <wav>`: runs the log-mel front end on one file, for checking it. */
import type { Command } from 'commander';
import type { Features } from '../../audio/logmel.js';
import { contextOf, intOption, jsonOption, writeJsonResult, type CliIo } from '../common.js';

export interface FeatureStats {
  min: number;
  max: number;
  mean: number;
  std: number;
  /** Mean and standard deviation of each bin over the frames. */
  binMean: number[];
  binStd: number[];
}

/** Whole-matrix and per-bin statistics, summed in float64. */
export function featureStats(f: Features): FeatureStats {
  const { data, frames, bins } = f;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sq = 0;
  const bs = new Float64Array(bins);
  const bq = new Float64Array(bins);
  for (let t = 0; t < frames; t++) {
    for (let b = 0; b < bins; b++) {
      const v = data[t * bins + b];
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      sq += v * v;
      bs[b] += v;
      bq[b] += v * v;
    }
  }
  const n = frames * bins;
  const round = (x: number) => Number(x.toFixed(5));
  const mean = n ? sum / n : 0;
  return {
    min: n ? round(min) : 0,
    max: n ? round(max) : 0,
    mean: round(mean),
    std: round(n ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : 0),
    binMean: Array.from(bs, (s) => round(frames ? s / frames : 0)),
    binStd: Array.from(bq, (q, b) => {
      const m = frames ? bs[b] / frames : 0;
      return round(frames ? Math.sqrt(Math.max(0, q / frames - m * m)) : 0);
    }),
  };
}

interface LogmelOptions {
  bins?: number;
  allowEmptyFilters?: boolean;
  cmvn?: boolean;
  json?: string;
}

async function logmelCommand(file: string, cmd: Command, io: CliIo): Promise<void> {
  const ctx = contextOf(cmd, io);
  const opts = cmd.opts<LogmelOptions>();
  // Loaded here, not at start-up: the resampler's WASM takes a while to load.
  const { loadAudio } = await import('../../audio/load.js');
  const { cmvn, logMel } = await import('../../audio/logmel.js');
  const sampleRate = ctx.config.speech.sampleRate;
  const lm = ctx.config.speech.logMel;
  const numBins = opts.bins ?? lm.numBins;
  const normalize = opts.cmvn === false ? 'none' : lm.normalize;
  const audio = await loadAudio(file, { sampleRate, onWarning: (m) => ctx.log.warn(m) });
  const raw = logMel(audio, {
    sampleRate,
    numBins,
    frameLengthMs: lm.frameLengthMs,
    frameShiftMs: lm.frameShiftMs,
    allowEmptyFilters: opts.allowEmptyFilters ?? lm.allowEmptyFilters,
  });
  if (raw.frames === 0)
    throw new Error(
      `${file}: too short for one ${lm.frameLengthMs} ms frame (${audio.length} samples at ${sampleRate} Hz)`,
    );
  const rawStats = featureStats(raw);
  const normStats = normalize === 'utterance' ? featureStats(cmvn(raw, { stdFloor: lm.stdFloor })) : null;
  const result = {
    file,
    sampleRate,
    samples: audio.length,
    seconds: Number((audio.length / sampleRate).toFixed(4)),
    frames: raw.frames,
    bins: raw.bins,
    frameLengthMs: lm.frameLengthMs,
    frameShiftMs: lm.frameShiftMs,
    normalize,
    raw: rawStats,
    normalized: normStats,
  };
  const line = (name: string, s: FeatureStats) =>
    `${name}: min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)}, mean ${s.mean.toFixed(3)}, std ${s.std.toFixed(3)}`;
  const lines = [
    `file: ${file}`,
    `audio: ${result.samples} samples at ${sampleRate} Hz (${result.seconds} s, resampled where the file's rate differs)`,
    `log-mel: ${raw.frames} frames x ${raw.bins} bins (${lm.frameLengthMs} ms window, ${lm.frameShiftMs} ms hop)`,
    line('log-mel', rawStats),
  ];
  if (normStats) lines.push(line('after per-utterance CMVN', normStats));
  ctx.print(lines.join('\n'));
  writeJsonResult(opts.json, result);
}

export function registerFeatures(program: Command, io: CliIo): void {
  const features = program.command('features').description('run the speech front end on an audio file');
  const lm = features
    .command('logmel')
    .description(
      "log-mel filterbank of one WAV/FLAC file with the config's settings (80 bins, 25 ms, 10 ms): frames, bins, statistics",
    )
    .argument('<audio>', 'a WAV or FLAC file (any rate; resampled to the config sample rate)')
    .option('--bins <n>', "mel bins (default: the config's speech.logMel.numBins)", intOption(1))
    .option(
      '--allow-empty-filters',
      "keep mel filters that cover no FFT bin at the log floor, as torchaudio's kaldi.fbank (e.g. --bins 128)",
    )
    .option('--no-cmvn', 'skip the per-utterance mean/variance normalisation statistics');
  jsonOption(lm).action((file: string, _opts, cmd: Command) => logmelCommand(file, cmd, io));
}
