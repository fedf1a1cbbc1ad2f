/**
 * `lemer cv`: cross-validation over every fold of the protocol (leave-one-session-out by
 * default), and the options it shares with `lemer train`. With no --config and the demo
 * corpus, the built-in demo settings apply (experiments/demo.yaml).
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { deepMerge, loadConfig } from '../../config/load.js';
import type { LemerConfig } from '../../config/schema.js';
import { parseCorpusSpec } from '../../data/corpus.js';
import type { Corpus } from '../../data/types.js';
import { crossValidate, type CvResult, type RunModel } from '../../train/cv.js';
import { DEMO_PRESET } from '../../train/presets.js';
import {
  contextOf,
  corpusOptions,
  jsonOption,
  loadCorpusFromOptions,
  table,
  writeJsonResult,
  type CliIo,
  type CommandContext,
  type CorpusCliOptions,
} from '../common.js';
import { cvOnQueue, endWithFailures, queueOptions, type QueueCliOptions } from './worker.js';

export interface TrainCliOptions extends CorpusCliOptions, QueueCliOptions {
  model: RunModel;
  fusion?: 'constraint' | 'sum' | 'label-only' | 'vanilla';
  set: string[];
  out?: string;
  resume?: boolean;
  fold?: string[];
  json?: string;
}

/** `--set a.b.c=value` (value read as YAML: numbers, booleans, null, [lists]) as a nested object. */
export function parseSets(sets: string[]): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`--set ${s}: expected key=value, e.g. --set train.epochs=5`);
    const path = s.slice(0, eq).trim().split('.');
    if (path.some((p) => p === '')) throw new Error(`--set ${s}: empty key segment`);
    const raw = s.slice(eq + 1);
    let value: unknown;
    try {
      value = raw.trim() === '' ? '' : parseYaml(raw);
    } catch {
      value = raw;
    }
    let obj: Record<string, unknown> = { [path[path.length - 1]]: value };
    for (let i = path.length - 2; i >= 0; i--) obj = { [path[i]]: obj };
    out = deepMerge(out, obj);
  }
  return out;
}

/** The options `lemer train` and `lemer cv` share. */
export function trainingOptions(cmd: Command): Command {
  return jsonOption(
    corpusOptions(cmd)
      .addOption(
        new Option(
          '--model <kind>',
          'what to train: the fused model, one modality, or score fusion of the two',
        )
          .choices(['lemer', 'text', 'speech', 'score-fusion'])
          .default(undefined, "the config's train.model (lemer)"),
      )
      .addOption(
        new Option(
          '--fusion <variant>',
          'LE-MER fusion (Table 3): constraint (C1), sum (C2), label-only (C3), vanilla (C4)',
        ).choices(['constraint', 'sum', 'label-only', 'vanilla']),
      )
      .option(
        '--set <key=value>',
        'set any config value (repeatable), e.g. --set train.epochs=5 --set optim.lr.head=3e-4',
        (v: string, acc: string[]) => [...acc, v],
        [] as string[],
      )
      .option('--out <dir>', 'results folder (default runs/<command>-<corpus>-<model>)')
      .option(
        '--resume',
        'continue an interrupted run in --out from its last checkpoint (same config and seed)',
      )
      .option(
        '--fold <name>',
        'only this fold (repeatable); the summary then reads every finished fold',
        (v: string, acc: string[]) => [...acc, v],
        [] as string[],
      ),
  );
}

export interface ResolvedRun {
  config: LemerConfig;
  corpus: Corpus;
  spec: string;
  model: RunModel;
  out: string;
  preset: boolean;
}

/** Config (defaults or demo preset, file, --set, --model/--fusion), corpus and output folder. */
export async function resolveRun(
  ctx: CommandContext,
  opts: TrainCliOptions,
  command: string,
): Promise<ResolvedRun> {
  const sets = parseSets(opts.set ?? []);
  const spec0 = opts.corpus ?? (typeof sets.corpus === 'string' ? sets.corpus : ctx.config.corpus);
  const preset = ctx.configPath === undefined && parseCorpusSpec(spec0).kind === 'demo';
  const overrides: Record<string, unknown> = deepMerge(preset ? DEMO_PRESET : {}, sets);
  if (opts.corpus) overrides.corpus = opts.corpus;
  if (opts.fusion) overrides.head = { ...(overrides.head as object), fusion: opts.fusion };
  if (opts.model) overrides.train = { ...(overrides.train as object), model: opts.model };
  // --skip-bad-audio (shared corpus option) is train.badAudio = skip: the audio is decoded
  // once before training starts either way (loadSpeech), failures counted in the report.
  if (opts.skipBadAudio) overrides.train = { ...(overrides.train as object), badAudio: 'skip' };
  let config = loadConfig(ctx.configPath, overrides);
  if (preset)
    ctx.log.info('using the built-in demo settings (experiments/demo.yaml); --config replaces them');
  const { spec, corpus } = await loadCorpusFromOptions(
    { ...ctx, config },
    { ...opts, corpus: config.corpus },
  );
  // The corpus' label set (restricted by --labels / the config's classes) is the model's.
  if (config.classes.join() !== corpus.labels.join()) config = { ...config, classes: [...corpus.labels] };
  const model: RunModel = config.head.fusion === 'score-fusion' ? 'score-fusion' : config.train.model;
  const name = corpus.name.replace(/[^A-Za-z0-9._-]+/g, '_');
  const out = resolve(opts.out ?? `runs/${command}-${name}-${model}`);
  return { config, corpus, spec, model, out, preset };
}

/** Per-fold and mean WA / UA as a table. */
export function resultTable(r: CvResult): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const rows: (string | number)[][] = r.folds.map((x) => [x.name, x.n, f(x.wa), f(x.ua)]);
  rows.push([
    `mean of ${r.folds.length}`,
    r.pooled.n,
    `${f(r.mean.wa)} ± ${f(r.std.wa)}`,
    `${f(r.mean.ua)} ± ${f(r.std.ua)}`,
  ]);
  rows.push(['pooled', r.pooled.n, f(r.pooled.wa), f(r.pooled.ua)]);
  return table(['fold', 'test', 'WA %', 'UA %'], rows);
}

export async function runTrainingCommand(
  ctx: CommandContext,
  opts: TrainCliOptions,
  command: 'cv' | 'train',
  pickFolds: (names: string[]) => string[] | 'first' | undefined,
): Promise<CvResult> {
  const run = await resolveRun(ctx, opts, command);
  ctx.log.info(
    `${command}: ${run.model} on ${run.spec} (${run.corpus.utterances.length} utterances), results in ${run.out}`,
  );
  const folds = pickFolds(opts.fold ?? []);
  const result = opts.queue
    ? await cvOnQueue(ctx, opts, run, folds === 'first' ? undefined : folds)
    : await crossValidate({
        config: run.config,
        corpus: run.corpus,
        corpusSpec: run.spec,
        model: run.model,
        out: run.out,
        resume: opts.resume ?? false,
        folds,
        progress: ctx.progress,
        log: (m) => ctx.log.info(m),
        warn: (m) => ctx.log.warn(m),
      });
  ctx.print(`${result.title}\n\n${resultTable(result)}\n\nreport: ${result.files.markdown}`);
  writeJsonResult(opts.json, result);
  await endWithFailures(result);
  return result;
}

export function registerCv(program: Command, io: CliIo): void {
  queueOptions(
    trainingOptions(
      program
        .command('cv')
        .description(
          'cross-validate a model over every fold of the protocol: per-fold and mean WA/UA, pooled confusion, report (no arguments: the demo corpus with small in-place encoders)',
        ),
    ),
  ).action(async (opts: TrainCliOptions, cmd: Command) => {
    await runTrainingCommand(contextOf(cmd, io), opts, 'cv', (f) => (f.length ? f : undefined));
  });
}
