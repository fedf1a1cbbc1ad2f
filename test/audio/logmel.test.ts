import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  FLOAT_EPSILON,
  LogMelExtractor,
  cmvn,
  inverseMelScale,
  logMel,
  melFilters,
  melScale,
  numFrames,
  specAugment,
  type Features,
  type WindowType,
} from '../../src/audio/logmel.js';
import { Rng } from '../../src/util/random.js';
import { lcgNoise, sine } from './helpers.js';

// ---------------------------------------------------------------------------------------
// An independent float64 reference of Kaldi's fbank, written from the definition with a
// naive O(N^2) DFT: nothing here is shared with the implementation under test.
// ---------------------------------------------------------------------------------------

interface RefOptions {
  sampleRate: number;
  numBins: number;
  frameLengthMs: number;
  frameShiftMs: number;
  preemph: number;
  removeDc: boolean;
  window: WindowType;
  lowFreq: number;
  highFreq: number;
}

const REF_DEFAULTS: RefOptions = {
  sampleRate: 16000,
  numBins: 80,
  frameLengthMs: 25,
  frameShiftMs: 10,
  preemph: 0.97,
  removeDc: true,
  window: 'povey',
  lowFreq: 20,
  highFreq: 0,
};

function referenceFbank(x: ArrayLike<number>, o: RefOptions): number[][] {
  const len = Math.trunc(o.sampleRate * o.frameLengthMs * 0.001);
  const shift = Math.trunc(o.sampleRate * o.frameShiftMs * 0.001);
  const nfft = 2 ** Math.ceil(Math.log2(len));
  const hi = o.highFreq > 0 ? o.highFreq : o.sampleRate / 2 + o.highFreq;
  const mel = (f: number) => 1127 * Math.log(1 + f / 700);
  // Triangles as max(0, min(rising, falling)) over the mel axis.
  const mLo = mel(o.lowFreq);
  const d = (mel(hi) - mLo) / (o.numBins + 1);
  const fb: number[][] = [];
  for (let b = 0; b < o.numBins; b++) {
    const [l, c, r] = [mLo + b * d, mLo + (b + 1) * d, mLo + (b + 2) * d];
    const row: number[] = [];
    for (let k = 0; k <= nfft / 2; k++) {
      const m = mel((k * o.sampleRate) / nfft);
      row.push(k === nfft / 2 ? 0 : Math.max(0, Math.min((m - l) / (c - l), (r - m) / (r - c))));
    }
    fb.push(row);
  }
  const win = Array.from({ length: len }, (_, i) => {
    const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (len - 1));
    if (o.window === 'povey') return hann ** 0.85;
    if (o.window === 'hann') return hann;
    return 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (len - 1));
  });
  const cosT = Array.from({ length: nfft }, (_, i) => Math.cos((2 * Math.PI * i) / nfft));
  const sinT = Array.from({ length: nfft }, (_, i) => Math.sin((2 * Math.PI * i) / nfft));
  const out: number[][] = [];
  for (let t = 0; t + len <= x.length; t += shift) {
    const f = Array.from({ length: len }, (_, j) => x[t + j]!);
    const mean = o.removeDc ? f.reduce((a, b) => a + b, 0) / len : 0;
    const g = f.map((v) => v - mean);
    const e = g.map((v, j) => (v - o.preemph * g[Math.max(0, j - 1)]!) * win[j]!);
    const power: number[] = [];
    for (let k = 0; k <= nfft / 2; k++) {
      let re = 0;
      let im = 0;
      for (let j = 0; j < len; j++) {
        re += e[j]! * cosT[(j * k) % nfft]!;
        im -= e[j]! * sinT[(j * k) % nfft]!;
      }
      power.push(re * re + im * im);
    }
    out.push(
      fb.map((row) =>
        Math.log(
          Math.max(
            FLOAT_EPSILON,
            row.reduce((s, w, k) => s + w * power[k]!, 0),
          ),
        ),
      ),
    );
  }
  return out;
}

function maxAbsDiff(f: Features, ref: number[][]): number {
  assert.equal(f.frames, ref.length, 'frame count');
  let m = 0;
  for (let t = 0; t < f.frames; t++) {
    for (let b = 0; b < f.bins; b++) m = Math.max(m, Math.abs(f.data[t * f.bins + b]! - ref[t]![b]!));
  }
  return m;
}

test('log-mel matches a naive float64 Kaldi fbank on random and sine audio (1e-4)', () => {
  const noise = lcgNoise(4000, 0.5, 11);
  const tone = sine(4000, 1000, 16000, 0.5);
  const mixed = new Float32Array(4000).map((_, i) => 0.3 * tone[i]! + 0.2 * noise[i]! + 0.1); // with a DC offset
  for (const [name, x] of [
    ['noise', noise],
    ['sine', tone],
    ['mixed', mixed],
  ] as const) {
    const d = maxAbsDiff(logMel(x), referenceFbank(x, REF_DEFAULTS));
    assert.ok(d < 1e-4, `${name}: max |diff| ${d}`);
  }
});

test('every option agrees with the naive reference (windows, rates, frames, filters)', () => {
  const cases: Partial<RefOptions>[] = [
    { window: 'hann', preemph: 0, removeDc: false, numBins: 64 },
    { window: 'hamming', numBins: 40, lowFreq: 64, highFreq: 7000 },
    { sampleRate: 8000, numBins: 23, frameLengthMs: 32, frameShiftMs: 12.5, preemph: 0.5, highFreq: -400 },
    { sampleRate: 22050, numBins: 80, frameLengthMs: 20, frameShiftMs: 5 },
  ];
  for (const c of cases) {
    const o = { ...REF_DEFAULTS, ...c };
    const x = new Float32Array(3000).map(
      (_, i) => 0.4 * Math.sin(i * 0.3) + 0.1 * Math.sin(i * 1.7) + 0.05 * Math.cos(i * i * 1e-4),
    );
    const f = logMel(x, {
      sampleRate: o.sampleRate,
      numBins: o.numBins,
      frameLengthMs: o.frameLengthMs,
      frameShiftMs: o.frameShiftMs,
      preemph: o.preemph,
      removeDcOffset: o.removeDc,
      window: o.window,
      lowFreq: o.lowFreq,
      highFreq: o.highFreq,
    });
    assert.equal(f.bins, o.numBins);
    const d = maxAbsDiff(f, referenceFbank(x, o));
    assert.ok(d < 1e-4, `${JSON.stringify(c)}: max |diff| ${d}`);
  }
});

test('matches torchaudio.compliance.kaldi.fbank reference numbers (fixtures/torchaudio_fbank_ref.py)', () => {
  type Ref = { frames: number; bins: number; rowSums: number[]; picks: [number, number, number][] };
  const refs = JSON.parse(
    readFileSync(new URL('./fixtures/torchaudio-fbank.json', import.meta.url), 'utf8'),
  ) as Record<string, Ref>;
  const signal = (n: number, sr: number) => {
    // The script's signal: sines plus a 32-bit LCG, summed in float64, then float32.
    const out = new Float32Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(1664525, s) + 1013904223) >>> 0;
      const u = (s / 2 ** 32) * 2 - 1;
      out[i] =
        0.3 * Math.sin((2 * Math.PI * 440 * i) / sr) +
        0.1 * Math.sin((2 * Math.PI * 3000 * i) / sr + 0.5) +
        0.05 * u;
    }
    return out;
  };
  const configs = {
    default16k: { sampleRate: 16000, numBins: 80 },
    opts8k: {
      sampleRate: 8000,
      numBins: 40,
      frameLengthMs: 32,
      frameShiftMs: 12.5,
      preemph: 0.5,
      lowFreq: 64,
      highFreq: -400,
      window: 'hamming',
    },
    hann16k: { sampleRate: 16000, numBins: 64, window: 'hann', removeDcOffset: false, preemph: 0 },
  } as const;
  for (const [name, opts] of Object.entries(configs)) {
    const ref = refs[name]!;
    const f = logMel(signal(4000, opts.sampleRate), opts);
    assert.equal(f.frames, ref.frames, name);
    assert.equal(f.bins, ref.bins, name);
    for (const [t, b, v] of ref.picks)
      assert.ok(
        Math.abs(f.data[t * f.bins + b]! - v) < 1e-4,
        `${name}[${t},${b}] ${f.data[t * f.bins + b]} vs ${v}`,
      );
    ref.rowSums.forEach((want, t) => {
      let s = 0;
      for (let b = 0; b < f.bins; b++) s += f.data[t * f.bins + b]!;
      assert.ok(Math.abs(s - want) < 1e-3, `${name} row ${t}: sum ${s} vs ${want}`);
    });
  }
});

test('hand-checked: frame counts, the mel scale, filter geometry', () => {
  assert.equal(numFrames(16000, 400, 160), 98); // 1 s at 16 kHz
  assert.equal(numFrames(399, 400, 160), 0);
  assert.equal(numFrames(400, 400, 160), 1);
  assert.equal(numFrames(559, 400, 160), 1);
  assert.equal(numFrames(560, 400, 160), 2);
  assert.equal(logMel(new Float32Array(16000).fill(0.1).map((v, i) => v * Math.sin(i))).frames, 98);

  assert.equal(melScale(1000), 1127 * Math.log(1 + 1000 / 700));
  assert.ok(Math.abs(melScale(1000) - 999.99) < 0.01); // the HTK scale puts 1000 Hz at ~1000 mel
  assert.ok(Math.abs(inverseMelScale(melScale(4321)) - 4321) < 1e-9);

  // 80 bins, 512-point FFT at 16 kHz: filters span 20 Hz..8 kHz; bin 256 (Nyquist) unused.
  const fb = melFilters(80, 512, 16000, 20, 8000);
  const dense = Array.from({ length: 80 }, () => new Float64Array(256));
  for (let b = 0; b < 80; b++) {
    for (let i = 0; i < fb.length[b]!; i++) dense[b]![fb.start[b]! + i] = fb.weights[fb.offset[b]! + i]!;
  }
  // Neighbouring triangles cross-fade: between the first and last centre they sum to 1.
  const delta = (melScale(8000) - melScale(20)) / 81;
  const firstCentre = melScale(20) + delta;
  const lastCentre = melScale(20) + 80 * delta;
  let checked = 0;
  for (let k = 0; k < 256; k++) {
    const m = melScale((k * 16000) / 512);
    if (m < firstCentre || m > lastCentre) continue;
    let s = 0;
    for (let b = 0; b < 80; b++) s += dense[b]![k]!;
    assert.ok(Math.abs(s - 1) < 1e-12, `FFT bin ${k}: weights sum to ${s}`);
    checked++;
  }
  assert.ok(checked > 240);
  // The first filter covers the FFT bins between 20 Hz and its right edge only (31.25, 62.5 Hz).
  assert.equal(fb.start[0], 1);
  assert.equal(fb.length[0], 2);
});

test('a 1 kHz sine peaks in the mel bin whose centre is nearest 1 kHz', () => {
  const f = logMel(sine(8000, 1000, 16000, 0.5));
  const delta = (melScale(8000) - melScale(20)) / 81;
  let nearest = 0;
  for (let b = 0; b < 80; b++) {
    const c = inverseMelScale(melScale(20) + (b + 1) * delta);
    const cn = inverseMelScale(melScale(20) + (nearest + 1) * delta);
    if (Math.abs(c - 1000) < Math.abs(cn - 1000)) nearest = b;
  }
  for (let t = 0; t < f.frames; t++) {
    let best = 0;
    for (let b = 1; b < 80; b++) if (f.data[t * 80 + b]! > f.data[t * 80 + best]!) best = b;
    assert.equal(best, nearest, `frame ${t}`);
  }
});

test('silence hits the float-epsilon floor; inputScale shifts log energies by 2 ln(scale)', () => {
  const z = logMel(new Float32Array(1000));
  assert.equal(z.frames, 4); // 1 + floor((1000 - 400) / 160)
  for (const v of z.data) assert.equal(v, Math.fround(Math.log(FLOAT_EPSILON)));
  const x = lcgNoise(2000, 0.5, 4);
  const a = logMel(x);
  const b = logMel(x, { inputScale: 32768 });
  const shift = 2 * Math.log(32768);
  for (let i = 0; i < a.data.length; i++) assert.ok(Math.abs(b.data[i]! - a.data[i]! - shift) < 1e-4);
});

test('dither: off by default, seeded, per-call reproducible', () => {
  const x = sine(4000, 500, 16000, 0.2);
  assert.deepEqual(logMel(x), logMel(x, { dither: 0 }));
  const d1 = logMel(x, { dither: 1e-3, seed: 1 });
  const d1again = logMel(x, { dither: 1e-3, seed: 1 });
  const d2 = logMel(x, { dither: 1e-3, seed: 2 });
  assert.deepEqual(d1, d1again);
  assert.notDeepEqual(d1, d2);
  assert.notDeepEqual(d1, logMel(x));
  // Dither fills the silent floor with noise energy instead of eps.
  const s = logMel(new Float32Array(1000), { dither: 1 });
  for (const v of s.data) assert.ok(v > Math.log(FLOAT_EPSILON) + 5);
});

test('short input gives 0 frames; a reused extractor gives identical results', () => {
  const f = logMel(new Float32Array(399));
  assert.equal(f.frames, 0);
  assert.equal(f.data.length, 0);
  const ex = new LogMelExtractor({ numBins: 40 });
  const x = lcgNoise(5000, 0.3, 8);
  const first = ex.compute(x);
  ex.compute(lcgNoise(3000, 0.9, 9)); // scratch buffers reused in between
  assert.deepEqual(ex.compute(x), first);
  assert.deepEqual(ex.compute(Float64Array.from(x)), first);
});

test('bad options and bad input give clear errors', () => {
  const x = new Float32Array(1000);
  assert.throws(() => logMel(x, { numBins: 0 }), /numBins must be a positive integer, got 0/);
  assert.throws(() => logMel(x, { preemph: 1.5 }), /preemph must be in \[0, 1\], got 1.5/);
  assert.throws(
    () => logMel(x, { window: 'blackman' as WindowType }),
    /window must be 'povey', 'hann' or 'hamming'/,
  );
  assert.throws(() => logMel(x, { lowFreq: 9000 }), /lowFreq must be in \[0, 8000\)/);
  assert.throws(() => logMel(x, { highFreq: 9000 }), /highFreq must be in \(lowFreq=20, 8000\]/);
  assert.throws(() => logMel(x, { frameLengthMs: 0.01 }), /frameLengthMs 0.01 gives 0 samples/);
  assert.throws(() => logMel(x, { frameShiftMs: 0 }), /frameShiftMs 0 gives 0 samples/);
  assert.throws(() => logMel(x, { dither: -1 }), /dither must be >= 0/);
  assert.throws(
    () => logMel(x, { sampleRate: 8000, numBins: 128, lowFreq: 0 }),
    /mel bin \d+ of 128 covers no FFT bin/,
  );
  const bad = new Float32Array(1000);
  bad[777] = NaN;
  assert.throws(() => logMel(bad), /input sample 777 is NaN/);
});

// ---------------------------------------------------------------------------------------

function column(f: Features, b: number): number[] {
  return Array.from({ length: f.frames }, (_, t) => f.data[t * f.bins + b]!);
}

test('cmvn: each bin gets mean 0 and std 1 (population std, floored at stdFloor)', () => {
  const f = logMel(lcgNoise(16000, 0.3, 21));
  // Stationary noise has per-bin stds of 0.2-1.3 nats: below the default floor. 1e-3 tests the formula.
  const g = cmvn(f, { stdFloor: 1e-3 });
  assert.equal(g.frames, f.frames);
  for (let b = 0; b < g.bins; b++) {
    const c = column(g, b);
    const mean = c.reduce((s, v) => s + v, 0) / c.length;
    const sd = Math.sqrt(c.reduce((s, v) => s + (v - mean) ** 2, 0) / c.length);
    assert.ok(Math.abs(mean) < 1e-5, `bin ${b} mean ${mean}`);
    assert.ok(Math.abs(sd - 1) < 1e-3, `bin ${b} std ${sd}`);
  }
  // Hand-checked 3 x 2: column 0 = [1, 2, 3] (mean 2, var 2/3), column 1 constant.
  const h = cmvn({ data: Float32Array.of(1, 5, 2, 5, 3, 5), frames: 3, bins: 2 }, { stdFloor: 0.5 });
  const s = Math.sqrt(2 / 3);
  const want = [-1 / s, 0, 0, 0, 1 / s, 0];
  want.forEach((w, i) => assert.ok(Math.abs(h.data[i]! - w) < 1e-6, `cell ${i}: ${h.data[i]} vs ${w}`));
  assert.equal(cmvn({ data: new Float32Array(0), frames: 0, bins: 80 }).frames, 0);
  assert.throws(
    () => cmvn({ data: new Float32Array(5), frames: 2, bins: 3 }),
    /data has 5 values, frames x bins = 2 x 3/,
  );
  // Below the floor the floor divides: std 0.816 < 1 (the default).
  const k = cmvn({ data: Float32Array.of(1, 5, 2, 5, 3, 5), frames: 3, bins: 2 });
  assert.deepEqual(Array.from(k.data), [-1, 0, 0, 0, 1, 0]);
  assert.throws(() => cmvn(f, { stdFloor: 0 }), /stdFloor must be a finite number > 0, got 0/);
});

function maxAbs(f: Features): number {
  let m = 0;
  for (const v of f.data) m = Math.max(m, Math.abs(v));
  return m;
}

test('cmvn stays bounded on dithered silence: |z| <= (max - min) / stdFloor, not sqrt(frames)', () => {
  // 20 s of dither-level noise (std 1e-5): most low bins sit at the log floor, now and then above.
  const rng = new Rng(3);
  const x = new Float32Array(16000 * 20);
  for (let i = 0; i < x.length; i++) x[i] = 1e-5 * rng.normal();
  const f = logMel(x);
  const unfloored = maxAbs(cmvn(f, { stdFloor: Math.sqrt(1e-5) })); // the old eps: 1e-5 on the variance
  assert.ok(unfloored > 30, `without a floor the outliers reach ${unfloored}`);
  const z = cmvn(f);
  for (let b = 0; b < f.bins; b++) {
    const c = column(f, b);
    const range = Math.max(...c) - Math.min(...c);
    for (const v of column(z, b)) assert.ok(Math.abs(v) <= range + 1e-4, `bin ${b}: ${v} > ${range}`);
  }
  assert.ok(maxAbs(z) < 8, `max |z| ${maxAbs(z)}`);
});

test("cmvn stays bounded on a pure tone's empty bin (at the floor in all frames but one)", () => {
  // 200 frames x 2 bins: bin 0 is the tone (constant), bin 1 sits at log(eps) except in frame 100.
  const floor = Math.log(FLOAT_EPSILON);
  const frames = 200;
  const data = new Float32Array(frames * 2);
  for (let t = 0; t < frames; t++) {
    data[2 * t] = 3.5;
    data[2 * t + 1] = t === 100 ? -5 : floor;
  }
  const old = cmvn({ data, frames, bins: 2 }, { stdFloor: Math.sqrt(1e-5) });
  assert.ok(Math.abs(old.data[201]! - Math.sqrt(frames - 1)) < 1e-3, `sqrt(N - 1) = 14.1: ${old.data[201]}`);
  const z = cmvn({ data, frames, bins: 2 });
  const d = -5 - floor; // 10.94 nats
  // The outlier is (d - d / N) / max(std, 1): bounded by d / stdFloor, for any number of frames.
  assert.ok(Math.abs(z.data[201]! - (d - d / frames)) < 1e-4, `outlier ${z.data[201]}`);
  assert.ok(maxAbs(z) <= d, `max |z| ${maxAbs(z)}`);
  assert.equal(z.data[0], 0, 'the constant bin is 0');
  const z2 = cmvn({ data, frames, bins: 2 }, { stdFloor: 4 });
  assert.ok(maxAbs(z2) <= d / 4 + 1e-6, `stdFloor 4: ${maxAbs(z2)}`);
});

test('specAugment: reproducible by seed, differs across seeds, masks within bounds', () => {
  const f = cmvn(logMel(lcgNoise(16000 * 3, 0.3, 5))); // 298 frames
  const orig = Float32Array.from(f.data);
  const a = specAugment(f, { seed: 42 });
  assert.deepEqual(specAugment(f, { seed: 42 }), a);
  assert.deepEqual(f.data, orig, 'input untouched');
  const seen = new Set<string>();
  for (let seed = 0; seed < 40; seed++) {
    const r = specAugment(f, { seed });
    seen.add(JSON.stringify(r.masks));
    assert.equal(r.masks.time.length, 2);
    assert.equal(r.masks.freq.length, 2);
    const tMax = Math.min(40, Math.floor(0.2 * f.frames));
    for (const [s, e] of r.masks.time)
      assert.ok(s >= 0 && e <= f.frames && e - s >= 0 && e - s <= tMax, `time mask ${s}-${e}`);
    for (const [s, e] of r.masks.freq)
      assert.ok(s >= 0 && e <= f.bins && e - s >= 0 && e - s <= 27, `freq mask ${s}-${e}`);
    // Masked cells are 0, all others unchanged.
    for (let t = 0; t < f.frames; t++) {
      for (let b = 0; b < f.bins; b++) {
        const masked =
          r.masks.time.some(([s, e]) => t >= s && t < e) || r.masks.freq.some(([s, e]) => b >= s && b < e);
        const v = r.data[t * f.bins + b]!;
        if (masked ? v !== 0 : v !== orig[t * f.bins + b])
          assert.fail(`seed ${seed}: cell ${t},${b} masked=${masked} value ${v}`);
      }
    }
  }
  assert.ok(seen.size >= 39, `masks should differ across seeds (${seen.size} distinct of 40)`);
});

test('specAugment: time masks capped at 20% of short utterances; mean fill; options checked', () => {
  const f = logMel(lcgNoise(16000 * 0.5, 0.3, 6)); // 48 frames: cap = floor(9.6) = 9 < 40
  let widest = 0;
  for (let seed = 0; seed < 200; seed++) {
    for (const [s, e] of specAugment(f, { seed, timeMaskMax: 40 }).masks.time)
      widest = Math.max(widest, e - s);
  }
  assert.equal(widest, 9, 'widths reach but never pass the 20% cap');
  const mean = f.data.reduce((s, v) => s + v, 0) / f.data.length;
  const m = specAugment(f, { seed: 3, fill: 'mean', timeMasks: 0, freqMasks: 1, freqMaskMax: 80 });
  const [s, e] = m.masks.freq[0]!;
  for (let t = 0; t < f.frames; t++)
    for (let b = s; b < e; b++) assert.ok(Math.abs(m.data[t * f.bins + b]! - mean) < 1e-4);
  const none = specAugment(f, { timeMasks: 0, freqMasks: 0 });
  assert.deepEqual(none.data, f.data);
  assert.throws(() => specAugment(f, { timeMasks: -1 }), /timeMasks must be a non-negative integer/);
  assert.throws(() => specAugment(f, { fill: 'noise' as 'zero' }), /fill must be 'zero' or 'mean'/);
});

test("specAugment fillPerBin: masked cells take their bin's value (global normalisation maps it to 0)", () => {
  const f = logMel(lcgNoise(16000, 0.3, 7));
  const fillPerBin = Float32Array.from({ length: f.bins }, (_, b) => -10 + b / 8);
  for (let seed = 0; seed < 20; seed++) {
    const r = specAugment(f, { seed, fillPerBin });
    assert.ok(r.masks.time.some(([s, e]) => e > s) || r.masks.freq.some(([s, e]) => e > s));
    for (let t = 0; t < f.frames; t++)
      for (let b = 0; b < f.bins; b++) {
        const masked =
          r.masks.time.some(([s, e]) => t >= s && t < e) || r.masks.freq.some(([s, e]) => b >= s && b < e);
        const want = masked ? fillPerBin[b]! : f.data[t * f.bins + b]!;
        if (r.data[t * f.bins + b] !== want) assert.fail(`seed ${seed}: cell ${t},${b} masked=${masked}`);
      }
    // The same masks as without fillPerBin: only the value differs.
    assert.deepEqual(r.masks, specAugment(f, { seed }).masks);
  }
  assert.throws(
    () => specAugment(f, { fillPerBin: new Float32Array(3) }),
    /fillPerBin has 3 values, the features have 80 bins/,
  );
});

test('specAugment freqWarp: bins stretched by the drawn factor (linear interpolation), masks unchanged', () => {
  const f = logMel(lcgNoise(8000, 0.3, 9));
  const factors = new Set<number>();
  for (let seed = 0; seed < 10; seed++) {
    const r = specAugment(f, { seed, freqWarp: 0.2, timeMasks: 0, freqMasks: 0 });
    assert.ok(r.warp >= 0.8 && r.warp <= 1.2, `factor ${r.warp}`);
    factors.add(r.warp);
    for (let t = 0; t < f.frames; t += 7)
      for (let b = 0; b < f.bins; b++) {
        // Bin b reads position b / factor of the original frame (clamped to the top bin).
        const p = Math.min(b / r.warp, f.bins - 1);
        const i = Math.floor(p);
        const j = Math.min(i + 1, f.bins - 1);
        const want = f.data[t * f.bins + i]! * (i + 1 - p) + f.data[t * f.bins + j]! * (p - i);
        assert.ok(Math.abs(r.data[t * f.bins + b]! - want) < 1e-4, `seed ${seed} cell ${t},${b}`);
      }
    assert.deepEqual(specAugment(f, { seed, freqWarp: 0.2 }).masks, specAugment(f, { seed }).masks);
  }
  assert.ok(factors.size === 10, 'a factor per seed');
  assert.equal(specAugment(f, { seed: 1 }).warp, 1);
  assert.throws(() => specAugment(f, { freqWarp: 1 }), /freqWarp must be in \[0, 1\)/);
});

test('128 bins at 16 kHz, 25 ms: refused by default; allowEmptyFilters matches torchaudio kaldi.fbank', () => {
  // Written by tools/fbank_reference.py with torchaudio 0.13.1.
  const ref = JSON.parse(
    readFileSync(new URL('./fixtures/torchaudio-fbank128.json', import.meta.url), 'utf8'),
  ) as {
    signal: { n: number; amp: number; seed: number };
    emptyBins: number[];
    frames: number;
    data: number[];
  };
  const x = lcgNoise(ref.signal.n, ref.signal.amp, ref.signal.seed);
  assert.throws(() => logMel(x, { numBins: 128 }), /mel bin 3 of 128 covers no FFT bin .* allowEmptyFilters/);
  const f = logMel(x, { numBins: 128, allowEmptyFilters: true });
  assert.equal(f.frames, ref.frames);
  assert.equal(f.bins, 128);
  assert.deepEqual(ref.emptyBins, [3]);
  let maxErr = 0;
  for (let i = 0; i < f.data.length; i++) maxErr = Math.max(maxErr, Math.abs(f.data[i]! - ref.data[i]!));
  assert.ok(maxErr < 1e-4, `max |lemer - torchaudio| ${maxErr}`);
  for (let t = 0; t < f.frames; t++) assert.equal(f.data[t * 128 + 3], Math.fround(Math.log(FLOAT_EPSILON)));
});
