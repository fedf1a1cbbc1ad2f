/**
 * Frozen encoders with cached features: a frozen encoder's hidden states do not change
 * during training, so they are computed once per utterance (eval form, the weights training
 * starts from) and the head trains on them. The cache is in memory and on disk, keyed by
 * the encoder (its source, config, weights and seed), the layers kept (the last, or all for
 * the SUPERB weighted sum) and the utterance's input content (the token ids with their
 * history, or the audio's content hash and front-end settings).
 *
 * In the model, a cached encoder is an `Encoder` whose input is its own hidden states
 * (`hidden_states` [batch, frames, layers, dim]): the head and the loss do not know.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph, Tensor } from '../graph/graph.js';
import * as ops from '../graph/ops/index.js';
import type { HostTensor, RuntimeOptions } from '../graph/runtime.js';
import { ParameterStore } from '../graph/params.js';
import { Predictor } from '../graph/train.js';
import type { Encoder } from '../models/encoder.js';
import { PARAM_PREFIXES } from '../models/lemer/index.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Progress } from '../util/progress.js';
import { makeBatch, type Example } from './data.js';

/** One utterance's cached hidden states: [frames, layers, dim] row-major. */
export interface CachedFeatures {
  data: Float32Array;
  frames: number;
  layers: number;
  dim: number;
}

/** An encoder that reads cached hidden states of `base` (all layers, or the last). */
export function cachedEncoder(base: Encoder, layers: number): Encoder {
  const d = base.hiddenSize;
  const T = `${base.modality}_frames`;
  return {
    modality: base.modality,
    modelType: base.modelType,
    hiddenSize: d,
    numLayers: layers - 1,
    inputs: {
      hidden_states: { dtype: 'float32', shape: ['batch', T, layers, d] },
      attention_mask: { dtype: 'int64', shape: ['batch', T] },
    },
    build(_g: Graph, i: Record<string, Tensor>) {
      const h = i.hidden_states;
      const hiddenStates = Array.from({ length: layers }, (_, l) =>
        ops.reshape(ops.slice(h, [l], [l + 1], [2]), ['batch', T, d]),
      );
      return { hidden: hiddenStates[layers - 1], hiddenStates, mask: i.attention_mask };
    },
    weights: null,
    config: { ...base.config, cached_layers: layers },
    source: `${base.source} (frozen, cached features)`,
  };
}

function sha(...parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** Key of an encoder's identity: source, config, weights (under the model's prefix) and seed. */
export function encoderKey(
  m: 'text' | 'speech',
  enc: Encoder,
  weights: Map<string, HostTensor>,
  seed: number,
  allLayers: boolean,
): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([enc.source, enc.modelType, enc.config, seed, allLayers ? 'all' : 'last']));
  for (const [k, t] of [...weights]
    .filter(([k]) => k.startsWith(PARAM_PREFIXES[m]))
    .sort(([a], [b]) => (a < b ? -1 : 1))) {
    h.update(k);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex').slice(0, 24);
}

/** Key of an utterance's encoder input (token ids with history, or audio content + front end). */
export function inputKey(m: 'text' | 'speech', e: Example, audioKey?: string): string {
  if (m === 'text') return sha('text', JSON.stringify([e.text?.ids, e.text?.typeIds])).slice(0, 32);
  if (audioKey) return sha('speech', audioKey).slice(0, 32);
  const s = e.speech!;
  return sha('speech', new Uint8Array(s.data.buffer, s.data.byteOffset, s.data.byteLength)).slice(0, 32);
}

const MAGIC = 0x4c464331; // 'LFC1'

function encode(f: CachedFeatures): Uint8Array {
  const out = new Uint8Array(16 + f.data.byteLength);
  const v = new DataView(out.buffer);
  [MAGIC, f.frames, f.layers, f.dim].forEach((x, i) => v.setUint32(4 * i, x, true));
  out.set(new Uint8Array(f.data.buffer, f.data.byteOffset, f.data.byteLength), 16);
  return out;
}

function decode(b: Uint8Array): CachedFeatures | null {
  if (b.byteLength < 16) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== MAGIC) return null;
  const [frames, layers, dim] = [1, 2, 3].map((i) => v.getUint32(4 * i, true));
  if (b.byteLength !== 16 + 4 * frames * layers * dim) return null;
  const data = new Float32Array(frames * layers * dim);
  new Uint8Array(data.buffer).set(b.subarray(16));
  return { data, frames, layers, dim };
}

const memory = new Map<string, CachedFeatures>();

/**
 * The frozen encoder's hidden states of every example (computed where the cache lacks them),
 * in the examples' order.
 */
export async function encoderFeatures(
  m: 'text' | 'speech',
  enc: Encoder,
  examples: Example[],
  o: {
    weights: Map<string, HostTensor>;
    seed: number;
    allLayers: boolean;
    cacheDir: string | null;
    runtime?: RuntimeOptions;
    padId: number;
    audioKey?: (e: Example) => string | undefined;
    progress?: (total: number, label: string) => Progress;
  },
): Promise<CachedFeatures[]> {
  const ek = encoderKey(m, enc, o.weights, o.seed, o.allLayers);
  const keys = examples.map((e) => `${ek}/${inputKey(m, e, o.audioKey?.(e))}`);
  const out: (CachedFeatures | null)[] = keys.map((k) => {
    const hit = memory.get(k);
    if (hit) return hit;
    const file = o.cacheDir ? join(o.cacheDir, 'features', `${k}.bin`) : null;
    if (file && existsSync(file)) {
      const f = decode(readFileSync(file));
      if (f) memory.set(k, f);
      return f;
    }
    return null;
  });
  const todo = examples.map((_, i) => i).filter((i) => out[i] === null);
  if (todo.length) {
    const params = new ParameterStore();
    for (const [k, t] of o.weights) params.put(k, t);
    const L = enc.numLayers + 1;
    const decls = Object.fromEntries(Object.entries(enc.inputs).map(([k, d]) => [`${m}.${k}`, d]));
    const pred = await Predictor.create({
      inputs: decls,
      build: (g, i) => {
        const own = Object.fromEntries(Object.keys(enc.inputs).map((k) => [k, i[`${m}.${k}`]]));
        const r = g.scope(PARAM_PREFIXES[m].slice(0, -1), () => enc.build(g, own, { training: false }));
        const hs = o.allLayers ? r.hiddenStates : [r.hidden];
        if (o.allLayers && hs.length !== L)
          throw new Error(`${enc.source}: ${hs.length} hidden states, expected ${L}`);
        const outs: Record<string, Tensor> = { mask: r.mask };
        hs.forEach((h, l) => (outs[`h${l}`] = h));
        return outs;
      },
      params,
      seed: o.seed,
      runtime: o.runtime,
    });
    const bar = o.progress?.(todo.length, `${m} features (frozen encoder)`);
    try {
      // One utterance per run: no padding reaches a cached feature.
      for (const i of todo) {
        const feeds = makeBatch([examples[i]], { decls, labelScope: 'context', padId: o.padId });
        const r = await pred.run(feeds);
        const layers = o.allLayers ? L : 1;
        const [, T, D] = r.h0.shape;
        const mask = r.mask.data;
        const rows: number[] = [];
        for (let t = 0; t < T; t++) if (Number(mask[t]) > 0) rows.push(t);
        const data = new Float32Array(rows.length * layers * D);
        for (let l = 0; l < layers; l++) {
          const h = r[`h${l}`].data as Float32Array;
          rows.forEach((t, j) => data.set(h.subarray(t * D, (t + 1) * D), (j * layers + l) * D));
        }
        const f: CachedFeatures = { data, frames: rows.length, layers, dim: D };
        out[i] = f;
        memory.set(keys[i], f);
        if (o.cacheDir) writeFileAtomic(join(o.cacheDir, 'features', `${keys[i]}.bin`), encode(f));
        bar?.tick();
      }
    } finally {
      bar?.stop();
      await pred.release();
    }
  }
  return out as CachedFeatures[];
}
