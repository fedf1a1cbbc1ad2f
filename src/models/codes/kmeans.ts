/**
 * Discrete speech codes for encoders without a quantiser (HuBERT, WavLM, fine-tuned
 * checkpoints, the conformer trained without self-supervision): k-means over one layer's
 * frame features, as HuBERT's own targets are made. k-means++ initialisation and Lloyd
 * iterations, seeded (same data + seed = the same centroids, bit for bit), fitted only on
 * the frames it is given (a training fold's, so that test frames never shape the codebook).
 * Host-side float64 arithmetic: the data is a few hundred thousand frames at most.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Rng } from '../../util/random.js';
import { writeFileAtomic } from '../../util/fs.js';
import type { HostTensor } from '../../graph/runtime.js';

export interface KMeansOptions {
  k: number;
  seed?: number;
  /** Lloyd iterations at most (default 100). */
  maxIter?: number;
  /** Stop when the relative drop of the inertia falls below this (default 1e-6). */
  tol?: number;
  /** k-means++ candidates per centre (default 2 + floor(ln k), as scikit-learn). */
  candidates?: number;
  /** Called after each iteration (progress). */
  onIteration?: (iteration: number, inertia: number) => void;
}

export interface KMeansModel {
  k: number;
  dim: number;
  /** [k * dim], row-major. */
  centroids: Float64Array;
  /** Sum of squared distances of the fitted frames to their centres. */
  inertia: number;
  iterations: number;
  /** Frames the model was fitted on. */
  fittedOn: number;
  seed: number;
}

/** Frames as rows: [n * dim] row-major. */
export interface FrameMatrix {
  data: Float32Array | Float64Array;
  n: number;
  dim: number;
}

function sqDist(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, dim: number): number {
  let s = 0;
  for (let j = 0; j < dim; j++) {
    const d = a[ai + j] - b[bi + j];
    s += d * d;
  }
  return s;
}

/** Index of the first i with cumulative weight > r (weights summing to total). */
function pickWeighted(w: Float64Array, total: number, rng: Rng): number {
  const r = rng.next() * total;
  let acc = 0;
  for (let i = 0; i < w.length; i++) {
    acc += w[i];
    if (acc > r) return i;
  }
  return w.length - 1;
}

/** Greedy k-means++ (Arthur & Vassilvitskii; scikit-learn's variant with several candidates per step). */
function kmeansPlusPlus(x: FrameMatrix, k: number, rng: Rng, candidates: number): Float64Array {
  const { data, n, dim } = x;
  const c = new Float64Array(k * dim);
  const first = rng.int(0, n);
  for (let j = 0; j < dim; j++) c[j] = data[first * dim + j];
  const closest = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += closest[i] = sqDist(data, i * dim, c, 0, dim);
  for (let m = 1; m < k; m++) {
    let best = -1;
    let bestTotal = Infinity;
    let bestD: Float64Array | null = null;
    for (let t = 0; t < candidates; t++) {
      // All frames already sit on a centre (fewer distinct frames than k): take any.
      const cand = total > 0 ? pickWeighted(closest, total, rng) : rng.int(0, n);
      const d = new Float64Array(n);
      let s = 0;
      for (let i = 0; i < n; i++)
        s += d[i] = Math.min(closest[i], sqDist(data, i * dim, data, cand * dim, dim));
      if (s < bestTotal) [best, bestTotal, bestD] = [cand, s, d];
    }
    for (let j = 0; j < dim; j++) c[m * dim + j] = data[best * dim + j];
    closest.set(bestD!);
    total = bestTotal;
  }
  return c;
}

/** Nearest centre of every frame (ties: the lower index), and the inertia. */
function assign(x: FrameMatrix, c: Float64Array, k: number, out: Int32Array): number {
  const { data, n, dim } = x;
  let inertia = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bd = Infinity;
    for (let m = 0; m < k; m++) {
      const d = sqDist(data, i * dim, c, m * dim, dim);
      if (d < bd) [best, bd] = [m, d];
    }
    out[i] = best;
    inertia += bd;
  }
  return inertia;
}

/** Fits k centroids to the frames. */
export function fitKMeans(x: FrameMatrix, opts: KMeansOptions): KMeansModel {
  const { n, dim, data } = x;
  const k = opts.k;
  if (!Number.isInteger(k) || k < 1) throw new Error(`k-means: k must be an integer >= 1, got ${k}`);
  if (data.length !== n * dim) throw new Error(`k-means: ${data.length} values are not ${n} frames x ${dim}`);
  if (n < k) throw new Error(`k-means: ${n} frames are fewer than k = ${k} codes`);
  for (let i = 0; i < data.length; i++)
    if (!Number.isFinite(data[i]))
      throw new Error(`k-means: frame ${Math.floor(i / dim)} holds a non-finite value`);
  const seed = opts.seed ?? 0;
  const rng = new Rng(seed);
  const maxIter = opts.maxIter ?? 100;
  const tol = opts.tol ?? 1e-6;
  const c = kmeansPlusPlus(x, k, rng, opts.candidates ?? 2 + Math.floor(Math.log(k)));
  const labels = new Int32Array(n);
  let inertia = assign(x, c, k, labels);
  let it = 0;
  const sums = new Float64Array(k * dim);
  const counts = new Float64Array(k);
  while (it < maxIter) {
    it++;
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const m = labels[i];
      counts[m]++;
      for (let j = 0; j < dim; j++) sums[m * dim + j] += data[i * dim + j];
    }
    for (let m = 0; m < k; m++) {
      if (counts[m] === 0) {
        // An empty cluster takes the frame farthest from its centre (scikit-learn's relocation).
        let far = 0;
        let fd = -1;
        for (let i = 0; i < n; i++) {
          const d = sqDist(data, i * dim, c, labels[i] * dim, dim);
          if (d > fd) [far, fd] = [i, d];
        }
        for (let j = 0; j < dim; j++) c[m * dim + j] = data[far * dim + j];
        labels[far] = m;
        continue;
      }
      for (let j = 0; j < dim; j++) c[m * dim + j] = sums[m * dim + j] / counts[m];
    }
    const next = assign(x, c, k, labels);
    opts.onIteration?.(it, next);
    const drop = inertia - next;
    inertia = next;
    if (drop <= tol * Math.max(next, 1e-30)) break;
  }
  return { k, dim, centroids: c, inertia, iterations: it, fittedOn: n, seed };
}

/** The code (nearest centroid) of every frame. */
export function assignCodes(model: KMeansModel, x: FrameMatrix): Int32Array {
  if (x.dim !== model.dim)
    throw new Error(`k-means codes: frames have ${x.dim} features, the model ${model.dim}`);
  const out = new Int32Array(x.n);
  assign(x, model.centroids, model.k, out);
  return out;
}

/**
 * The valid frames of a hidden state [B, T, D] under its frame mask [B, T] (1 = real):
 * one matrix of every frame, and each utterance's frame count, in batch order.
 */
export function maskedFrames(
  hidden: HostTensor,
  mask: HostTensor,
): { frames: FrameMatrix; lengths: number[] } {
  const [B, T, D] = hidden.shape;
  if (hidden.shape.length !== 3 || mask.shape.length !== 2 || mask.shape[0] !== B || mask.shape[1] !== T)
    throw new Error(`maskedFrames: hidden [${hidden.shape}] and mask [${mask.shape}] do not fit`);
  const lengths: number[] = [];
  const rows: number[] = [];
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let t = 0; t < T; t++)
      if (Number(mask.data[b * T + t]) !== 0) {
        rows.push(b * T + t);
        n++;
      }
    lengths.push(n);
  }
  const data = new Float32Array(rows.length * D);
  const src = hidden.data as Float32Array | Float64Array;
  rows.forEach((r, i) => {
    for (let j = 0; j < D; j++) data[i * D + j] = src[r * D + j];
  });
  return { frames: { data, n: rows.length, dim: D }, lengths };
}

/** Concatenates frame matrices (several batches) into one. */
export function concatFrames(parts: readonly FrameMatrix[]): FrameMatrix {
  if (parts.length === 0) throw new Error('concatFrames: no frames');
  const dim = parts[0].dim;
  const n = parts.reduce((s, p) => s + p.n, 0);
  const data = new Float32Array(n * dim);
  let off = 0;
  for (const p of parts) {
    if (p.dim !== dim) throw new Error(`concatFrames: ${p.dim} features after ${dim}`);
    data.set(p.data, off);
    off += p.n * dim;
  }
  return { data, n, dim };
}

/** Writes the model as JSON (centroids as numbers; small: k x dim). */
export function saveKMeans(path: string, model: KMeansModel, meta: Record<string, unknown> = {}): void {
  writeFileAtomic(
    path,
    JSON.stringify({
      format: 'lemer-kmeans',
      version: 1,
      ...meta,
      ...model,
      centroids: [...model.centroids],
    }) + '\n',
  );
}

export function loadKMeans(path: string): KMeansModel & Record<string, unknown> {
  if (!existsSync(path)) throw new Error(`${path}: no such k-means file`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const { k, dim, centroids } = raw as { k: unknown; dim: unknown; centroids: unknown };
  if (
    raw.format !== 'lemer-kmeans' ||
    typeof k !== 'number' ||
    typeof dim !== 'number' ||
    !Array.isArray(centroids)
  )
    throw new Error(`${path}: not a lemer k-means file (needs format 'lemer-kmeans', k, dim, centroids)`);
  if (centroids.length !== k * dim)
    throw new Error(`${path}: ${centroids.length} centroid values, expected k ${k} x dim ${dim}`);
  return { ...(raw as unknown as KMeansModel), centroids: Float64Array.from(centroids as number[]) };
}
