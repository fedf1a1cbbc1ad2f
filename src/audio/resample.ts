/**
 * Sample-rate conversion.
 *
 * The default, 'torchaudio', is torchaudio.functional.resample's band-limited sinc
 * interpolation with a Hann window (lowpass_filter_width 6, rolloff 0.99): the same
 * kernel evaluated at the same points, so that 16 kHz audio and its log-mel match what
 * models trained on torchaudio (or Kaldi-style) front ends saw, top band included. Its
 * response is not flat: -1.8 dB at 7 kHz, -3.7 dB at 7.5 kHz and -6 dB at 7.92 kHz
 * (0.99 x Nyquist) when going to 16 kHz, and the band just above Nyquist aliases into the
 * top mel bins. A flat, alias-free converter (libsamplerate's best or sox's) differs from
 * it by more than 1 dB above ~7 kHz, which is why we do not use one by default.
 *
 * 'libsamplerate' (sinc medium quality, WASM) is the flat, alias-free alternative: -0.3 dB
 * at 7 kHz, aliasing at -146 dB. We drive the library's streaming ("full") API ourselves:
 * for inputs over ~1M samples its `simple()` silently falls back to a chunked path that
 * drops most of the output. Streaming in chunks and then flushing with zeros gives output
 * identical to src_simple's, for any length.
 */
import lsr from '@alexanderolsen/libsamplerate-js';

export type ResampleMethod = 'torchaudio' | 'libsamplerate';

export interface ResampleOptions {
  /** 'torchaudio' (default) or 'libsamplerate' (see the module comment). */
  method?: ResampleMethod;
  /** torchaudio's lowpass_filter_width: zero crossings of the sinc on each side (default 6). */
  lowpassFilterWidth?: number;
  /** torchaudio's rolloff: cutoff as a share of the lower Nyquist frequency (default 0.99). */
  rolloff?: number;
}

function checkRate(rate: number, what: string): void {
  if (!Number.isInteger(rate) || rate < 1 || rate > 192000) {
    throw new Error(`resample: ${what} must be an integer in [1, 192000] Hz, got ${rate}`);
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Number of output samples for n input samples: ceil(n * to / from) for 'torchaudio' (as
 * torchaudio gives), floor(n * to / from) for 'libsamplerate' (as src_simple gives).
 */
export function resampledLength(
  n: number,
  fromRate: number,
  toRate: number,
  method: ResampleMethod = 'torchaudio',
): number {
  if (fromRate === toRate) return n;
  const g = gcd(fromRate, toRate);
  const q = (n * (toRate / g)) / (fromRate / g);
  return method === 'torchaudio' ? Math.ceil(q) : Math.floor(q);
}

/**
 * Resamples a mono signal from `fromRate` to `toRate` Hz. The output is time-aligned with
 * the input (output sample j sits at input time j * fromRate / toRate; no added delay) and
 * has resampledLength(n) samples. Returns a copy even when the rates are equal.
 */
export async function resample(
  x: Float32Array,
  fromRate: number,
  toRate: number,
  options: ResampleOptions = {},
): Promise<Float32Array> {
  checkRate(fromRate, 'fromRate');
  checkRate(toRate, 'toRate');
  const method = options.method ?? 'torchaudio';
  if (method === 'libsamplerate') return resampleLibsamplerate(x, fromRate, toRate);
  if (method !== 'torchaudio')
    throw new Error(`resample: method must be 'torchaudio' or 'libsamplerate', got ${String(method)}`);
  if (fromRate === toRate) return Float32Array.from(x);
  return resampleSinc(x, fromRate, toRate, options.lowpassFilterWidth ?? 6, options.rolloff ?? 0.99);
}

// ---- torchaudio's sinc_interp_hann -------------------------------------------------------

/** The polyphase kernel of one rate pair: phase p's taps apply to x[m * orig + first[p] + k]. */
interface SincKernel {
  orig: number;
  next: number;
  first: Int32Array;
  count: Int32Array;
  /** count[p] weights of phase p at offset[p]. */
  offset: Int32Array;
  weights: Float64Array;
}

const kernels = new Map<string, SincKernel>();

/**
 * torchaudio's _get_sinc_resample_kernel, evaluated in float64 and stored sparsely:
 * torchaudio's dense kernel has 2 * width + orig taps per phase, of which only those with
 * |t| < lowpass_filter_width are non-zero (its window is cos(pi / 2)^2 ~ 4e-33 at the clamp).
 */
function sincKernel(fromRate: number, toRate: number, lpw: number, rolloff: number): SincKernel {
  const key = `${fromRate}->${toRate}:${lpw}:${rolloff}`;
  const cached = kernels.get(key);
  if (cached) return cached;
  if (!(lpw > 0) || !Number.isFinite(lpw))
    throw new Error(`resample: lowpassFilterWidth must be > 0, got ${lpw}`);
  if (!(rolloff > 0 && rolloff <= 1)) throw new Error(`resample: rolloff must be in (0, 1], got ${rolloff}`);
  const g = gcd(fromRate, toRate);
  const orig = fromRate / g;
  const next = toRate / g;
  const base = Math.min(orig, next) * rolloff;
  const width = Math.ceil((lpw * orig) / base);
  const scale = base / orig;
  const first = new Int32Array(next);
  const count = new Int32Array(next);
  const offset = new Int32Array(next);
  const all: number[] = [];
  for (let p = 0; p < next; p++) {
    let f = 0;
    const w: number[] = [];
    // Only |t| < lpw matters: r within (p / next -+ lpw / base) * orig, one sample of margin
    // for rounding (clipped to torchaudio's tap range, -width .. width + orig - 1).
    const lo = Math.max(-width, Math.floor((p / next - lpw / base) * orig) - 1);
    const hi = Math.min(width + orig - 1, Math.ceil((p / next + lpw / base) * orig) + 1);
    for (let r = lo; r <= hi; r++) {
      // Input sample m * orig + r against output sample m * next + p, in units of 1/g seconds.
      const t = (r / orig - p / next) * base;
      if (!(Math.abs(t) < lpw)) continue; // t grows with r: the non-zero taps are contiguous
      if (w.length === 0) f = r;
      const win = Math.cos((t * Math.PI) / lpw / 2) ** 2;
      const a = t * Math.PI;
      w.push((a === 0 ? 1 : Math.sin(a) / a) * win * scale);
    }
    first[p] = f;
    count[p] = w.length;
    offset[p] = all.length;
    all.push(...w);
  }
  const k = { orig, next, first, count, offset, weights: Float64Array.from(all) };
  if (kernels.size >= 16) kernels.clear();
  kernels.set(key, k);
  return k;
}

function resampleSinc(x: Float32Array, fromRate: number, toRate: number, lpw: number, rolloff: number) {
  const { orig, next, first, count, offset, weights } = sincKernel(fromRate, toRate, lpw, rolloff);
  const n = x.length;
  const outLen = resampledLength(n, fromRate, toRate, 'torchaudio');
  const out = new Float32Array(outLen);
  // Output j = m * next + p; beyond the signal the input is zero (torchaudio pads with zeros).
  for (let m = 0, j = 0; j < outLen; m++) {
    const at = m * orig;
    for (let p = 0; p < next && j < outLen; p++, j++) {
      const s = at + first[p]!;
      const w0 = offset[p]! - s;
      const lo = Math.max(s, 0);
      const hi = Math.min(s + count[p]!, n);
      let acc = 0;
      for (let i = lo; i < hi; i++) acc += x[i]! * weights[w0 + i]!;
      out[j] = acc;
    }
  }
  return out;
}

// ---- libsamplerate -----------------------------------------------------------------------

type Src = Awaited<ReturnType<typeof lsr.create>>;

// The WASM glue's transfer buffers hold 1,008,000 floats each way.
const WASM_BUFFER = 1_008_000;
const MAX_CACHED = 4;

// One WASM instance per rate pair (creating one costs ~20 ms and ~8 MB); the
// least recently used is dropped beyond MAX_CACHED. An instance holds one C converter
// state, so each call resets it and then runs without awaiting.
const cache = new Map<string, Promise<Src>>();

async function converter(fromRate: number, toRate: number): Promise<Src> {
  const key = `${fromRate}->${toRate}`;
  let p = cache.get(key);
  if (p) {
    cache.delete(key); // re-insert: Map order is our LRU order
  } else {
    p = lsr.create(1, fromRate, toRate, { converterType: lsr.ConverterType.SRC_SINC_MEDIUM_QUALITY });
    p.catch(() => cache.delete(key));
  }
  cache.set(key, p);
  while (cache.size > MAX_CACHED) {
    // Just forget it: the GC frees the WASM instance. Calling destroy() here would free
    // the C state under a call that already holds this instance and has yet to run.
    cache.delete(cache.keys().next().value as string);
  }
  return p;
}

async function resampleLibsamplerate(x: Float32Array, fromRate: number, toRate: number) {
  const ratio = toRate / fromRate;
  // libsamplerate's limit; beyond it src_process fails and the WASM glue would report
  // the error code as a sample count.
  if (ratio > 256 || ratio < 1 / 256) {
    throw new Error(`resample: ratio ${toRate}/${fromRate} is outside libsamplerate's range [1/256, 256]`);
  }
  if (fromRate === toRate) return Float32Array.from(x);
  const outLen = resampledLength(x.length, fromRate, toRate, 'libsamplerate');
  const out = new Float32Array(outLen);
  if (outLen === 0) return out;

  const src = await converter(fromRate, toRate);
  // Everything below is synchronous, so concurrent callers cannot interleave on the
  // shared instance. Setting the rate re-creates the C state: a fresh stream each call.
  src.inputSampleRate = fromRate;

  // Input chunk small enough that its output fits the WASM buffer in one call.
  const chunk = Math.max(1, Math.min(1 << 16, Math.floor(WASM_BUFFER / (2 * Math.max(1, ratio)))));
  let written = 0;
  const push = (y: Float32Array) => {
    const n = Math.min(y.length, outLen - written);
    out.set(n === y.length ? y : y.subarray(0, n), written);
    written += n;
  };
  for (let i = 0; i < x.length && written < outLen; i += chunk) {
    push(src.full(x.subarray(i, Math.min(x.length, i + chunk))));
  }
  // The sinc filter holds back its last outputs until it has seen input past them:
  // flush with silence until the expected length is out.
  const zeros = new Float32Array(chunk);
  for (let guard = 0; written < outLen; guard++) {
    if (guard > 64) throw new Error(`resample: libsamplerate produced ${written} of ${outLen} samples`);
    push(src.full(zeros));
  }
  return out;
}
