/**
 * `lemer labels`: what shapes each fold's label embeddings: every class's top-K TF-IDF
 * keywords (with scores) and, where the corpus has audio, its top-K speech codes, computed
 * from the fold's TRAINING utterances only. Codes come from k-means over the training
 * frames' log-mel features (src/models/codes), the setting of encoders without a quantiser.
 */
import { Option, type Command } from 'commander';
import {
  defaultFolds,
  leaveOneGroupOut,
  splitOfSession,
  type Fold,
  type GroupKey,
} from '../../data/folds.js';
import type { Corpus } from '../../data/types.js';
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

  let feats: Map<number, { data: Float32Array; frames: number; bins: number }> | null = null;
  if (!codesNote) {
    const needed = new Set(folds.flatMap((f) => f.train));
    feats = await logMelOf(ctx, corpus, needed);
  }

  const results: FoldLabels[] = [];
  const lines: string[] = [
    `corpus: ${corpus.name} (${spec}); ${folds.length} fold(s); text K = ${K}, stop words ${lang}`,
  ];
  if (codesNote) lines.push(codesNote);
  else
    lines.push(
      `speech codes: k-means (k = ${opts.kmeansK ?? 256}) over training log-mel frames; K = ${speechK}`,
    );
  const bar = ctx.progress(folds.length, 'folds');
  for (const f of folds) {
    const warnings: string[] = [];
    const warn = (m: string) => {
      warnings.push(m);
      ctx.log.warn(`fold ${f.name}: ${m}`);
    };
    const train = pickTraining(utts, f.train);
    const kw = textKeywords(train, classes, K, { lang, warn });
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
      '--max-frames <n>',
      'training frames the k-means fit reads at most, evenly spaced (default 8000)',
      intOption(1),
    );
  jsonOption(cmd).action(async (_o, c: Command) => labelsCommand(c, io));
}
