/**
 * Experiments over many runs: a grid over one config value (`lemer grid --param
 * speech.labelK 25,50,100,200`, the paper's Figure 3) and the cells it shares with the
 * ablation (src/train/ablate.ts). A cell is one cross-validation (src/train/cv.ts) in its own
 * folder `<out>/cells/<name>/`; a cell whose results file belongs to the same resolved
 * config, corpus and folds is kept as it is (not rerun), one cut short continues from its
 * finished folds and checkpoints. The summary (markdown + JSON + a plot) is built from the
 * cells' result files only, and written atomically after each cell, so an interrupted grid
 * leaves a readable summary of what has finished.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { parse as parseYaml } from 'yaml';
import { deepMerge, parseConfig } from '../config/load.js';
import type { LemerConfig } from '../config/schema.js';
import type { Corpus } from '../data/types.js';
import { svgToPng } from '../eval/report.js';
import { CheckpointError } from '../graph/checkpoint.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Progress } from '../util/progress.js';
import { AudioCache } from './audio-cache.js';
import {
  codeVersion,
  configHash,
  corpusHash,
  crossValidate,
  foldDirName,
  protocolFolds,
  type CvResult,
  type RunModel,
} from './cv.js';

/** What every experiment over cells shares. */
export interface CellRunOptions {
  config: LemerConfig;
  corpus: Corpus;
  corpusSpec: string;
  out: string;
  /** Only these folds (by name); default every fold of the protocol. */
  folds?: string[];
  /** Rerun cells even where a finished result exists (default false: finished cells are kept). */
  force?: boolean;
  progress?: (total: number, label: string) => Progress;
  log?: (msg: string) => void;
  warn?: (msg: string) => void;
  /**
   * Called once before any cell runs, with every cell (config resolved, folder) and the
   * folds wanted: the queue (src/queue) runs their folds on workers here; with `summaryOnly`
   * the cells then only summarise the fold results it wrote.
   */
  beforeCells?: (cells: (CellSpec & { dir: string })[], folds: string[]) => Promise<void>;
  summaryOnly?: boolean;
}

/** One cross-validation of an experiment. */
export interface CellSpec {
  /** Folder-safe name, unique in the experiment: `<out>/cells/<name>/`. */
  name: string;
  model: RunModel;
  config: LemerConfig;
}

/** What a cell leaves for the summaries (all figures in percent). */
export interface CellOutcome {
  name: string;
  model: RunModel;
  dir: string;
  /** True when an earlier run's result was kept. */
  reused: boolean;
  folds: { name: string; wa: number; ua: number; n: number }[];
  mean: { wa: number; ua: number };
  std: { wa: number; ua: number };
  pooled: { wa: number; ua: number; n: number };
  seconds: number;
  configHash: string;
}

/** A config value by dotted path (`speech.labelK`), or undefined where the path is absent. */
export function getConfigValue(cfg: LemerConfig, key: string): unknown {
  let v: unknown = cfg;
  for (const k of key.split('.')) {
    if (v === null || typeof v !== 'object' || !(k in v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** The config with the values of `sets` (dotted keys) replaced, validated again: a bad key or value is an error naming it. */
export function withConfigValues(
  cfg: LemerConfig,
  sets: Record<string, unknown>,
  source: string,
): LemerConfig {
  let over: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(sets)) {
    const path = key.split('.');
    if (path.some((p) => p === '')) throw new Error(`${source}: empty key segment in "${key}"`);
    let obj: Record<string, unknown> = { [path[path.length - 1]]: value };
    for (let i = path.length - 2; i >= 0; i--) obj = { [path[i]]: obj };
    over = deepMerge(over, obj);
  }
  return parseConfig(deepMerge(cfg as unknown as Record<string, unknown>, over), source);
}

/** `25,50,100,200` as values (each read as YAML: numbers, booleans, strings). */
export function parseGridValues(param: string, list: string): unknown[] {
  const parts = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) throw new Error(`--param ${param}: no values given (e.g. 25,50,100,200)`);
  const values = parts.map((p) => {
    try {
      return parseYaml(p) as unknown;
    } catch {
      return p;
    }
  });
  const seen = new Set(values.map((v) => JSON.stringify(v)));
  if (seen.size !== values.length) throw new Error(`--param ${param}: a value is given twice in "${list}"`);
  return values;
}

/** Folder-safe cell name. */
export function cellDirName(name: string): string {
  return foldDirName(name);
}

/** The config as crossValidate resolves it: the corpus' label set is the model's. */
function resolvedFor(cfg: LemerConfig, corpus: Corpus): LemerConfig {
  return cfg.classes.join() === corpus.labels.join() ? cfg : { ...cfg, classes: [...corpus.labels] };
}

function readCv(path: string): CvResult | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as CvResult;
  } catch {
    return null;
  }
}

function outcomeOf(name: string, dir: string, r: CvResult, reused: boolean): CellOutcome {
  return {
    name,
    model: r.model,
    dir,
    reused,
    folds: r.folds.map((f) => ({ name: f.name, wa: f.wa, ua: f.ua, n: f.n })),
    mean: r.mean,
    std: r.std,
    pooled: { wa: r.pooled.wa, ua: r.pooled.ua, n: r.pooled.n },
    seconds: r.seconds,
    configHash: r.configHash,
  };
}

/**
 * Runs the cells one after another (each a cross-validation in its own folder); calls
 * `after` with every outcome so far once each cell is done (the caller rewrites its summary).
 * The folds are checked once, before the first cell, so that a bad protocol stops the
 * experiment before any training.
 */
export async function runCells(
  cells: CellSpec[],
  o: CellRunOptions,
  after?: (done: CellOutcome[]) => Promise<void>,
): Promise<CellOutcome[]> {
  const names = new Set<string>();
  for (const c of cells) {
    if (names.has(c.name)) throw new Error(`two cells are named ${c.name}`);
    names.add(c.name);
  }
  const folds = protocolFolds(resolvedFor(o.config, o.corpus), o.corpus).map((f) => f.name);
  const only = o.folds ?? [];
  const unknown = only.filter((n) => !folds.includes(n));
  if (unknown.length) throw new Error(`no fold named ${unknown.join(', ')} (folds: ${folds.join(', ')})`);
  const wanted = only.length ? only : folds;
  await o.beforeCells?.(
    cells.map((c) => ({
      ...c,
      config: resolvedFor(c.config, o.corpus),
      dir: join(o.out, 'cells', cellDirName(c.name)),
    })),
    wanted,
  );
  // Content hashes as crossValidate computes them: audio bytes only where a model reads speech.
  const hashes = new Map<boolean, string>();
  const hashFor = async (model: RunModel): Promise<string> => {
    const speech = model !== 'text';
    let h = hashes.get(speech);
    if (h === undefined) {
      const cache = speech ? new AudioCache(null, { kind: 'waveform', sampleRate: 16000 }) : null;
      h = await corpusHash(o.corpus, cache);
      hashes.set(speech, h);
    }
    return h;
  };
  const done: CellOutcome[] = [];
  for (const [k, c] of cells.entries()) {
    const cfg = resolvedFor(c.config, o.corpus);
    const dir = join(o.out, 'cells', cellDirName(c.name));
    const prev = o.force ? null : readCv(join(dir, 'results.json'));
    const finished =
      prev !== null &&
      prev.model === c.model &&
      prev.configHash === configHash(cfg) &&
      prev.corpusHash === (await hashFor(c.model)) &&
      wanted.every((f) => prev.folds.some((x) => x.name === f));
    if (finished) {
      o.log?.(
        `cell ${c.name} (${k + 1}/${cells.length}): finished in an earlier run (mean UA ${prev.mean.ua.toFixed(2)}), kept`,
      );
      done.push(outcomeOf(c.name, dir, prev, true));
    } else {
      o.log?.(`cell ${c.name} (${k + 1}/${cells.length}): ${c.model}, results in ${dir}`);
      const run = (resume: boolean) =>
        crossValidate({
          config: cfg,
          corpus: o.corpus,
          corpusSpec: o.corpusSpec,
          model: c.model,
          out: dir,
          resume,
          summaryOnly: o.summaryOnly,
          folds: only.length ? only : undefined,
          progress: o.progress,
          log: o.log,
          warn: o.warn,
        });
      let r: CvResult;
      try {
        // Finished folds of a cell cut short are kept; an interrupted fold continues.
        r = await run(!o.force);
      } catch (err) {
        if (!(err instanceof CheckpointError) || o.force) throw err;
        // A checkpoint of an earlier config of this cell (the experiment was edited): start the cell afresh.
        o.warn?.(`cell ${c.name}: ${err.message}\nthe cell starts afresh`);
        r = await run(false);
      }
      o.log?.(`cell ${c.name}: mean WA ${r.mean.wa.toFixed(2)}, UA ${r.mean.ua.toFixed(2)}`);
      done.push(outcomeOf(c.name, dir, r, false));
    }
    await after?.(done);
  }
  return done;
}

export interface GridOptions extends CellRunOptions {
  model: RunModel;
  /** Dotted config key, e.g. speech.labelK. */
  param: string;
  values: unknown[];
}

export interface GridResult {
  format: 'lemer-grid';
  title: string;
  param: string;
  model: RunModel;
  corpus: string;
  labels: string[];
  cells: (CellOutcome & { value: unknown })[];
  /** The value with the best mean UA (ties: the first). */
  best: { value: unknown; ua: number; wa: number } | null;
  /** Values not run yet (an interrupted grid). */
  missing: unknown[];
  out: string;
  files: { markdown: string; json: string; svg: string; png: string };
  codeVersion: string;
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');

/** One markdown table row; pipes in cells escaped. */
export function mdRow(cells: (string | number)[]): string {
  return `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
}

/** The grid's cell name for a value: `speech.labelK=25`. */
export function gridCellName(param: string, value: unknown): string {
  return `${param}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
}

/** Renders a vega-lite spec to SVG (no browser, no canvas). */
export async function vegaLiteSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Figure 3: mean WA and UA over the folds against the parameter, each fold's UA as faint points. */
export async function gridSvg(r: Omit<GridResult, 'files'>): Promise<string> {
  const numeric = r.cells.every((c) => typeof c.value === 'number');
  const x = numeric
    ? { field: 'value', type: 'quantitative' as const, title: r.param, scale: { zero: false } }
    : {
        field: 'value',
        type: 'ordinal' as const,
        title: r.param,
        sort: r.cells.map((c) => String(c.value)),
      };
  const val = (v: unknown) => (numeric ? v : String(v));
  const means = r.cells.flatMap((c) => [
    { value: val(c.value), metric: 'UA', pct: c.mean.ua },
    { value: val(c.value), metric: 'WA', pct: c.mean.wa },
  ]);
  const folds = r.cells.flatMap((c) =>
    c.folds.map((f) => ({ value: val(c.value), metric: 'UA', pct: f.ua, fold: f.name })),
  );
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: r.title, fontSize: 13 },
    background: 'white',
    padding: 12,
    width: 360,
    height: 220,
    layer: [
      {
        data: { values: folds },
        mark: { type: 'point', opacity: 0.25, filled: true, size: 24 },
        encoding: {
          x,
          y: { field: 'pct', type: 'quantitative', title: 'percent', scale: { zero: false } },
          color: { field: 'metric', type: 'nominal', title: 'mean over folds' },
        },
      },
      {
        data: { values: means },
        mark: { type: 'line', point: true },
        encoding: {
          x,
          y: { field: 'pct', type: 'quantitative', title: 'percent', scale: { zero: false } },
          color: { field: 'metric', type: 'nominal', title: 'mean over folds' },
        },
      },
    ],
    config: { font: 'DejaVu Sans' },
  };
  return vegaLiteSvg(spec);
}

export function gridMarkdown(r: Omit<GridResult, 'files'>): string {
  const foldNames = [...new Set(r.cells.flatMap((c) => c.folds.map((f) => f.name)))];
  const out = [
    `# ${r.title}`,
    '',
    `Corpus ${r.corpus}; classes ${r.labels.join(', ')}; model ${r.model}. Each row is a cross-validation with`,
    `\`${r.param}\` set to the value (everything else as the config); WA = accuracy, UA = mean per-class recall,`,
    'percent; mean ± population std over folds, each fold counting once; pooled = over all test utterances.',
    '',
    mdRow([r.param, 'folds', 'WA', 'UA', 'pooled WA', 'pooled UA', ...foldNames.map((f) => `UA ${f}`)]),
    mdRow(['---:', '---:', '---:', '---:', '---:', '---:', ...foldNames.map(() => '---:')]),
  ];
  for (const c of r.cells) {
    const best = r.best !== null && JSON.stringify(r.best.value) === JSON.stringify(c.value);
    out.push(
      mdRow([
        best ? `**${String(c.value)}**` : String(c.value),
        c.folds.length,
        `${f2(c.mean.wa)} ± ${f2(c.std.wa)}`,
        `${f2(c.mean.ua)} ± ${f2(c.std.ua)}`,
        f2(c.pooled.wa),
        f2(c.pooled.ua),
        ...foldNames.map((n) => f2(c.folds.find((f) => f.name === n)?.ua ?? NaN)),
      ]),
    );
  }
  if (r.missing.length) out.push('', `Not run yet: ${r.missing.map(String).join(', ')}.`);
  if (r.best) out.push('', `Best mean UA: ${r.param} = ${String(r.best.value)} (${f2(r.best.ua)}).`);
  out.push('', '![grid](grid.png)', '', 'Cells: `cells/<param>=<value>/` (each a `lemer cv` folder).', '');
  return out.join('\n');
}

/** `lemer grid`: one cross-validation per value of one config key, then a table and a plot. */
export async function runGrid(o: GridOptions): Promise<GridResult> {
  if (getConfigValue(o.config, o.param) === undefined)
    throw new Error(`--param ${o.param}: no such config key (see \`lemer config show\`)`);
  if (o.values.length === 0) throw new Error(`--param ${o.param}: no values`);
  // Every cell's config is built (and validated) before any training starts.
  const cells: (CellSpec & { value: unknown })[] = o.values.map((value) => ({
    name: gridCellName(o.param, value),
    value,
    model: o.model,
    config: withConfigValues(o.config, { [o.param]: value }, `--param ${o.param}=${JSON.stringify(value)}`),
  }));
  const files = {
    markdown: join(o.out, 'grid.md'),
    json: join(o.out, 'grid.json'),
    svg: join(o.out, 'grid.svg'),
    png: join(o.out, 'grid.png'),
  };
  const title = `${o.param} grid: ${o.model}${o.model === 'lemer' ? ` (${o.config.head.fusion})` : ''} on ${o.corpus.name}`;
  const version = codeVersion();
  let result: GridResult | null = null;
  const write = async (done: CellOutcome[]) => {
    const withValues = done.map((d) => ({ ...d, value: cells.find((c) => c.name === d.name)!.value }));
    let best: GridResult['best'] = null;
    for (const c of withValues)
      if (best === null || c.mean.ua > best.ua) best = { value: c.value, ua: c.mean.ua, wa: c.mean.wa };
    const body: Omit<GridResult, 'files'> = {
      format: 'lemer-grid',
      title,
      param: o.param,
      model: o.model,
      corpus: o.corpusSpec,
      labels: [...o.corpus.labels],
      cells: withValues,
      best,
      missing: cells.filter((c) => !done.some((d) => d.name === c.name)).map((c) => c.value),
      out: o.out,
      codeVersion: version,
    };
    result = { ...body, files };
    const svg = await gridSvg(body);
    writeFileAtomic(files.svg, svg);
    writeFileAtomic(files.png, svgToPng(svg));
    writeFileAtomic(files.markdown, gridMarkdown(body));
    writeFileAtomic(files.json, JSON.stringify(result, null, 2) + '\n');
  };
  await runCells(cells, o, write);
  return result!;
}
