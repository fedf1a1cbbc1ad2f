import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type HostTensor } from '../../src/graph/runtime.js';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import { f64, runGraph } from './helpers.js';
import {
  applySpanMask,
  codevectorPerplexity,
  computeSpanMask,
  contrastiveLoss,
  diversityLoss,
  lengthsToMask,
  sampleNegatives,
} from '../../src/graph/layers/ssl.js';

const i64 = (data: BigInt64Array, shape: number[]): HostTensor => ({ dtype: 'int64', shape, data });

const run = runGraph;

/** Lengths of the maximal runs of 1s in one row. */
function runs(row: Uint8Array): number[] {
  const out: number[] = [];
  let n = 0;
  for (const v of [...row, 0]) {
    if (v) n++;
    else if (n) {
      out.push(n);
      n = 0;
    }
  }
  return out;
}

test('computeSpanMask: spans inside the valid length, min spans, reproducible, HF span counts', () => {
  const T = 200;
  const lengths = [200, 120, 15, 5];
  const m = computeSpanMask(lengths, T, { maskProb: 0.65, spanLength: 10, minMasks: 2, seed: 3 });
  assert.equal(m.length, lengths.length * T);
  assert.deepEqual(
    computeSpanMask(lengths, T, { seed: 3 }),
    m,
    'same seed, same mask (defaults 0.65 / 10 / 2)',
  );
  assert.notDeepEqual(computeSpanMask(lengths, T, { seed: 4 }), m);
  lengths.forEach((len, b) => {
    const row = m.subarray(b * T, (b + 1) * T);
    assert.ok(
      row.subarray(len).every((v) => v === 0),
      `row ${b}: nothing masked in padding`,
    );
    for (const r of runs(row)) assert.ok(r >= 10, `row ${b}: a masked run of ${r} < span length`);
    const masked = row.reduce((a, v) => a + v, 0);
    // HF: n = int(0.65 len / 10 + eps), at least 2, at most len - 9 spans.
    const nMax = { 200: 13, 120: 8, 15: 2, 5: 0 }[len]!;
    assert.ok(masked <= nMax * 10, `row ${b}: ${masked} masked > ${nMax} spans`);
    if (nMax > 0) assert.ok(masked >= 10);
    else assert.equal(masked, 0, 'too short for a span: no mask');
  });
  assert.throws(
    () => computeSpanMask([5], 5, { spanLength: 10 }),
    /spanLength 10 is longer than the sequence/,
  );
  assert.throws(() => computeSpanMask([6], 5), /lengths\[0\] = 6/);
});

test('computeSpanMask: n distinct uniform starts give the expected masked fraction per frame', () => {
  // len = T = 400, p = 0.65, L = 10: n = 26 starts out of N = 391, distinct. Frame t is
  // masked unless none of the w_t starts covering it was drawn:
  // P = 1 - C(N - w_t, n) / C(N, n) = 0.4917 (drawing with replacement would give 0.4804).
  const [T, L, n, N] = [400, 10, 26, 391];
  let expected = 0;
  for (let t = 0; t < T; t++) {
    const w = Math.min(t, N - 1) - Math.max(0, t - L + 1) + 1;
    let miss = 1;
    for (let i = 0; i < n; i++) miss *= (N - w - i) / (N - i);
    expected += (1 - miss) / T;
  }
  const seeds = 300;
  let total = 0;
  for (let s = 0; s < seeds; s++)
    total += computeSpanMask([T], T, { seed: 1000 + s }).reduce((a, v) => a + v, 0);
  const mean = total / seeds / T;
  assert.ok(Math.abs(mean - expected) < 0.004, `masked fraction ${mean} vs expected ${expected}`);
});

test('sampleNegatives: never the positive, only valid frames of the same utterance, uniform', () => {
  const T = 6;
  const K = 3000;
  const lengths = [5, 1, 6];
  const idx = sampleNegatives(lengths, T, K, 7);
  assert.equal(idx.length, lengths.length * T * K);
  const counts = new Map<number, number>();
  lengths.forEach((len, b) => {
    for (let t = 0; t < T; t++)
      for (let k = 0; k < K; k++) {
        const v = Number(idx[(b * T + t) * K + k]);
        if (t >= len) assert.equal(v, b * T, 'padding frames point at the utterance start');
        else if (len === 1) assert.equal(v, b * T + t, 'a one-frame utterance points at itself');
        else {
          assert.ok(v >= b * T && v < b * T + len && v !== b * T + t, `b ${b} t ${t}: ${v}`);
          if (b === 0 && t === 2) counts.set(v, (counts.get(v) ?? 0) + 1);
        }
      }
  });
  // Frame 2 of utterance 0 draws from frames {0, 1, 3, 4}: ~750 each (sd ~24).
  assert.deepEqual([...counts.keys()].sort(), [0, 1, 3, 4]);
  for (const c of counts.values()) assert.ok(Math.abs(c - K / 4) < 120, `count ${c}`);
  assert.deepEqual(sampleNegatives(lengths, T, 4, 1), sampleNegatives(lengths, T, 4, 1));
  assert.deepEqual(Array.from(lengthsToMask([2, 0], 3)), [1, 1, 0, 0, 0, 0]);
});

test('applySpanMask: masked frames become the embedding, whose gradient sums theirs; gradcheck', async () => {
  const [B, T, D] = [2, 3, 4];
  const mask = [1, 0, 1, 0, 0, 1];
  const x = randn(B * T * D, 1);
  const e = randn(D, 2);
  const r = randn(B * T * D, 3);
  const out = await run(
    {
      x: f64(x, [B, T, D]),
      m: { dtype: 'bool', shape: [B, T], data: Uint8Array.from(mask) },
      e: f64(e, [D]),
      r: f64(r, [B, T, D]),
    },
    (_g, t) => {
      const y = applySpanMask(t.x, t.m, t.e);
      const [de] = gradients(y.mul(t.r).sum([0, 1, 2]), [t.e]);
      return { y, de: de! };
    },
  );
  for (let f = 0; f < B * T; f++)
    for (let d = 0; d < D; d++) assert.equal(out.y[f * D + d], mask[f] ? e[d] : x[f * D + d]);
  for (let d = 0; d < D; d++) {
    const want = mask.reduce((a, mm, f) => a + (mm ? r[f * D + d] : 0), 0);
    assert.ok(Math.abs(out.de[d] - want) < 1e-14);
  }
  const res = await gradcheck(
    (_g, xx, mm, ee) => applySpanMask(xx, mm, ee),
    [
      { name: 'x', shape: [B, T, D] },
      { name: 'm', shape: [B, T], data: Float64Array.from(mask), differentiate: false },
      { name: 'e', shape: [D] },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

/** Float64 wav2vec2 contrastive loss (HF semantics), summed over masked frames. */
function contrastiveRef(
  c: Float64Array,
  q: Float64Array,
  neg: BigInt64Array,
  mask: number[],
  dims: [number, number, number, number],
  temp: number,
): number {
  const [B, T, D, K] = dims;
  const row = (a: Float64Array, i: number) => a.subarray(i * D, i * D + D);
  const cos = (u: Float64Array, v: Float64Array) => {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += u[d] * v[d];
    return dot / Math.max(Math.hypot(...u), 1e-8) / Math.max(Math.hypot(...v), 1e-8);
  };
  let loss = 0;
  for (let f = 0; f < B * T; f++) {
    if (!mask[f]) continue;
    const cf = row(c, f);
    const qf = row(q, f);
    const logits = [cos(cf, qf) / temp];
    for (let k = 0; k < K; k++) {
      const n = row(q, Number(neg[f * K + k]));
      logits.push(n.every((v, d) => v === qf[d]) ? -Infinity : cos(cf, n) / temp);
    }
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, v) => a + Math.exp(v - m), 0));
    loss -= logits[0] - lse;
  }
  return loss;
}

test('contrastiveLoss matches a float64 reference, including negatives equal to the positive', async () => {
  const [B, T, D, K] = [2, 5, 6, 4];
  const lengths = [5, 3];
  const c = randn(B * T * D, 1);
  const q = randn(B * T * D, 2);
  // A codebook collision: frame 3 of utterance 0 quantizes like frame 1.
  q.copyWithin(3 * D, 1 * D, 2 * D);
  const neg = sampleNegatives(lengths, T, K, 5);
  neg[1 * K] = 3n; // frame 1's first negative is frame 3: equal to the positive -> -inf
  neg[0 * K + 1] = 0n; // and frame 0 once draws itself (also equal) -> -inf
  const mask = Array.from(computeSpanMask(lengths, T, { spanLength: 2, minMasks: 1, seed: 2 }));
  mask[0] = 1;
  mask[1] = 1;
  mask[5 + 4] = 0; // a padded frame is never masked
  const out = await run(
    { c: f64(c, [B, T, D]), q: f64(q, [B, T, D]), n: i64(neg, [B, T, K]), m: f64(mask, [B, T]) },
    (_g, t) => ({
      loss: contrastiveLoss(t.c, t.q, t.n, t.m, { temperature: 0.1 }),
      loss2: contrastiveLoss(t.c, t.q, t.n, t.m, { temperature: 0.5 }),
    }),
  );
  for (const [name, temp] of [
    ['loss', 0.1],
    ['loss2', 0.5],
  ] as const) {
    const want = contrastiveRef(c, q, neg, mask, [B, T, D, K], temp);
    assert.ok(Number.isFinite(out[name][0]));
    assert.ok(Math.abs(out[name][0] - want) < 1e-12 * Math.abs(want), `${name}: ${out[name][0]} vs ${want}`);
  }
  // The -inf entries matter: without them the loss would differ.
  const noCollision = contrastiveRef(
    c,
    q.map((v, i) => (i >= 3 * D && i < 4 * D ? v + 1 : v)),
    neg,
    mask,
    [B, T, D, K],
    0.1,
  );
  assert.ok(Math.abs(noCollision - out.loss[0]) > 1e-3);
});

test('contrastiveLoss passes gradcheck for context and quantized', async () => {
  const [B, T, D, K] = [2, 4, 3, 3];
  const lengths = [4, 3];
  const neg = sampleNegatives(lengths, T, K, 9);
  const mask = Float64Array.from([1, 0, 1, 1, 1, 1, 0, 0]);
  const res = await gradcheck(
    (_g, c, q, n, m) => contrastiveLoss(c, q, n, m, { temperature: 0.5 }).unsqueeze(0),
    [
      { name: 'c', shape: [B, T, D] },
      { name: 'q', shape: [B, T, D] },
      { name: 'n', shape: [B, T, K], dtype: 'int64', raw: neg, differentiate: false },
      { name: 'm', shape: [B, T], data: mask, differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

test('codevectorPerplexity and diversityLoss against a float64 reference; perplexity gradcheck', async () => {
  const [B, T, G, V] = [2, 3, 2, 4];
  const raw = randn(B * T * G * V, 4);
  const probs = new Float64Array(raw.length);
  for (let i = 0; i < raw.length; i += V) {
    const e = Array.from(raw.subarray(i, i + V), Math.exp);
    const s = e.reduce((a, v) => a + v, 0);
    e.forEach((v, j) => (probs[i + j] = v / s));
  }
  const mask = [1, 1, 0, 0, 1, 0];
  const out = await run({ p: f64(probs, [B, T, G, V]), m: f64(mask, [B, T]) }, (_g, t) => {
    const ppl = codevectorPerplexity(t.p, t.m);
    return {
      ppl,
      pplAll: codevectorPerplexity(t.p),
      div: diversityLoss(ppl, G, V),
      divScaled: diversityLoss(ppl, G, V, 3),
    };
  });
  const ref = (useMask: boolean) => {
    let ppl = 0;
    for (let gi = 0; gi < G; gi++) {
      let h = 0;
      for (let v = 0; v < V; v++) {
        let s = 0;
        let n = 0;
        for (let f = 0; f < B * T; f++)
          if (!useMask || mask[f]) {
            s += probs[(f * G + gi) * V + v];
            n++;
          }
        const pm = s / n;
        h -= pm * Math.log(pm + 1e-7);
      }
      ppl += Math.exp(h);
    }
    return ppl;
  };
  assert.ok(Math.abs(out.ppl[0] - ref(true)) < 1e-13);
  assert.ok(Math.abs(out.pplAll[0] - ref(false)) < 1e-13);
  assert.ok(Math.abs(out.div[0] - (G * V - ref(true)) / (G * V)) < 1e-14);
  assert.ok(Math.abs(out.divScaled[0] - (3 * (G * V - ref(true))) / (G * V)) < 1e-13);
  const res = await gradcheck(
    (_g, p, m) => codevectorPerplexity(p, m).unsqueeze(0),
    [
      { name: 'p', shape: [B, T, G, V], data: probs },
      { name: 'm', shape: [B, T], data: Float64Array.from(mask), differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});
