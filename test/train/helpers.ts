/**
 * A tiny synthetic corpus in the manifest format, made by the tests themselves (no
 * optional dependency): two classes told apart by pitch (tone frequency) and by words,
 * three sessions of two speakers, dialogues of four turns.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../../src/config/load.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { crossValidate } from '../../src/train/cv.js';
import { join } from 'node:path';
import { encodeWav } from '../audio/helpers.js';

export const TINY_LABELS = ['hi', 'lo'] as const;

/** A mono 16-bit PCM WAV of a tone with a little seeded noise. */
export function writeToneWav(path: string, hz: number, seconds: number, seed: number, rate = 16000): void {
  const n = Math.round(seconds * rate);
  const x = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const noise = (s / 2 ** 32 - 0.5) * 600;
    // Whole 16-bit steps, so that the PCM encoding keeps them exactly.
    x[i] = Math.round(6000 * Math.sin((2 * Math.PI * hz * i) / rate) + noise) / 32768;
  }
  writeFileSync(path, encodeWav([x], rate, 'pcm16'));
}

const WORDS = {
  hi: ['bright sunny morning', 'wonderful happy news', 'great fun today'],
  lo: ['dark rainy evening', 'terrible sad news', 'awful gloomy day'],
};

/** Writes the corpus into `dir` (manifest.jsonl + wav/); returns the manifest path. */
export function writeTinyCorpus(dir: string, opts: { perSpeaker?: number; seconds?: number } = {}): string {
  mkdirSync(join(dir, 'wav'), { recursive: true });
  const per = opts.perSpeaker ?? 4;
  const rows: string[] = [];
  let k = 0;
  for (let s = 1; s <= 3; s++) {
    for (const spk of [`s${s}a`, `s${s}b`]) {
      for (let t = 0; t < per; t++) {
        const label = TINY_LABELS[(t + s) % 2];
        const id = `${spk}_${t}`;
        writeToneWav(join(dir, 'wav', `${id}.wav`), label === 'hi' ? 440 : 160, opts.seconds ?? 0.4, ++k);
        rows.push(
          JSON.stringify({
            id,
            audio: `wav/${id}.wav`,
            text: WORDS[label][t % 3],
            label,
            speaker: spk,
            session: `ses${s}`,
            dialogue: `${spk}_d`,
            turn: t,
          }),
        );
      }
    }
  }
  const path = join(dir, 'manifest.jsonl');
  writeFileSync(path, rows.join('\n') + '\n');
  return path;
}

/** A small, fast, deterministic training config (YAML) for tests. */
export function tinyConfigYaml(extra = ''): string {
  return `classes: [hi, lo]
seed: 7
optim: { batchSize: 4, lr: { text: 3.0e-3, speech: 3.0e-3, head: 3.0e-3 }, warmupSteps: 0 }
runtime: { threads: 1 }
speech: { logMel: { numBins: 16 }, specAugment: { timeMaskMax: 5, freqMaskMax: 4 } }
text: { maxTokens: 32 }
train:
  epochs: 4
  patience: null
  headDropout: 0
  validFraction: 0.25
  inPlace:
    text: { vocabSize: 120, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32, dropout: 0 }
    speech: { hiddenSize: 16, numLayers: 1, numHeads: 2, ffnDim: 32, convKernel: 3, dropout: 0 }
${extra}`;
}

/**
 * The first fold of a speech-only cross-validation of the tiny corpus in `work` (tiny config
 * with `over` on top); returns what the checks need.
 */
export async function firstSpeechFold(
  work: string,
  over: { train?: Record<string, unknown>; speech?: unknown },
) {
  const manifest = writeTinyCorpus(join(work, 'corpus'));
  const cfgFile = join(work, 'tiny.yaml');
  writeFileSync(cfgFile, tinyConfigYaml());
  const cacheDir = join(work, 'cache');
  const config = loadConfig(cfgFile, { ...over, train: { cacheDir, ...over.train } });
  const spec = `manifest:${manifest}`;
  const corpus = await loadCorpus(spec, { labels: config.classes });
  const out = join(work, 'run');
  const result = await crossValidate({
    config,
    corpus,
    corpusSpec: spec,
    model: 'speech',
    out,
    resume: false,
    folds: 'first',
  });
  const foldDir = join(out, 'folds', readdirSync(join(out, 'folds'))[0]);
  return { config, corpus, cacheDir, result, foldDir };
}
