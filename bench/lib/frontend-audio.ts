/**
 * Audio front-end figures: log-mel (Kaldi fbank, 80 bins) and 22050 / 48000 -> 16000 Hz
 * resampling speed (torchaudio's sinc, the default, and libsamplerate), as seconds of audio processed per second of wall time, on the one
 * JS thread. Median of several runs after a warm-up; the signal is speech-like noise
 * (deterministic) so that no code path is skipped.
 */
import { LogMelExtractor, cmvn } from '../../src/audio/logmel.js';
import { resample } from '../../src/audio/resample.js';

function signal(seconds: number, sampleRate: number): Float32Array {
  const n = Math.round(seconds * sampleRate);
  const x = new Float32Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    const noise = (s / 2 ** 32) * 2 - 1;
    // A 150 Hz "voice" with harmonics, amplitude-modulated at 4 Hz (syllable rate), plus noise.
    const t = i / sampleRate;
    const env = 0.5 + 0.5 * Math.sin(2 * Math.PI * 4 * t);
    x[i] =
      env * (0.3 * Math.sin(2 * Math.PI * 150 * t) + 0.1 * Math.sin(2 * Math.PI * 450 * t)) + 0.02 * noise;
  }
  return x;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median and fastest wall time (s) of `runs` calls after one warm-up (JIT, WASM tiers). */
async function timeIt(runs: number, fn: () => unknown): Promise<{ median: number; best: number }> {
  await fn();
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return { median: median(times), best: Math.min(...times) };
}

export async function benchLogMel(): Promise<Record<string, number>> {
  const seconds = 60;
  const x16 = signal(seconds, 16000);
  const extractor = new LogMelExtractor();
  const logmel = await timeIt(9, () => extractor.compute(x16));
  const feats = extractor.compute(x16);
  const cmvnT = await timeIt(9, () => cmvn(feats));

  const x22 = signal(seconds, 22050);
  const rs = await timeIt(3, () => resample(x22, 22050, 16000));
  const x48 = signal(seconds, 48000);
  const rs48 = await timeIt(3, () => resample(x48, 48000, 16000));
  const lsr22 = await timeIt(3, () => resample(x22, 22050, 16000, { method: 'libsamplerate' }));

  // Medians are the figures; the best runs show what an unloaded core does (shared
  // machines inflate the median).
  return {
    audio_seconds: seconds,
    logmel_frames: feats.frames,
    logmel_seconds: logmel.median,
    logmel_realtime_factor: seconds / logmel.median,
    logmel_realtime_factor_best: seconds / logmel.best,
    logmel_frames_per_second: feats.frames / logmel.median,
    cmvn_realtime_factor: seconds / cmvnT.median,
    resample_seconds: rs.median,
    resample_realtime_factor: seconds / rs.median,
    resample_realtime_factor_best: seconds / rs.best,
    resample48k_realtime_factor: seconds / rs48.median,
    resample48k_realtime_factor_best: seconds / rs48.best,
    resample_libsamplerate_realtime_factor: seconds / lsr22.median,
  };
}
