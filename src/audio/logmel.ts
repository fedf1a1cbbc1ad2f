/**
 * Kaldi-compatible log-mel filterbank ("fbank"), the features that fbank-input
 * conformers are trained on. Same semantics as torchaudio.compliance.kaldi.fbank with
 * its defaults (dither 0, snip_edges, remove DC offset, pre-emphasis 0.97, Povey window,
 * FFT size rounded up to a power of two, power spectrum, HTK mel filters built in the mel
 * domain, log floored at float32 epsilon), except that we default to 80 bins.
 *
 * Input scale: like torchaudio, samples are used as given. Kaldi's own tools read int16
 * values (32768x larger); `inputScale: 32768` reproduces those numbers exactly (a shift of
 * log(32768^2) ~ 20.79 per bin, which per-utterance CMVN removes anyway).
 */
import FFT from 'fft.js';
import { Rng } from '../util/random.js';

export type WindowType = 'povey' | 'hann' | 'hamming';

export interface LogMelOptions {
  /** Sample rate of the input in Hz (default 16000). */
  sampleRate?: number;
  /** Number of mel bins (default 80). */
  numBins?: number;
  /** Frame length in ms (default 25). Samples: trunc(sampleRate * ms * 0.001), as Kaldi. */
  frameLengthMs?: number;
  /** Frame shift in ms (default 10). */
  frameShiftMs?: number;
  /** Pre-emphasis coefficient in [0, 1] (default 0.97; 0 turns it off). */
  preemph?: number;
  /** Subtract each frame's mean before pre-emphasis (default true). */
  removeDcOffset?: boolean;
  /** Window function (default 'povey' = Hann^0.85; all are the symmetric forms Kaldi uses). */
  window?: WindowType;
  /** Lowest mel filter edge in Hz (default 20). */
  lowFreq?: number;
  /** Highest mel filter edge in Hz; <= 0 means Nyquist + highFreq, as Kaldi (default 0). */
  highFreq?: number;
  /** Std of Gaussian noise added to each frame's samples before DC removal (default 0). */
  dither?: number;
  /** Seed of the dither noise (default 0); each call restarts from it. */
  seed?: number;
  /** Multiply samples by this before anything else (default 1; 32768 = Kaldi's int16 scale). */
  inputScale?: number;
  /**
   * Accept mel filters that cover no FFT bin (many bins, short frames: 128 bins at 16 kHz
   * with 25 ms frames leave bin 3 empty) and keep them at the log floor, as torchaudio's
   * kaldi.fbank does. Default false: such a setting is an error, since an empty bin carries
   * no information.
   */
  allowEmptyFilters?: boolean;
}

/** A feature matrix, row-major: frame t, bin b is data[t * bins + b]. */
export interface Features {
  data: Float32Array;
  frames: number;
  bins: number;
}

/** numeric_limits<float>::epsilon(): Kaldi's and torchaudio's floor before the log. */
export const FLOAT_EPSILON = 1.1920928955078125e-7;

/** HTK mel scale, natural-log form: 1127 ln(1 + f / 700). */
export function melScale(hz: number): number {
  return 1127 * Math.log(1 + hz / 700);
}

export function inverseMelScale(mel: number): number {
  return 700 * (Math.exp(mel / 1127) - 1);
}

/** Frames Kaldi cuts with snip_edges=true: only frames that fit entirely. */
export function numFrames(numSamples: number, frameLength: number, frameShift: number): number {
  return numSamples < frameLength ? 0 : 1 + Math.floor((numSamples - frameLength) / frameShift);
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The symmetric window of length n (Kaldi's: denominators n - 1). */
export function windowFunction(type: WindowType, n: number): Float64Array {
  const w = new Float64Array(n);
  const a = (2 * Math.PI) / (n - 1);
  for (let i = 0; i < n; i++) {
    const c = Math.cos(a * i);
    if (type === 'hann') w[i] = 0.5 - 0.5 * c;
    else if (type === 'povey') w[i] = Math.pow(0.5 - 0.5 * c, 0.85);
    else w[i] = 0.54 - 0.46 * c;
  }
  return w;
}

/** Triangular mel filters over FFT bins 0 .. fftSize/2 - 1, stored sparsely. */
export interface MelFilters {
  numBins: number;
  /** First FFT bin of filter b. */
  start: Int32Array;
  /** Number of FFT bins in filter b. */
  length: Int32Array;
  /** Weights of filter b at start[b] .. start[b] + length[b] - 1, at offset[b] in weights. */
  offset: Int32Array;
  weights: Float64Array;
}

/**
 * Kaldi's MelBanks: filters equally spaced in mel between lowFreq and highFreq, each
 * triangle computed in the mel domain (weight = distance in mel to the nearer edge over
 * half the width). The Nyquist bin gets no weight, as in Kaldi. A filter that covers no
 * FFT bin is an error unless `allowEmpty` (then it has length 0 and its energy is 0).
 */
export function melFilters(
  numBins: number,
  fftSize: number,
  sampleRate: number,
  lowFreq: number,
  highFreq: number,
  allowEmpty = false,
): MelFilters {
  const numFftBins = fftSize / 2;
  const binWidth = sampleRate / fftSize;
  const melLow = melScale(lowFreq);
  const melHigh = melScale(highFreq);
  const delta = (melHigh - melLow) / (numBins + 1);
  const start = new Int32Array(numBins);
  const length = new Int32Array(numBins);
  const offset = new Int32Array(numBins);
  const all: number[] = [];
  for (let b = 0; b < numBins; b++) {
    const left = melLow + b * delta;
    const center = melLow + (b + 1) * delta;
    const right = melLow + (b + 2) * delta;
    let first = -1;
    const w: number[] = [];
    for (let k = 0; k < numFftBins; k++) {
      const mel = melScale(binWidth * k);
      if (mel > left && mel < right) {
        const weight = mel <= center ? (mel - left) / (center - left) : (right - mel) / (right - center);
        if (first < 0) first = k;
        w.push(weight);
      }
    }
    if (first < 0 && !allowEmpty) {
      throw new Error(
        `logMel: mel bin ${b} of ${numBins} covers no FFT bin (FFT size ${fftSize} at ${sampleRate} Hz, ` +
          `${lowFreq}-${highFreq} Hz): use fewer bins, a longer frame or a higher lowFreq, ` +
          `or allowEmptyFilters to keep it at the log floor as torchaudio's kaldi.fbank does`,
      );
    }
    if (first < 0) first = 0; // empty: start 0, length 0
    start[b] = first;
    length[b] = w.length;
    offset[b] = all.length;
    all.push(...w);
  }
  return { numBins, start, length, offset, weights: Float64Array.from(all) };
}

interface Resolved {
  sampleRate: number;
  numBins: number;
  frameLength: number;
  frameShift: number;
  fftSize: number;
  preemph: number;
  removeDcOffset: boolean;
  window: WindowType;
  lowFreq: number;
  highFreq: number;
  dither: number;
  seed: number;
  inputScale: number;
  allowEmptyFilters: boolean;
}

function resolve(o: LogMelOptions): Resolved {
  const sampleRate = o.sampleRate ?? 16000;
  const numBins = o.numBins ?? 80;
  const frameLengthMs = o.frameLengthMs ?? 25;
  const frameShiftMs = o.frameShiftMs ?? 10;
  const preemph = o.preemph ?? 0.97;
  const window = o.window ?? 'povey';
  const lowFreq = o.lowFreq ?? 20;
  const dither = o.dither ?? 0;
  const seed = o.seed ?? 0;
  const inputScale = o.inputScale ?? 1;
  const bad = (what: string) => new Error(`logMel: ${what}`);
  if (!(sampleRate > 0) || !Number.isFinite(sampleRate))
    throw bad(`sampleRate must be > 0, got ${sampleRate}`);
  if (!Number.isInteger(numBins) || numBins < 1)
    throw bad(`numBins must be a positive integer, got ${numBins}`);
  // Same expression order as Kaldi / torchaudio, so that truncation agrees with them.
  const frameLength = Math.trunc(sampleRate * frameLengthMs * 0.001);
  const frameShift = Math.trunc(sampleRate * frameShiftMs * 0.001);
  if (!(frameLength >= 2))
    throw bad(`frameLengthMs ${frameLengthMs} gives ${frameLength} samples at ${sampleRate} Hz; need >= 2`);
  if (!(frameShift >= 1))
    throw bad(`frameShiftMs ${frameShiftMs} gives ${frameShift} samples at ${sampleRate} Hz; need >= 1`);
  if (!(preemph >= 0 && preemph <= 1)) throw bad(`preemph must be in [0, 1], got ${preemph}`);
  if (window !== 'povey' && window !== 'hann' && window !== 'hamming') {
    throw bad(`window must be 'povey', 'hann' or 'hamming', got ${String(window)}`);
  }
  const nyquist = sampleRate / 2;
  const highFreq = (o.highFreq ?? 0) <= 0 ? nyquist + (o.highFreq ?? 0) : o.highFreq!;
  if (!(lowFreq >= 0 && lowFreq < nyquist)) throw bad(`lowFreq must be in [0, ${nyquist}), got ${lowFreq}`);
  if (!(highFreq > lowFreq && highFreq <= nyquist)) {
    throw bad(
      `highFreq must be in (lowFreq=${lowFreq}, ${nyquist}], got ${highFreq} (from option ${o.highFreq})`,
    );
  }
  if (!(dither >= 0) || !Number.isFinite(dither)) throw bad(`dither must be >= 0, got ${dither}`);
  if (!Number.isFinite(seed)) throw bad(`seed must be finite, got ${seed}`);
  if (!Number.isFinite(inputScale) || inputScale === 0)
    throw bad(`inputScale must be finite and non-zero, got ${inputScale}`);
  return {
    sampleRate,
    numBins,
    frameLength,
    frameShift,
    fftSize: nextPowerOfTwo(frameLength),
    preemph,
    removeDcOffset: o.removeDcOffset ?? true,
    window,
    lowFreq,
    highFreq,
    dither,
    seed,
    inputScale,
    allowEmptyFilters: o.allowEmptyFilters ?? false,
  };
}

/**
 * A log-mel extractor with everything precomputed (window, sparse filters, FFT tables,
 * scratch buffers). Reuse one for many utterances; not re-entrant (it is synchronous).
 *
 * Speed: frames go through the FFT in pairs, one as the real and one as the imaginary
 * part of a complex FFT, separated afterwards by conjugate symmetry; that is ~25% cheaper
 * than two real FFTs with fft.js.
 */
export class LogMelExtractor {
  readonly options: Readonly<Resolved>;
  readonly filters: MelFilters;
  readonly window: Float64Array;
  readonly #fft: FFT;
  readonly #frame: Float64Array;
  readonly #fftIn: Float64Array; // interleaved complex: frame A in re, frame B in im
  readonly #fftOut: Float64Array;
  readonly #powerA: Float64Array;
  readonly #powerB: Float64Array;

  constructor(options: LogMelOptions = {}) {
    const r = resolve(options);
    this.options = Object.freeze(r);
    this.window = windowFunction(r.window, r.frameLength);
    this.filters = melFilters(r.numBins, r.fftSize, r.sampleRate, r.lowFreq, r.highFreq, r.allowEmptyFilters);
    this.#fft = new FFT(r.fftSize);
    this.#frame = new Float64Array(r.frameLength);
    this.#fftIn = new Float64Array(2 * r.fftSize); // zero padding beyond frameLength stays zero
    this.#fftOut = new Float64Array(2 * r.fftSize);
    this.#powerA = new Float64Array(r.fftSize / 2);
    this.#powerB = new Float64Array(r.fftSize / 2);
  }

  /** Frames that `compute` returns for n samples. */
  numFrames(numSamples: number): number {
    return numFrames(numSamples, this.options.frameLength, this.options.frameShift);
  }

  /**
   * Log-mel features of a mono signal. Fewer samples than one frame give 0 frames (as
   * torchaudio does); a NaN or infinite sample is an error.
   */
  compute(x: Float32Array | Float64Array): Features {
    const o = this.options;
    checkFinite(x);
    const frames = this.numFrames(x.length);
    const bins = o.numBins;
    const data = new Float32Array(frames * bins);
    const n = o.fftSize;
    const half = n / 2;
    const z = this.#fftOut;
    const pa = this.#powerA;
    const pb = this.#powerB;
    const rng = o.dither > 0 ? new Rng(o.seed) : null;

    for (let t = 0; t < frames; t += 2) {
      this.#prepare(x, t, 0, rng);
      const pair = t + 1 < frames;
      if (pair) this.#prepare(x, t + 1, 1, rng);
      else this.#clearImag();
      this.#fft.transform(z, this.#fftIn);
      // With Z = FFT(a + i b): A[k] = (Z[k] + conj Z[n-k]) / 2, B[k] = (Z[k] - conj Z[n-k]) / 2i.
      pa[0] = z[0]! * z[0]!;
      pb[0] = z[1]! * z[1]!;
      for (let k = 1; k < half; k++) {
        const zr = z[2 * k]!;
        const zi = z[2 * k + 1]!;
        const wr = z[2 * (n - k)]!;
        const wi = z[2 * (n - k) + 1]!;
        const ar = zr + wr;
        const ai = zi - wi;
        const br = zi + wi;
        const bi = wr - zr;
        pa[k] = 0.25 * (ar * ar + ai * ai);
        pb[k] = 0.25 * (br * br + bi * bi);
      }
      this.#melLog(pa, data, t * bins);
      if (pair) this.#melLog(pb, data, (t + 1) * bins);
    }
    return { data, frames, bins };
  }

  /** Frame t -> dither, DC removal, pre-emphasis, window -> part (0 re, 1 im) of the FFT input. */
  #prepare(x: Float32Array | Float64Array, t: number, part: 0 | 1, rng: Rng | null): void {
    const o = this.options;
    const L = o.frameLength;
    const frame = this.#frame;
    const out = this.#fftIn;
    const win = this.window;
    const p = o.preemph;
    const scale = o.inputScale;
    const base = t * o.frameShift;
    let sum = 0;
    for (let j = 0; j < L; j++) {
      let v = x[base + j]! * scale;
      if (rng) v += o.dither * rng.normal();
      frame[j] = v;
      sum += v;
    }
    const mean = o.removeDcOffset ? sum / L : 0;
    // DC removal, pre-emphasis (the first sample against itself, as Kaldi) and window, in one pass.
    let prev = frame[0]! - mean;
    out[part] = (prev - p * prev) * win[0]!;
    for (let j = 1; j < L; j++) {
      const cur = frame[j]! - mean;
      out[2 * j + part] = (cur - p * prev) * win[j]!;
      prev = cur;
    }
  }

  #clearImag(): void {
    const out = this.#fftIn;
    for (let j = 0; j < this.options.frameLength; j++) out[2 * j + 1] = 0;
  }

  /** Sparse mel filters over a power spectrum, log with Kaldi's floor, into data[row..]. */
  #melLog(power: Float64Array, data: Float32Array, row: number): void {
    const { start, length, offset, weights } = this.filters;
    const bins = this.options.numBins;
    for (let b = 0; b < bins; b++) {
      const k0 = start[b]!;
      const w0 = offset[b]!;
      const n = length[b]!;
      let e = 0;
      for (let i = 0; i < n; i++) e += weights[w0 + i]! * power[k0 + i]!;
      data[row + b] = Math.log(e > FLOAT_EPSILON ? e : FLOAT_EPSILON);
    }
  }
}

function checkFinite(x: ArrayLike<number>): void {
  // One summing pass is cheaper than a per-sample check; locate the culprit only on failure.
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  if (Number.isFinite(s)) return;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) throw new Error(`logMel: input sample ${i} is ${x[i]}`);
  }
}

// Extractors are cheap to keep and costly to build per call (filters, FFT tables).
const extractors = new Map<string, LogMelExtractor>();

/** Log-mel filterbank of a mono signal (see LogMelOptions for the defaults). */
export function logMel(x: Float32Array | Float64Array, options: LogMelOptions = {}): Features {
  const key = JSON.stringify(resolve(options));
  let ex = extractors.get(key);
  if (!ex) {
    if (extractors.size >= 16) extractors.clear();
    ex = new LogMelExtractor(options);
    extractors.set(key, ex);
  }
  return ex.compute(x);
}

function checkFeatures(f: Features, who: string): void {
  if (f.data.length !== f.frames * f.bins) {
    throw new Error(`${who}: data has ${f.data.length} values, frames x bins = ${f.frames} x ${f.bins}`);
  }
}

export interface CmvnOptions {
  /**
   * Floor on each bin's standard deviation, in the features' units (nats for log-mel;
   * default 1). A bin that is nearly constant over the utterance (at the log floor in all
   * frames but a few: dithered silence, a pure tone's empty bins) has a tiny standard
   * deviation, and dividing by it turns its few outliers into values that grow with the
   * square root of the utterance's length (132 on an hour of dithered silence). With the
   * floor, |output| <= (max - min of the bin) / stdFloor whatever the length. Per-bin
   * standard deviations of real speech log-mels lie above it (EmoDB: 0.89 nats at the
   * least, 3.6 in the median), so it changes nothing there. Must be > 0.
   */
  stdFloor?: number;
}

/** The default CmvnOptions.stdFloor, in nats. */
export const CMVN_STD_FLOOR = 1;

/**
 * Per-utterance mean and variance normalisation of each bin:
 * (x - mean) / max(std, stdFloor), population standard deviation over the frames (see
 * CmvnOptions for why the floor). Sums run in float64.
 */
export function cmvn(features: Features, options: CmvnOptions = {}): Features {
  checkFeatures(features, 'cmvn');
  const stdFloor = options.stdFloor ?? CMVN_STD_FLOOR;
  if (!(stdFloor > 0) || !Number.isFinite(stdFloor))
    throw new Error(`cmvn: stdFloor must be a finite number > 0, got ${stdFloor}`);
  const { data, frames, bins } = features;
  const out = new Float32Array(data.length);
  if (frames === 0) return { data: out, frames, bins };
  const mean = new Float64Array(bins);
  const sq = new Float64Array(bins);
  for (let t = 0; t < frames; t++) {
    const row = t * bins;
    for (let b = 0; b < bins; b++) mean[b] += data[row + b]!;
  }
  for (let b = 0; b < bins; b++) mean[b]! /= frames;
  for (let t = 0; t < frames; t++) {
    const row = t * bins;
    for (let b = 0; b < bins; b++) {
      const d = data[row + b]! - mean[b]!;
      sq[b] += d * d;
    }
  }
  const inv = new Float64Array(bins);
  for (let b = 0; b < bins; b++) inv[b] = 1 / Math.max(Math.sqrt(sq[b]! / frames), stdFloor);
  for (let t = 0; t < frames; t++) {
    const row = t * bins;
    for (let b = 0; b < bins; b++) out[row + b] = (data[row + b]! - mean[b]!) * inv[b]!;
  }
  return { data: out, frames, bins };
}

export interface SpecAugmentOptions {
  /** Number of time masks (default 2). */
  timeMasks?: number;
  /** Widest time mask in frames (default 40), further capped by timeMaskMaxRatio x frames. */
  timeMaskMax?: number;
  /** Cap on a time mask's width as a share of the utterance's frames (default 0.2). */
  timeMaskMaxRatio?: number;
  /** Number of frequency masks (default 2). */
  freqMasks?: number;
  /** Widest frequency mask in bins (default 27). */
  freqMaskMax?: number;
  /** Masked cells become 0 ('zero', default; after CMVN that is the mean) or the matrix mean ('mean'). */
  fill?: 'zero' | 'mean';
  /**
   * Masked cells of bin b become fillPerBin[b] instead (overrides `fill`). For features that
   * are normalised later, inside the model (global normalisation): the bins' training means,
   * which the normalisation maps to 0, as 'zero' after CMVN. A raw 0 there would be a loud patch.
   */
  fillPerBin?: ArrayLike<number>;
  /**
   * Frequency warping (like vocal-tract-length perturbation, Jaitly & Hinton 2013), before the
   * masks: each utterance's bins are stretched by a factor drawn uniformly in [1 - w, 1 + w]
   * (bin b takes the value at b / factor). 0 (default): off.
   */
  freqWarp?: number;
  /** Seed: the same seed and input give the same masks (default 0). */
  seed?: number;
}

/** SpecAugment output: the masked features and the masks drawn, as [start, end) ranges. */
export interface SpecAugmented extends Features {
  masks: { time: [number, number][]; freq: [number, number][] };
  /** The frequency-warp factor applied (1: none). */
  warp: number;
}

/**
 * SpecAugment (Park et al. 2019) without time warping: each mask draws its width
 * uniformly from 0 .. max and its start uniformly from the positions where it fits.
 * Masks may overlap. Deterministic given `seed`.
 */
export function specAugment(features: Features, options: SpecAugmentOptions = {}): SpecAugmented {
  checkFeatures(features, 'specAugment');
  const timeMasks = options.timeMasks ?? 2;
  const timeMaskMax = options.timeMaskMax ?? 40;
  const ratio = options.timeMaskMaxRatio ?? 0.2;
  const freqMasks = options.freqMasks ?? 2;
  const freqMaskMax = options.freqMaskMax ?? 27;
  const fill = options.fill ?? 'zero';
  const freqWarp = options.freqWarp ?? 0;
  if (!(freqWarp >= 0 && freqWarp < 1))
    throw new Error(`specAugment: freqWarp must be in [0, 1), got ${freqWarp}`);
  for (const [k, v] of Object.entries({ timeMasks, timeMaskMax, freqMasks, freqMaskMax })) {
    if (!Number.isInteger(v) || v < 0)
      throw new Error(`specAugment: ${k} must be a non-negative integer, got ${v}`);
  }
  if (!(ratio >= 0 && ratio <= 1))
    throw new Error(`specAugment: timeMaskMaxRatio must be in [0, 1], got ${ratio}`);
  if (fill !== 'zero' && fill !== 'mean')
    throw new Error(`specAugment: fill must be 'zero' or 'mean', got ${String(fill)}`);

  const { frames, bins } = features;
  const perBin = options.fillPerBin;
  if (perBin && perBin.length !== bins)
    throw new Error(`specAugment: fillPerBin has ${perBin.length} values, the features have ${bins} bins`);
  const data = Float32Array.from(features.data);
  const rng = new Rng(options.seed ?? 0);
  let value = 0;
  if (fill === 'mean' && data.length > 0) {
    let s = 0;
    for (let i = 0; i < data.length; i++) s += data[i]!;
    value = s / data.length;
  }
  const draw = (size: number, maxWidth: number): [number, number] => {
    const width = rng.int(0, Math.min(maxWidth, size) + 1);
    const start = rng.int(0, size - width + 1);
    return [start, start + width];
  };
  const time: [number, number][] = [];
  const freq: [number, number][] = [];
  const tMax = Math.min(timeMaskMax, Math.floor(ratio * frames));
  for (let m = 0; m < timeMasks; m++) time.push(draw(frames, tMax));
  for (let m = 0; m < freqMasks; m++) freq.push(draw(bins, freqMaskMax));
  // The warp factor is drawn after the masks, so that a seed gives the same masks with or without it.
  let warp = 1;
  if (freqWarp > 0) {
    warp = 1 + freqWarp * (2 * rng.next() - 1);
    warpBins(data, frames, bins, warp);
  }
  for (const [s, e] of time) {
    if (perBin) for (let t = s; t < e; t++) data.set(perBin, t * bins);
    else data.fill(value, s * bins, e * bins);
  }
  for (const [s, e] of freq)
    for (let t = 0; t < frames; t++)
      if (perBin) for (let b = s; b < e; b++) data[t * bins + b] = perBin[b]!;
      else data.fill(value, t * bins + s, t * bins + e);
  return { data, frames, bins, masks: { time, freq }, warp };
}

/**
 * Stretches (factor > 1) or squeezes every frame along its bins, in place: bin b takes the
 * value at position b / factor, linearly interpolated, clamped to the last bin.
 */
function warpBins(data: Float32Array, frames: number, bins: number, factor: number): void {
  const row = new Float32Array(bins);
  for (let t = 0; t < frames; t++) {
    const o = t * bins;
    row.set(data.subarray(o, o + bins));
    for (let b = 0; b < bins; b++) {
      const p = Math.min(b / factor, bins - 1);
      const i = Math.floor(p);
      const j = Math.min(i + 1, bins - 1);
      const w = p - i;
      data[o + b] = row[i]! * (1 - w) + row[j]! * w;
    }
  }
}
