/**
 * The demo model: what `lemer serve` and `lemer predict` use when no --model is given, so that
 * the README's commands work on a fresh machine. On first use it is trained on the synthetic
 * demo corpus with the demo preset (`lemer train` on the first fold, then `lemer export`) and
 * cached in `$LEMER_CACHE/demo-model-v1` (else `~/.cache/lemer/demo-model-v1`); later uses
 * load the cached folder. Training and export happen in a temporary sibling folder that is
 * renamed into place only once the model folder and its stamp are complete, so an interrupted
 * first use never leaves a half model that counts.
 *
 * `quick` (or LEMER_DEMO_QUICK=1) trains a tiny model in seconds on a tiny demo corpus, in
 * folders of its own (`demo-model-v1-quick`, `demo-v1-quick`): for tests and smoke checks; its
 * predictions mean nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { deepMerge, loadConfig } from '../config/load.js';
import { DEMO_VERSION } from '../data/demo.js';
import { crossValidate } from '../train/cv.js';
import { DEMO_PRESET } from '../train/presets.js';
import { removeStaleWorkDirs, writeFileAtomic } from '../util/fs.js';
import type { Progress } from '../util/progress.js';
import { exportRun } from './from-run.js';

/** Bump when the recipe changes in a way the stamp's recipe hash would not see. */
export const DEMO_MODEL_VERSION = 'demo-model-v1';
const STAMP = 'demo-model.json';

/** Tiny encoders, few epochs, 4 utterances a class: seconds instead of a minute. */
const QUICK = {
  seed: 7,
  optim: { batchSize: 4 },
  speech: { logMel: { numBins: 16 } },
  text: { maxTokens: 32 },
  train: {
    epochs: 2,
    patience: null,
    inPlace: {
      text: { vocabSize: 120, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32 },
      speech: { hiddenSize: 16, numLayers: 1, numHeads: 2, ffnDim: 32, convKernel: 3 },
    },
  },
};
const QUICK_PER_CLASS = 4;

export interface DemoModelStamp {
  format: 'lemer-demo-model';
  version: string;
  /** Hash of what was trained (preset, corpus version, quick or not): another recipe trains again. */
  recipe: string;
  quick: boolean;
  fold: string;
  /** The fold's test WA / UA in percent (the demo corpus' held-out session). */
  wa: number;
  ua: number;
  trainSeconds: number;
  created: string;
}

export interface DemoModelOptions {
  /** The model folder; default demoModelDir(). */
  dir?: string;
  /** The demo corpus folder; default the demo corpus' own cache folder (`demo-v1`). */
  corpusDir?: string;
  /** Train the tiny test model (default: LEMER_DEMO_QUICK=1). */
  quick?: boolean;
  log?: (msg: string) => void;
  warn?: (msg: string) => void;
  progress?: (total: number, label: string) => Progress;
}

export interface DemoModel {
  dir: string;
  /** True when this call trained it; false when the cached folder was reused. */
  trained: boolean;
  stamp: DemoModelStamp;
}

function cacheRoot(env: NodeJS.ProcessEnv): string {
  return env.LEMER_CACHE ? resolve(env.LEMER_CACHE) : join(homedir(), '.cache', 'lemer');
}

const quickFromEnv = (env: NodeJS.ProcessEnv) => env.LEMER_DEMO_QUICK === '1';

/** The default folder of the demo model (the quick one has its own). */
export function demoModelDir(env: NodeJS.ProcessEnv = process.env, quick = quickFromEnv(env)): string {
  return join(cacheRoot(env), quick ? `${DEMO_MODEL_VERSION}-quick` : DEMO_MODEL_VERSION);
}

function recipeHash(quick: boolean): string {
  const recipe = { version: DEMO_MODEL_VERSION, corpus: DEMO_VERSION, preset: DEMO_PRESET, quick };
  return createHash('sha256').update(JSON.stringify(recipe)).digest('hex').slice(0, 16);
}

/** The stamp of a complete demo model folder of this recipe, else null. */
export function readDemoStamp(dir: string, quick: boolean): DemoModelStamp | null {
  try {
    const s = JSON.parse(readFileSync(join(dir, STAMP), 'utf8')) as DemoModelStamp;
    if (s.format !== 'lemer-demo-model' || s.recipe !== recipeHash(quick)) return null;
    return existsSync(join(dir, 'lemer-model.json')) ? s : null;
  } catch {
    return null;
  }
}

/**
 * The demo model folder: the cached one when complete and of this recipe, else trained and
 * exported now (one to a few minutes on two cores; `quick`: seconds) and cached.
 */
export async function demoModel(opts: DemoModelOptions = {}): Promise<DemoModel> {
  const env = process.env;
  const quick = opts.quick ?? quickFromEnv(env);
  const dir = resolve(opts.dir ?? demoModelDir(env, quick));
  const log = opts.log ?? (() => undefined);
  const cached = readDemoStamp(dir, quick);
  if (cached) {
    log(
      `using the demo model cached in ${dir} (trained ${cached.created}; fold ${cached.fold} test UA ${cached.ua.toFixed(1)}%)`,
    );
    return { dir, trained: false, stamp: cached };
  }
  const corpusDir = resolve(
    opts.corpusDir ?? join(cacheRoot(env), quick ? `${DEMO_VERSION}-quick` : DEMO_VERSION),
  );
  log(
    `no --model: training the demo model once on the synthetic demo corpus (${quick ? 'quick: a tiny test model' : 'one to a few minutes on two cores'}), cached in ${dir}`,
  );
  mkdirSync(dirname(dir), { recursive: true });
  removeStaleWorkDirs(dir);
  const work = `${dir}.tmp-${process.pid}-${Date.now().toString(36)}`;
  mkdirSync(work, { recursive: true });
  try {
    // The corpus first (generated once, with a progress bar), so that training reads it cached.
    const { loadDemoCorpus } = await import('../data/demo.js');
    let bar: Progress | undefined;
    await loadDemoCorpus({
      dir: corpusDir,
      ...(quick && !existsSync(join(corpusDir, 'demo.json')) ? { perClass: QUICK_PER_CLASS } : {}),
      onProgress: (done, total) => {
        bar ??= opts.progress?.(total, 'synthesising the demo corpus');
        bar?.update(done);
      },
    });
    bar?.stop();
    const spec = `demo:${corpusDir}`;
    const overrides = deepMerge(quick ? deepMerge(DEMO_PRESET, QUICK) : DEMO_PRESET, { corpus: spec });
    const config = loadConfig(undefined, overrides);
    const { loadCorpus } = await import('../data/corpus.js');
    const corpus = await loadCorpus(spec, { labels: config.classes, onWarning: opts.warn });
    const run = join(work, 'run');
    const t0 = performance.now();
    const result = await crossValidate({
      config,
      corpus,
      corpusSpec: spec,
      model: 'lemer',
      out: run,
      resume: false,
      folds: 'first',
      progress: opts.progress,
      log,
      warn: opts.warn,
    });
    const trainSeconds = (performance.now() - t0) / 1000;
    const fold = result.folds[0];
    const model = join(work, 'model');
    await exportRun(run, model, {
      loadCorpus: (cfg) => loadCorpus(cfg.corpus, { labels: cfg.classes }),
      log,
    });
    const stamp: DemoModelStamp = {
      format: 'lemer-demo-model',
      version: DEMO_MODEL_VERSION,
      recipe: recipeHash(quick),
      quick,
      fold: fold.name,
      wa: fold.wa,
      ua: fold.ua,
      trainSeconds,
      created: new Date().toISOString(),
    };
    // Written last: its presence marks a complete folder.
    writeFileAtomic(join(model, STAMP), JSON.stringify(stamp, null, 2) + '\n');
    install(model, dir, quick);
    const installed = readDemoStamp(dir, quick) ?? stamp;
    log(
      `demo model ready in ${dir} (fold ${fold.name} test WA ${fold.wa.toFixed(1)}%, UA ${fold.ua.toFixed(1)}%; trained in ${trainSeconds.toFixed(0)} s); later starts reuse it`,
    );
    return { dir, trained: true, stamp: installed };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Renames the finished folder into place; an incomplete or older folder there is replaced. */
function install(model: string, dir: string, quick: boolean): void {
  const old = existsSync(dir) ? `${dir}.tmp-${process.pid}-old-${Date.now().toString(36)}` : null;
  if (old) renameSync(dir, old);
  try {
    renameSync(model, dir);
  } catch (err) {
    // Another process finished the same model first: use theirs.
    if (readDemoStamp(dir, quick) === null) {
      if (old) renameSync(old, dir);
      throw err;
    }
  }
  if (old) rmSync(old, { recursive: true, force: true });
}

/**
 * The model folder a command uses: the one given, else $LEMER_MODEL, else the demo model
 * (trained on first use, then cached), so that `lemer predict` and `lemer serve` work on a
 * fresh machine.
 */
export async function modelDirOrDemo(
  given: string | undefined,
  opts: Pick<DemoModelOptions, 'log' | 'warn' | 'progress'> = {},
): Promise<string> {
  return given ?? process.env.LEMER_MODEL ?? (await demoModel(opts)).dir;
}
