/**
 * `lemer export <run or checkpoint>`: the model of a training run (`lemer train` / `lemer cv`
 * output) as a model folder. The run's config rebuilds the model exactly as training built
 * it: in-place encoders get their vocabulary from the fold's training texts, so the run's
 * corpus is read once here (the exported folder then needs it no more). Weights come from
 * the fold's best validation checkpoint (`best/`, else `last/`), checked by name and shape.
 * With int8 the fold's test part is predicted by both graphs, and the accuracy change and
 * the speed-up are reported.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { LemerConfig } from '../config/schema.js';
import { historyFor } from '../data/context.js';
import type { Corpus } from '../data/types.js';
import { loadCheckpoint } from '../graph/checkpoint.js';
import { buildWordPieceVocab } from '../text/vocab.js';
import { protocolFolds, type FoldResult } from '../train/cv.js';
import { buildModel } from '../train/model.js';
import { writeModelFolder, updateManifest, type ExportResult } from './export.js';
import type { FrontEndSpec, ModelKind } from './folder.js';
import { Lemer, type PredictInput } from './lemer.js';

export interface RunPaths {
  run: string;
  fold: string;
  checkpoint: string;
}

const isCheckpoint = (d: string) =>
  existsSync(join(d, 'trainer.json')) && existsSync(join(d, 'model.safetensors'));

/** Finds the run folder, the fold folder and the checkpoint from any of the three. */
export function resolveRunPaths(arg: string, fold?: string): RunPaths {
  const p = resolve(arg);
  if (!existsSync(p)) throw new Error(`${arg}: not found (give a run folder, a fold folder or a checkpoint)`);
  let foldDir: string;
  let checkpoint: string | null = null;
  if (isCheckpoint(p)) {
    checkpoint = p;
    foldDir = dirname(p);
  } else if (
    existsSync(join(p, 'result.json')) ||
    existsSync(join(p, 'best')) ||
    existsSync(join(p, 'last'))
  ) {
    foldDir = p;
  } else if (existsSync(join(p, 'folds'))) {
    const folds = readdirSync(join(p, 'folds')).filter((f) => existsSync(join(p, 'folds', f, 'result.json')));
    if (fold !== undefined) {
      const name = fold.replace(/[^A-Za-z0-9._-]+/g, '_');
      if (!folds.includes(name))
        throw new Error(`${arg}: no finished fold ${fold} (finished: ${folds.join(', ') || 'none'})`);
      foldDir = join(p, 'folds', name);
    } else if (folds.length === 1) {
      foldDir = join(p, 'folds', folds[0]);
    } else if (folds.length === 0) {
      throw new Error(
        `${arg}: no finished fold in ${join(arg, 'folds')} (a fold's result.json is written when it ends)`,
      );
    } else {
      throw new Error(
        `${arg}: the run has ${folds.length} folds (${folds.join(', ')}): choose one with --fold <name>`,
      );
    }
  } else {
    throw new Error(
      `${arg}: not a lemer run (no folds/), fold folder (no result.json, best/ or last/) or checkpoint (no trainer.json + model.safetensors)`,
    );
  }
  if (!checkpoint) {
    const best = join(foldDir, 'best');
    const last = join(foldDir, 'last');
    checkpoint = isCheckpoint(best) ? best : isCheckpoint(last) ? last : null;
    if (!checkpoint)
      throw new Error(
        `${foldDir}: holds no checkpoint (best/ or last/ with trainer.json and model.safetensors)`,
      );
  }
  // Score fusion keeps one folder per modality under the fold.
  let run = dirname(dirname(foldDir));
  if (!existsSync(join(run, 'config.yaml')) && existsSync(join(dirname(run), 'config.yaml')))
    run = dirname(run);
  return { run, fold: foldDir, checkpoint };
}

/**
 * The tokenizer.json training used: the text encoder folder's own, or the in-place WordPiece
 * vocabulary built from the fold's training texts (the same call as src/train's buildModel).
 */
function tokenizerJsonOf(c: LemerConfig, trainTexts: string[]): Record<string, unknown> {
  const path = c.encoders.text.path;
  if (path === null) return buildWordPieceVocab(trainTexts, { vocabSize: c.train.inPlace.text.vocabSize });
  const file = join(path, 'tokenizer.json');
  if (!existsSync(file))
    throw new Error(
      `${file}: missing: export copies the text encoder's tokenizer.json (a folder with only vocab.txt is not supported yet)`,
    );
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

export interface ExportRunOptions {
  fold?: string;
  quantize?: 'int8' | null;
  /** Reads the run's corpus (the CLI's loader: demo generation, warnings). */
  loadCorpus: (cfg: LemerConfig) => Promise<Corpus>;
  log?: (msg: string) => void;
  progress?: (done: number, total: number) => void;
}

export interface Int8Report {
  testUtterances: number;
  fp32: { wa: number; seconds: number };
  int8: { wa: number; seconds: number };
  /** int8 WA - fp32 WA, in points. */
  accuracyChange: number;
  speedup: number;
  agreement: number;
}

export async function exportRun(
  arg: string,
  out: string,
  o: ExportRunOptions,
): Promise<ExportResult & { paths: RunPaths; int8Report?: Int8Report }> {
  const paths = resolveRunPaths(arg, o.fold);
  const cfgFile = join(paths.run, 'config.yaml');
  if (!existsSync(cfgFile))
    throw new Error(`${cfgFile}: missing: the run's resolved config is needed to rebuild its model`);
  const cfg = loadConfig(cfgFile);
  const resultFile = join(paths.fold, 'result.json');
  const result = existsSync(resultFile) ? (JSON.parse(readFileSync(resultFile, 'utf8')) as FoldResult) : null;
  const kind = (result?.model ?? cfg.train.model) as ModelKind | 'score-fusion';
  if (kind === 'score-fusion')
    throw new Error(
      `${paths.fold}: a score-fusion run holds two models (text/ and speech/): export one of them (lemer export ${join(paths.fold, 'text')})`,
    );
  const foldName = result?.fold ?? basename(paths.fold);
  const labels = result?.labels ?? cfg.classes;
  const c = { ...cfg, classes: labels };
  o.log?.(`reading the run's corpus (${cfg.corpus}) to rebuild fold ${foldName}'s vocabulary`);
  const corpus = await o.loadCorpus(c);
  const fold = protocolFolds(c, corpus).find((f) => f.name === foldName);
  if (!fold) throw new Error(`${paths.fold}: the corpus ${cfg.corpus} has no fold ${foldName} any more`);
  const trainTexts = [...fold.train, ...(fold.valid ?? [])].map((i) => corpus.utterances[i].text);
  const built = await buildModel(c, kind, { trainTexts, classWeights: null });
  const ck = loadCheckpoint(paths.checkpoint, { optimizer: false });
  const tokenizer = kind !== 'speech' ? tokenizerJsonOf(c, trainTexts) : null;
  const params = ck.params;
  const res = writeModelFolder(
    {
      kind,
      labels,
      model: built.model,
      params: { get: (n) => (params.has(n) ? params.get(n) : undefined), entries: () => params.entries() },
      tokenizer,
      text: { maxTokens: c.text.maxTokens, history: c.text.history, labelScope: c.text.labelScope },
      speech: (built.frontEnd ?? undefined) as FrontEndSpec | undefined,
      labelTemperature: c.head.labelTemperature,
      config: c,
      source: paths.checkpoint,
      description: built.description,
    },
    out,
    { quantize: o.quantize ?? null },
  );
  if (o.quantize !== 'int8') return { ...res, paths };
  // The int8 graph against fp32 on the fold's test part: accuracy change and speed-up.
  const inputs: PredictInput[] = fold.test.map((i) => {
    const u = corpus.utterances[i];
    const history =
      kind !== 'speech'
        ? historyFor(corpus, u, {
            maxTurns: c.text.history,
            maxTokens: c.text.maxTokens - 3,
            countTokens: (s) => built.tokenizer!.countTokens(s) + 1,
          })
        : [];
    return {
      audio: u.audioPath ?? undefined,
      text: kind !== 'speech' ? u.text : undefined,
      context: history,
      name: u.id,
    };
  });
  const truth = fold.test.map((i) => corpus.utterances[i].label);
  const score = async (int8: boolean) => {
    const m = await Lemer.load(out, { int8 });
    const t0 = performance.now();
    const preds = await m.predictBatch(inputs, { batchSize: c.train.evalBatchSize, onProgress: o.progress });
    const seconds = (performance.now() - t0) / 1000;
    await m.release();
    const right = preds.filter((p, k) => p.label === truth[k]).length;
    return { preds, wa: (100 * right) / Math.max(1, preds.length), seconds };
  };
  const f = await score(false);
  const q = await score(true);
  const agree = f.preds.filter((p, k) => p.label === q.preds[k].label).length;
  const int8Report: Int8Report = {
    testUtterances: inputs.length,
    fp32: { wa: f.wa, seconds: f.seconds },
    int8: { wa: q.wa, seconds: q.seconds },
    accuracyChange: q.wa - f.wa,
    speedup: f.seconds / q.seconds,
    agreement: agree / Math.max(1, inputs.length),
  };
  res.manifest.quantized!.int8.accuracyChange = int8Report.accuracyChange;
  res.manifest.quantized!.int8.speedup = int8Report.speedup;
  updateManifest(res.dir, res.manifest);
  return { ...res, paths, int8Report };
}
