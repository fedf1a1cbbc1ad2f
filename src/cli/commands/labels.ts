/**
 * `lemer labels`: what shapes each fold's label embeddings: every class's top-K TF-IDF
 * keywords (with scores) and, where the corpus has audio, its top-K speech codes, computed
 * from the fold's TRAINING utterances only. Codes come from k-means over the training
 * frames' log-mel features (src/models/codes), the setting of encoders without a quantiser.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  defaultFolds,
  leaveOneGroupOut,
  splitOfSession,
  type Fold,
  type GroupKey,
} from '../../data/folds.js';
import type { Corpus } from '../../data/types.js';
import type { HostTensor } from '../../graph/runtime.js';
import { pickTraining, speechCodeScores, textKeywords } from '../../models/lemer/label-embeddings.js';
import {
  contextOf,
  corpusOptions,
  intOption,
  jsonOption,
  loadCorpusFromOptions,
  writeJsonResult,
  type CliIo,
  type CommandContext,
  type CorpusCliOptions,
} from '../common.js';

interface LabelsOptions extends CorpusCliOptions {
  protocol?: GroupKey;
  fold?: string;
  k?: number;
  speechK?: number;
  lang?: 'en' | 'de';
  codes?: 'kmeans' | 'none';
  kmeansK?: number;
  maxFrames?: number;
  speechEncoder?: string;
  layer?: number;
  json?: string;
}

export interface FoldLabels {
  fold: string;
  train: number;
  classes: {
    label: string;
    trainUtterances: number;
    keywords: { word: string; score: number }[];
    codes?: { code: number; score: number }[];
  }[];
  /** Why the fold has no codes, where it has none. */
  codesNote?: string;
  warnings: string[];
}

function pickFolds(corpus: Corpus, opts: LabelsOptions): Fold[] {
  const utts = corpus.utterances;
  const splits = new Set(utts.map((u) => splitOfSession(u.session)));
  // One split read alone (MELD's train split, the default): every utterance is training data.
  const single = !opts.protocol && splits.size === 1 && !splits.has(undefined) && !splits.has('test');
  const folds = single
    ? [{ name: utts[0]?.session ?? 'all', train: utts.map((_, i) => i), test: [] }]
    : opts.protocol
      ? leaveOneGroupOut(utts, opts.protocol)
      : defaultFolds(corpus);
  if (opts.fold === undefined) return folds;
  const n = Number(opts.fold);
  const f =
    Number.isInteger(n) && n >= 1 && n <= folds.length
      ? folds[n - 1]
      : folds.find((x) => x.name === opts.fold);
  if (!f)
    throw new Error(
      `--fold ${opts.fold}: no such fold; give 1..${folds.length} or a name (${folds.map((x) => x.name).join(', ')})`,
    );
  return [f];
}

/** Per-utterance normalised log-mel features of the utterances with audio (once per run). */
async function logMelOf(
  ctx: CommandContext,
  corpus: Corpus,
  needed: Set<number>,
): Promise<Map<number, { data: Float32Array; frames: number; bins: number }>> {
  const { loadAudio } = await import('../../audio/load.js');
  const { logMel, cmvn } = await import('../../audio/logmel.js');
  const cfg = ctx.config.speech;
  const out = new Map<number, { data: Float32Array; frames: number; bins: number }>();
  const idx = [...needed].sort((a, b) => a - b);
  const bar = ctx.progress(idx.length, 'log-mel');
  try {
    for (const i of idx) {
      const u = corpus.utterances[i];
      const wav = await loadAudio(u.audioPath!, {
        sampleRate: cfg.sampleRate,
        onWarning: (m) => ctx.log.warn(m),
      });
      let f = logMel(wav, {
        sampleRate: cfg.sampleRate,
        numBins: cfg.logMel.numBins,
        frameLengthMs: cfg.logMel.frameLengthMs,
        frameShiftMs: cfg.logMel.frameShiftMs,
        allowEmptyFilters: cfg.logMel.allowEmptyFilters,
      });
      if (cfg.logMel.normalize === 'utterance') f = cmvn(f, { stdFloor: cfg.logMel.stdFloor });
      out.set(i, f);
      bar.tick();
    }
  } finally {
    bar.stop();
  }
  return out;
}

type FrameMap = Map<number, { data: Float32Array; frames: number; bins: number }>;

/**
 * One hidden layer's valid frames per utterance of a speech encoder folder (wav2vec2 family,
 * HuBERT, WavLM, or lemer's conformer), the encoder run in eval form on each utterance alone.
 */
async function encoderFramesOf(
  ctx: CommandContext,
  corpus: Corpus,
  needed: Set<number>,
  dir: string,
  layer: number,
): Promise<{ frames: FrameMap; source: string }> {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { loadAudio } = await import('../../audio/load.js');
  const { logMel, cmvn } = await import('../../audio/logmel.js');
  const { encoderLayerFrames } = await import('../../models/codes/frames.js');
  const cfgPath = join(dir, 'config.json');
  let modelType: unknown;
  try {
    modelType = (JSON.parse(readFileSync(cfgPath, 'utf8')) as { model_type?: unknown }).model_type;
  } catch (e) {
    throw new Error(`--speech-encoder ${dir}: cannot read ${cfgPath} (${(e as Error).message})`);
  }
  const { CONFORMER_MODEL_TYPE, loadConformerFolder } = await import('../../models/conformer/index.js');
  const enc =
    modelType === CONFORMER_MODEL_TYPE
      ? loadConformerFolder(dir)
      : (await import('../../models/encoders.js')).loadEncoder(dir);
  if (enc.modality !== 'speech')
    throw new Error(`--speech-encoder ${dir}: a ${enc.modelType} encoder is not a speech encoder`);
  const cfg = ctx.config.speech;
  const idx = [...needed].sort((a, b) => a - b);
  const fc =
    'input_values' in enc.inputs
      ? (await import('../../models/wav2vec2/features.js')).readWav2Vec2FeatureConfig(dir)
      : null;
  const bins = Number(enc.inputs.input_features?.shape[2] ?? cfg.logMel.numBins);
  async function* feeds(): AsyncGenerator<Record<string, HostTensor>> {
    for (const i of idx) {
      const u = corpus.utterances[i];
      const wav = await loadAudio(u.audioPath!, {
        sampleRate: cfg.sampleRate,
        onWarning: (m) => ctx.log.warn(m),
      });
      if (fc) {
        const { wav2vec2Batch } = await import('../../models/wav2vec2/features.js');
        const b = wav2vec2Batch([wav], fc, { names: [u.audioPath!] });
        yield { input_values: b.input_values, attention_mask: b.attention_mask };
      } else {
        let f = logMel(wav, {
          sampleRate: cfg.sampleRate,
          numBins: bins,
          frameLengthMs: cfg.logMel.frameLengthMs,
          frameShiftMs: cfg.logMel.frameShiftMs,
          allowEmptyFilters: cfg.logMel.allowEmptyFilters,
        });
        if (cfg.logMel.normalize === 'utterance') f = cmvn(f, { stdFloor: cfg.logMel.stdFloor });
        yield {
          input_features: { dtype: 'float32' as const, shape: [1, f.frames, f.bins], data: f.data },
          attention_mask: {
            dtype: 'int64' as const,
            shape: [1, f.frames],
            data: new BigInt64Array(f.frames).fill(1n),
          },
        };
      }
    }
  }
  const bar = ctx.progress(idx.length, `encoding (${enc.modelType}, layer ${layer})`);
  let r;
  try {
    r = await encoderLayerFrames(enc, feeds(), { layer, onBatch: (d) => bar.update(d) });
  } finally {
    bar.stop();
  }
  const dim = r.frames.dim;
  const out: FrameMap = new Map();
  let at = 0;
  idx.forEach((i, k) => {
    const n = r.lengths[k];
    out.set(i, {
      data: Float32Array.from(r.frames.data.subarray(at * dim, (at + n) * dim)),
      frames: n,
      bins: dim,
    });
    at += n;
  });
  return { frames: out, source: `${enc.modelType} (${dir}), hidden state ${layer}` };
}

/** k-means codes of every training frame: fitted on (at most maxFrames of) the training frames only. */
async function foldCodes(
  feats: Map<number, { data: Float32Array; frames: number; bins: number }>,
  train: number[],
  k: number,
  maxFrames: number,
  seed: number,
): Promise<Map<number, Int32Array>> {
  const { fitKMeans, assignCodes } = await import('../../models/codes/kmeans.js');
  const bins = feats.get(train[0])!.bins;
  const total = train.reduce((s, i) => s + feats.get(i)!.frames, 0);
  // An even stride over the training frames keeps the fit affordable on long corpora.
  const stride = Math.max(1, Math.ceil(total / maxFrames));
  const rows: number[] = [];
  let j = 0;
  for (const i of train) {
    const f = feats.get(i)!;
    for (let t = 0; t < f.frames; t++, j++) if (j % stride === 0) rows.push(i, t);
  }
  const n = rows.length / 2;
  const data = new Float32Array(n * bins);
  for (let r = 0; r < n; r++) {
    const f = feats.get(rows[2 * r])!;
    data.set(f.data.subarray(rows[2 * r + 1] * bins, (rows[2 * r + 1] + 1) * bins), r * bins);
  }
  const model = fitKMeans({ data, n, dim: bins }, { k: Math.min(k, n), seed, maxIter: 30 });
  const codes = new Map<number, Int32Array>();
  for (const i of train) {
    const f = feats.get(i)!;
    codes.set(i, assignCodes(model, { data: f.data, n: f.frames, dim: bins }));
  }
  return codes;
}

async function labelsCommand(cmd: Command, io: CliIo): Promise<void> {
  const ctx = contextOf(cmd, io);
  const opts = cmd.opts<LabelsOptions>();
  const { spec, corpus } = await loadCorpusFromOptions(ctx, opts);
  const folds = pickFolds(corpus, opts);
  const K = opts.k ?? ctx.config.text.labelK;
  const speechK = opts.speechK ?? ctx.config.speech.labelK;
  // EmoDB's sentences are German: its stop words too.
  const lang = opts.lang ?? (corpus.name.toLowerCase().includes('emodb') ? 'de' : 'en');
  const classes = corpus.labels;
  const utts = corpus.utterances;
  const withAudio = utts.filter((u) => u.audioPath !== null).length;
  const wantCodes = (opts.codes ?? 'kmeans') === 'kmeans';
  let codesNote: string | undefined;
  if (!wantCodes) codesNote = 'speech codes: off (--codes none)';
  else if (withAudio < utts.length)
    codesNote = `speech codes: not computed, ${utts.length - withAudio} of ${utts.length} utterances have no audio`;

  // Every fold's keywords first: a class missing from a training part fails here, before
  // any audio is read.
  const foldWarnings = new Map<string, string[]>();
  const keywords = folds.map((f) => {
    const warnings: string[] = [];
    foldWarnings.set(f.name, warnings);
    const warn = (m: string) => {
      warnings.push(m);
      ctx.log.warn(`fold ${f.name}: ${m}`);
    };
    try {
      return textKeywords(pickTraining(utts, f.train), classes, K, { lang, warn });
    } catch (err) {
      throw new Error(`fold ${f.name}: ${(err as Error).message}`);
    }
  });

  let feats: FrameMap | null = null;
  let codeSource = 'training log-mel frames';
  if (!codesNote) {
    const needed = new Set(folds.flatMap((f) => f.train));
    if (opts.speechEncoder) {
      const r = await encoderFramesOf(ctx, corpus, needed, opts.speechEncoder, opts.layer ?? -1);
      feats = r.frames;
      codeSource = `training frames of ${r.source}`;
    } else feats = await logMelOf(ctx, corpus, needed);
  }

  const results: FoldLabels[] = [];
  const lines: string[] = [
    `corpus: ${corpus.name} (${spec}); ${folds.length} fold(s); text K = ${K}, stop words ${lang}`,
  ];
  if (codesNote) lines.push(codesNote);
  else lines.push(`speech codes: k-means (k = ${opts.kmeansK ?? 256}) over ${codeSource}; K = ${speechK}`);
  const bar = ctx.progress(folds.length, 'folds');
  for (const [fi, f] of folds.entries()) {
    const warnings = foldWarnings.get(f.name)!;
    const warn = (m: string) => {
      warnings.push(m);
      ctx.log.warn(`fold ${f.name}: ${m}`);
    };
    const train = pickTraining(utts, f.train);
    const kw = keywords[fi];
    let codes: ReturnType<typeof speechCodeScores> | null = null;
    if (feats) {
      const byUtt = await foldCodes(
        feats,
        f.train,
        opts.kmeansK ?? 256,
        opts.maxFrames ?? 8000,
        ctx.config.seed,
      );
      codes = speechCodeScores(
        f.train.map((i) => ({ label: utts[i].label, codes: byUtt.get(i)! })),
        classes,
        speechK,
        { warn },
      );
    }
    const r: FoldLabels = {
      fold: f.name,
      train: f.train.length,
      classes: classes.map((label, c) => ({
        label,
        trainUtterances: train.filter((u) => u.label === label).length,
        keywords: kw[c].map((t) => ({ word: t.token, score: Number(t.score.toPrecision(6)) })),
        ...(codes
          ? { codes: codes[c].map((t) => ({ code: t.token, score: Number(t.score.toPrecision(6)) })) }
          : {}),
      })),
      ...(codesNote ? { codesNote } : {}),
      warnings,
    };
    results.push(r);
    lines.push('', `fold ${f.name} (trained on ${f.train.length} utterances, tested on ${f.test.length})`);
    for (const c of r.classes) {
      lines.push(
        `  ${c.label} (${c.trainUtterances}): ${c.keywords.map((k) => `${k.word} ${k.score.toFixed(4)}`).join(', ')}`,
      );
      if (c.codes) {
        const shown = c.codes.slice(0, 12);
        const more =
          c.codes.length > shown.length ? `, ... (${c.codes.length} in all; every one in --json)` : '';
        lines.push(`    codes: ${shown.map((k) => `${k.code} ${k.score.toFixed(4)}`).join(', ')}${more}`);
      }
    }
    bar.tick();
  }
  bar.stop();
  ctx.print(lines.join('\n'));
  writeJsonResult(opts.json, { corpus: corpus.name, spec, textK: K, speechK, lang, folds: results });
}

export function registerLabels(program: Command, io: CliIo): void {
  const cmd = program
    .command('labels')
    .description(
      "each class's TF-IDF keywords and speech codes per cross-validation fold, from its training utterances only (what initialises the label embeddings)",
    );
  corpusOptions(cmd)
    .addOption(
      new Option(
        '--protocol <key>',
        "leave-one-session-out or leave-one-speaker-out (default: the corpus' usual folds)",
      ).choices(['session', 'speaker']),
    )
    .option('--fold <n|name>', 'only this fold (1-based number or name)')
    .option('--k <n>', 'keywords per class (default: config text.labelK, 9)', intOption(1))
    .option('--speech-k <n>', 'speech codes per class (default: config speech.labelK, 100)', intOption(1))
    .addOption(
      new Option('--lang <lang>', 'stop-word list (default: de for EmoDB, else en)').choices(['en', 'de']),
    )
    .addOption(
      new Option(
        '--codes <how>',
        'speech codes: k-means over training log-mel frames, or none (default kmeans)',
      ).choices(['kmeans', 'none']),
    )
    .option('--kmeans-k <n>', 'number of k-means codes (default 256)', intOption(1))
    .option(
      '--speech-encoder <dir>',
      "codes from k-means over this speech encoder folder's hidden states (wav2vec2, HuBERT, WavLM, lemer-conformer) instead of log-mel frames",
    )
    .option(
      '--layer <n>',
      'with --speech-encoder: which hidden state (0 = input embedding; default the last)',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n))
          throw new InvalidArgumentError('expected a whole number (negative counts from the end).');
        return n;
      },
    )
    .option(
      '--max-frames <n>',
      'training frames the k-means fit reads at most, evenly spaced (default 8000)',
      intOption(1),
    );
  jsonOption(cmd).action(async (_o, c: Command) => labelsCommand(c, io));
}
