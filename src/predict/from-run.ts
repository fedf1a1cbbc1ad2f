/**
 * `lemer export <run or checkpoint>`: the model of a training run (`lemer train` / `lemer cv`
 * output) as a model folder. The run's config rebuilds the model exactly as training built
 * it, with the vocabulary the fold saved (`tokenizer.json` beside its checkpoints: the one
 * source of truth, so the corpus is not needed). Weights come from the fold's best
 * validation checkpoint (`best/`, else `last/`), checked by name and shape. A score-fusion
 * fold (a text and a speech model, their logits summed) becomes one folder whose graph runs
 * both models and sums their logits. With int8 the fold's test part (read from the run's
 * corpus) is predicted by both graphs, and the accuracy change and the speed-up are reported.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { LemerConfig } from '../config/schema.js';
import { historyFor } from '../data/context.js';
import type { Corpus, Utterance } from '../data/types.js';
import type { Graph, Tensor } from '../graph/graph.js';
import * as ops from '../graph/ops/index.js';
import { loadCheckpoint } from '../graph/checkpoint.js';
import type { HostTensor } from '../graph/runtime.js';
import type { BuildContext, InputDecl } from '../graph/train.js';
import { tokenizerFromJson } from '../text/tokenizer.js';
import { protocolFolds, type FoldResult } from '../train/cv.js';
import type { ModelKind as TrainedKind } from '../train/head.js';
import { buildModel, type BuiltModel } from '../train/model.js';
import { writeModelFolder, updateManifest, type ExportResult, type ExportSpec } from './export.js';
import type { FrontEndSpec, ModelKind } from './folder.js';
import { Lemer, type PredictInput } from './lemer.js';

export interface RunPaths {
  run: string;
  fold: string;
  /** The checkpoint (score fusion: both, joined by ' + '). */
  checkpoint: string;
  /** Score fusion: the text and the speech model's folders under the fold, with their checkpoints. */
  parts?: { kind: 'text' | 'speech'; dir: string; checkpoint: string }[];
}

const isCheckpoint = (d: string) =>
  existsSync(join(d, 'trainer.json')) && existsSync(join(d, 'model.safetensors'));

/** A model folder's checkpoint: best/ (the best validation epoch), else last/. */
function checkpointIn(dir: string): string | null {
  const best = join(dir, 'best');
  const last = join(dir, 'last');
  return isCheckpoint(best) ? best : isCheckpoint(last) ? last : null;
}

/** Score fusion keeps one model folder per modality under the fold. */
function fusionParts(foldDir: string): RunPaths['parts'] | null {
  const parts = (['text', 'speech'] as const).map((kind) => {
    const dir = join(foldDir, kind);
    return { kind, dir, checkpoint: checkpointIn(dir) };
  });
  if (!parts.some((p) => existsSync(p.dir))) return null;
  for (const p of parts)
    if (!p.checkpoint)
      throw new Error(
        `${foldDir}: a score-fusion fold needs text/ and speech/, each with a checkpoint (best/ or last/); ${p.dir} has none`,
      );
  return parts as RunPaths['parts'];
}

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
  let parts: RunPaths['parts'] | null = null;
  if (!checkpoint) {
    checkpoint = checkpointIn(foldDir);
    if (!checkpoint) {
      parts = fusionParts(foldDir);
      if (!parts)
        throw new Error(
          `${foldDir}: holds no checkpoint (best/ or last/ with trainer.json and model.safetensors)`,
        );
      checkpoint = parts.map((x) => x.checkpoint).join(' + ');
    }
  }
  // One model of a score-fusion fold sits one level deeper.
  let run = dirname(dirname(foldDir));
  if (!existsSync(join(run, 'config.yaml')) && existsSync(join(dirname(run), 'config.yaml')))
    run = dirname(run);
  return { run, fold: foldDir, checkpoint, ...(parts ? { parts } : {}) };
}

/**
 * The tokenizer.json training used: the one the fold saved beside its checkpoints (the
 * in-place WordPiece vocabulary of its training texts), or the text encoder folder's own.
 * Read and checked here, so that a bad file is named.
 */
function savedTokenizer(c: LemerConfig, modelDir: string): Record<string, unknown> {
  const path = c.encoders.text.path;
  const file = path === null ? join(modelDir, 'tokenizer.json') : join(path, 'tokenizer.json');
  if (!existsSync(file))
    throw new Error(
      path === null
        ? `${file}: missing: training saves the fold's in-place vocabulary there, and export uses it (a run from an older lemer: train the fold again)`
        : `${file}: missing: export copies the text encoder's tokenizer.json (a folder with only vocab.txt is not supported yet)`,
    );
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: unreadable: ${(err as Error).message}`);
  }
  try {
    tokenizerFromJson(json, {}, file);
  } catch (err) {
    const m = (err as Error).message;
    throw new Error(m.includes(file) ? m : `${file}: not a usable tokenizer: ${m}`);
  }
  return json;
}

/** One trained model of the fold, rebuilt from the config, its saved vocabulary and its checkpoint. */
interface Rebuilt {
  kind: TrainedKind;
  built: BuiltModel;
  params: Map<string, HostTensor>;
  tokenizer: Record<string, unknown> | null;
  checkpoint: string;
}

async function rebuild(
  c: LemerConfig,
  kind: TrainedKind,
  modelDir: string,
  checkpoint: string,
): Promise<Rebuilt> {
  const tokenizer = kind !== 'speech' ? savedTokenizer(c, modelDir) : null;
  const built = await buildModel(c, kind, {
    trainTexts: [],
    classWeights: null, // class weights shape the loss only
    ...(tokenizer && c.encoders.text.path === null ? { tokenizerJson: tokenizer } : {}),
  });
  const ck = loadCheckpoint(checkpoint, { optimizer: false });
  // Weights the checkpoint does not hold (a frozen encoder folder's) come from the encoder folder.
  const params = new Map(built.initialParams);
  for (const [n, t] of ck.params.entries()) params.set(n, t);
  return { kind, built, params, tokenizer, checkpoint };
}

/** What writeModelFolder needs from one rebuilt model. */
function specOf(r: Rebuilt, c: LemerConfig, labels: string[]): ExportSpec {
  return {
    kind: r.kind,
    labels,
    model: r.built.model,
    params: r.params,
    tokenizer: r.tokenizer,
    text: { maxTokens: c.text.maxTokens, history: c.text.history, labelScope: c.text.labelScope },
    speech: (r.built.frontEnd ?? undefined) as FrontEndSpec | undefined,
    labelTemperature: c.head.labelTemperature,
    config: c,
    source: r.checkpoint,
    description: r.built.description,
  };
}

export const FUSION_SCOPES = { text: 'text_model', speech: 'speech_model' } as const;

/**
 * Score fusion as one inference graph: the text and the speech model side by side (their
 * weights under `text_model.` and `speech_model.`), logits summed as training summed them
 * (src/train/cv runFold); `speech_probs` is the speech model's own prediction, for audio
 * without a transcript.
 */
export function scoreFusionSpec(text: ExportSpec, speech: ExportSpec): ExportSpec {
  const inputs: Record<string, InputDecl> = { ...text.model.inputs };
  for (const [k, d] of Object.entries(speech.model.inputs)) {
    if (k in inputs) throw new Error(`score fusion: both models declare the input '${k}'`);
    inputs[k] = d;
  }
  const T = `${FUSION_SCOPES.text}.`;
  const S = `${FUSION_SCOPES.speech}.`;
  const get = (n: string) =>
    n.startsWith(T)
      ? text.params.get(n.slice(T.length))
      : n.startsWith(S)
        ? speech.params.get(n.slice(S.length))
        : undefined;
  function* entries(): Iterable<[string, HostTensor]> {
    for (const [n, t] of text.params.entries()) yield [T + n, t];
    for (const [n, t] of speech.params.entries()) yield [S + n, t];
  }
  return {
    ...text,
    kind: 'score-fusion',
    model: {
      inputs,
      infer(g: Graph, i: Record<string, Tensor>, ctx: BuildContext) {
        const t = g.scope(FUSION_SCOPES.text, () => text.model.infer(g, i, ctx));
        const s = g.scope(FUSION_SCOPES.speech, () => speech.model.infer(g, i, ctx));
        const logits = ops.add(t.logits, s.logits);
        const out: Record<string, Tensor> = {
          logits,
          probs: ops.softmax(logits, -1),
          text_logits: t.logits,
          speech_logits: s.logits,
          speech_probs: s.probs,
        };
        for (const k of ['text_label_attention', 'text_mask'] as const) if (t[k]) out[k] = t[k];
        for (const k of ['speech_label_attention', 'speech_mask'] as const) if (s[k]) out[k] = s[k];
        return out;
      },
    },
    params: { get, entries },
    speech: speech.speech,
    source: `${text.source} + ${speech.source}`,
    description: `score fusion (sum of logits): ${text.description} | ${speech.description}`,
  };
}

/** Every previous non-empty turn of the utterance's dialogue, oldest first (predict applies the model's history limits, as training did). */
export function dialogueContext(corpus: Corpus, u: Utterance): string[] {
  return historyFor(corpus, u, {
    maxTurns: Number.MAX_SAFE_INTEGER,
    maxTokens: Number.POSITIVE_INFINITY,
    countTokens: () => 0,
  });
}

export interface ExportRunOptions {
  fold?: string;
  quantize?: 'int8' | null;
  /** Reads the run's corpus (the CLI's loader: demo generation, warnings); only int8 scoring needs it. */
  loadCorpus: (cfg: LemerConfig) => Promise<Corpus>;
  log?: (msg: string) => void;
  progress?: (done: number, total: number) => void;
}

export interface ScoreFigures {
  /** Percent. */
  wa: number;
  ua: number;
  /** Wall time of predictBatch over the test part (decoding, features and graph runs). */
  seconds: number;
  /** Of which ONNX Runtime's graph runs. */
  graphSeconds: number;
}

export interface Int8Report {
  testUtterances: number;
  fp32: ScoreFigures;
  int8: ScoreFigures;
  /** int8 WA - fp32 WA, in points. */
  accuracyChange: number;
  /** int8 UA - fp32 UA, in points. */
  uaChange: number;
  /** fp32 graph time / int8 graph time (the part quantisation speeds up). */
  speedup: number;
  /** The same over the whole predictBatch (featurisation included). */
  endToEndSpeedup: number;
  /** Share of test utterances given the same label by both graphs. */
  agreement: number;
  /** The training run's own figures on this fold (result.json), for comparison. */
  run?: { wa: number; ua: number };
}

/** WA and UA in percent. */
function accuracies(pred: string[], truth: string[], labels: string[]): { wa: number; ua: number } {
  const right = pred.filter((p, k) => p === truth[k]).length;
  const recalls = labels
    .map((l) => {
      const idx = truth.flatMap((t, k) => (t === l ? [k] : []));
      return idx.length ? idx.filter((k) => pred[k] === l).length / idx.length : null;
    })
    .filter((r): r is number => r !== null);
  return {
    wa: (100 * right) / Math.max(1, pred.length),
    ua: (100 * recalls.reduce((a, b) => a + b, 0)) / Math.max(1, recalls.length),
  };
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
  // One model of a score-fusion fold (folds/<f>/text): the fold's result.json is one level up.
  const sub =
    ['text', 'speech'].includes(basename(paths.fold)) && !existsSync(join(paths.fold, 'result.json'));
  const resultFile = join(sub ? dirname(paths.fold) : paths.fold, 'result.json');
  const result = existsSync(resultFile) ? (JSON.parse(readFileSync(resultFile, 'utf8')) as FoldResult) : null;
  const runKind = (result?.model ?? cfg.train.model) as TrainedKind | 'score-fusion';
  const foldName = result?.fold ?? basename(sub ? dirname(paths.fold) : paths.fold);
  const labels = result?.labels ?? cfg.classes;
  const c = { ...cfg, classes: labels };
  let spec: ExportSpec;
  let kind: ModelKind;
  if (paths.parts) {
    kind = 'score-fusion';
    const [t, s] = await Promise.all(
      (['text', 'speech'] as const).map(async (k) => {
        const part = paths.parts!.find((x) => x.kind === k)!;
        return specOf(await rebuild(c, k, part.dir, part.checkpoint), c, labels);
      }),
    );
    spec = scoreFusionSpec(t, s);
  } else {
    if (!sub && runKind === 'score-fusion')
      throw new Error(
        `${paths.fold}: a score-fusion fold holds text/ and speech/: export the fold folder itself`,
      );
    const k: TrainedKind = sub ? (basename(paths.fold) as TrainedKind) : (runKind as TrainedKind);
    kind = k;
    spec = specOf(await rebuild(c, k, paths.fold, paths.checkpoint), c, labels);
  }
  const res = writeModelFolder(spec, out, { quantize: o.quantize ?? null });
  if (o.quantize !== 'int8') return { ...res, paths };
  // The int8 graph against fp32 on the fold's test part: accuracy change and speed-up.
  o.log?.(`reading the run's corpus (${cfg.corpus}) for fold ${foldName}'s test part`);
  const corpus = await o.loadCorpus(c);
  const fold = protocolFolds(c, corpus).find((f) => f.name === foldName);
  if (!fold) throw new Error(`${paths.fold}: the corpus ${cfg.corpus} has no fold ${foldName} any more`);
  // The utterances training scored (result.json), where it says; else the fold's test part.
  const byId = new Map(corpus.utterances.map((u) => [u.id, u]));
  const tested = result?.ids
    ? result.ids.map((id) => {
        const u = byId.get(id);
        if (!u)
          throw new Error(`${resultFile}: test utterance ${id} is not in the corpus ${cfg.corpus} any more`);
        return u;
      })
    : fold.test.map((i) => corpus.utterances[i]);
  const inputs: PredictInput[] = tested.map((u) => ({
    audio: kind !== 'text' ? (u.audioPath ?? undefined) : undefined,
    text: kind !== 'speech' ? u.text : undefined,
    context: kind !== 'speech' ? dialogueContext(corpus, u) : [],
    name: u.id,
  }));
  const truth = tested.map((u) => u.label);
  // Both graphs loaded at once and timed in alternating passes (the machine's load drifts);
  // small models repeat the pass for a few seconds, and each graph's fastest pass counts.
  const bs = c.train.evalBatchSize;
  const models = [await Lemer.load(out), await Lemer.load(out, { int8: true })];
  const runs = models.map(() => ({
    preds: [] as Awaited<ReturnType<Lemer['predictBatch']>>,
    seconds: Infinity,
    graphSeconds: Infinity,
  }));
  try {
    for (const m of models) await m.predictBatch(inputs.slice(0, bs), { batchSize: bs }); // warm-up
    const t0 = performance.now();
    for (let pass = 0; pass < 20 && (pass === 0 || performance.now() - t0 < 4000); pass++)
      for (const [k, m] of models.entries()) {
        const g0 = m.sessionSeconds;
        const t = performance.now();
        const preds = await m.predictBatch(inputs, {
          batchSize: bs,
          onProgress: pass === 0 ? o.progress : undefined,
        });
        runs[k].seconds = Math.min(runs[k].seconds, (performance.now() - t) / 1000);
        runs[k].graphSeconds = Math.min(runs[k].graphSeconds, m.sessionSeconds - g0);
        if (pass === 0) runs[k].preds = preds;
      }
  } finally {
    for (const m of models) await m.release();
  }
  const [f, q] = runs.map((r) => ({
    ...r,
    ...accuracies(
      r.preds.map((p) => p.label),
      truth,
      labels,
    ),
  }));
  const agree = f.preds.filter((p, k) => p.label === q.preds[k].label).length;
  const fig = (x: typeof f): ScoreFigures => ({
    wa: x.wa,
    ua: x.ua,
    seconds: x.seconds,
    graphSeconds: x.graphSeconds,
  });
  const int8Report: Int8Report = {
    testUtterances: inputs.length,
    fp32: fig(f),
    int8: fig(q),
    accuracyChange: q.wa - f.wa,
    uaChange: q.ua - f.ua,
    speedup: f.graphSeconds / q.graphSeconds,
    endToEndSpeedup: f.seconds / q.seconds,
    agreement: agree / Math.max(1, inputs.length),
    ...(result ? { run: { wa: result.wa, ua: result.ua } } : {}),
  };
  res.manifest.quantized!.int8.accuracyChange = int8Report.accuracyChange;
  res.manifest.quantized!.int8.uaChange = int8Report.uaChange;
  res.manifest.quantized!.int8.speedup = int8Report.speedup;
  updateManifest(res.dir, res.manifest);
  return { ...res, paths, int8Report };
}
