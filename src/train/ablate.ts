/**
 * `lemer ablate`: the rows of the paper's Tables 1 to 3 that apply to a corpus and its
 * encoders, each a cross-validation (a cell of src/train/grid.ts: its own folder, kept when
 * finished), gathered into one table beside the paper's IEMOCAP figures.
 *
 * Our reading of the rows (the paper gives model names, not settings):
 * - Table 1, text: A1 the text model without label embeddings or history; A2 + history;
 *   A3-A5 + history + label embeddings initialised random / label words / TF-IDF.
 * - Table 1, speech: B1 the speech model without label embeddings; B2 + 2nd-stage
 *   pretraining (pretrain.enabled: per fold, on its training audio; pretrain.steps etc. as
 *   the config says); B3-B5 + 2nd stage + label embeddings initialised random / from the
 *   text label embeddings ("BERT": the transcripts' TF-IDF keywords through a text encoder,
 *   projected to d_s) / codebook (speech codes: the pretrained quantiser's). Where the speech
 *   encoder cannot be pretrained (the compact in-place encoder, HuBERT, WavLM) B2 is left out
 *   and B3-B5 run without the 2nd stage.
 * - Table 2: score fusion of the two unimodal models with label embeddings (A5 + B5 settings),
 *   and LE-MER (C1). Table 3: fusion variants C1 constraint, C2 sum, C3 label-only, C4 vanilla.
 * "History" is the config's text.history, or 10 (the paper's) where the config has 0; on a
 * corpus without dialogues (every dialogue a single utterance) there is no history, A2 is
 * left out and the other rows run without it. Rows with identical settings share one cell
 * (LE-MER is C1). Rows the code or the corpus cannot run are listed with the reason.
 */
import type { LemerConfig } from '../config/schema.js';
import type { Corpus } from '../data/types.js';
import { writeFileAtomic } from '../util/fs.js';
import { svgToPng } from '../eval/report.js';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { codeVersion, configHash, type RunModel } from './cv.js';
import { pretrainSource } from './pretrain-step.js';
import {
  mdRow,
  runCells,
  vegaLiteSvg,
  withConfigValues,
  type CellOutcome,
  type CellRunOptions,
  type CellSpec,
} from './grid.js';

export type AblationTable = 1 | 2 | 3;

/** What a row needs from the corpus and the code. */
type Need = 'text' | 'speech' | 'history' | 'pretrain';

export interface AblationRowSpec {
  /** The paper's system id (A1..A5, B1..B5, C1..C4) or SF / LE-MER (Table 2). */
  id: string;
  table: AblationTable;
  /** The paper's row name. */
  name: string;
  model: RunModel;
  /** Config values this row sets (dotted keys); `history` stands for the history length chosen. */
  set: Record<string, unknown>;
  /** The paper's IEMOCAP figures (WA, UA %), for orientation only: another corpus, other encoders. */
  paper: { wa: number; ua: number } | null;
  needs: Need[];
  /** The cell folder, where a row is another row under a second name (LE-MER is C1); default the id. */
  cell?: string;
}

const HISTORY = Symbol('history');
/** 2nd-stage pretraining where the speech encoder can have it (B3-B5 build on B2), else off. */
const PRETRAIN = Symbol('pretrain');

/** Every row of Tables 1-3, in the paper's order. */
export const ABLATION_ROWS: readonly AblationRowSpec[] = [
  {
    id: 'A1',
    table: 1,
    name: 'text encoder',
    model: 'text',
    set: { 'train.labelEmbeddings': false, 'text.history': 0 },
    paper: { wa: 67.34, ua: 67.66 },
    needs: ['text'],
  },
  {
    id: 'A2',
    table: 1,
    name: '+ history',
    model: 'text',
    set: { 'train.labelEmbeddings': false, 'text.history': HISTORY },
    paper: { wa: 77.46, ua: 78.38 },
    needs: ['text', 'history'],
  },
  ...(
    [
      ['A3', 'random', 'random init', 77.51, 78.52],
      ['A4', 'label-words', 'label words init', 78.03, 78.88],
      ['A5', 'tfidf', 'TF-IDF init', 78.11, 78.92],
    ] as const
  ).map(([id, init, what, wa, ua]): AblationRowSpec => ({
    id,
    table: 1,
    name: `+ history + LE (${what})`,
    model: 'text',
    set: { 'train.labelEmbeddings': true, 'text.labelInit': init, 'text.history': HISTORY },
    paper: { wa, ua },
    needs: ['text'],
  })),
  {
    id: 'B1',
    table: 1,
    name: 'speech encoder',
    model: 'speech',
    set: { 'train.labelEmbeddings': false, 'pretrain.enabled': false },
    paper: { wa: 73.92, ua: 74.48 },
    needs: ['speech'],
  },
  {
    id: 'B2',
    table: 1,
    name: '+ 2nd stage',
    model: 'speech',
    set: { 'train.labelEmbeddings': false, 'pretrain.enabled': true },
    paper: { wa: 75.73, ua: 76.44 },
    needs: ['speech', 'pretrain'],
  },
  ...(
    [
      ['B3', 'random', 'random init', 76.2, 76.8, []],
      // The text label embeddings come from the corpus' transcripts through a text encoder.
      ['B4', 'bert', 'BERT embedding init', 76.48, 77.14, ['text']],
      ['B5', 'codebook', 'codebook init', 76.74, 77.74, []],
    ] as const
  ).map(([id, init, what, wa, ua, more]): AblationRowSpec => ({
    id,
    table: 1,
    name: `+ 2nd stage + LE (${what})`,
    model: 'speech',
    set: { 'train.labelEmbeddings': true, 'speech.labelInit': init, 'pretrain.enabled': PRETRAIN },
    paper: { wa, ua },
    needs: ['speech', ...more],
  })),
  {
    id: 'SF',
    table: 2,
    name: 'score fusion',
    model: 'score-fusion',
    set: {
      'train.labelEmbeddings': true,
      'text.labelInit': 'tfidf',
      'speech.labelInit': 'codebook',
      'text.history': HISTORY,
    },
    paper: { wa: 81.32, ua: 82.18 },
    needs: ['text', 'speech'],
  },
  ...(
    [
      ['LE-MER', 2, 'LE-MER', 'constraint', 82.4, 83.11],
      ['C1', 3, 'attention constraint', 'constraint', 82.4, 83.11],
      ['C2', 3, 'A_r + A_l', 'sum', 82.39, 82.75],
      ['C3', 3, 'only A_l', 'label-only', 81.29, 81.37],
      ['C4', 3, 'only A_r', 'vanilla', 81.08, 81.68],
    ] as const
  ).map(([id, table, name, fusion, wa, ua]): AblationRowSpec => ({
    id,
    table,
    name,
    model: 'lemer',
    set: {
      'head.fusion': fusion,
      'text.labelInit': 'tfidf',
      'speech.labelInit': 'codebook',
      'text.history': HISTORY,
    },
    paper: { wa, ua },
    needs: ['text', 'speech'],
    ...(id === 'LE-MER' ? { cell: 'C1' } : {}),
  })),
];

/** What the corpus offers: transcripts, audio, dialogue history. */
export function corpusAbilities(corpus: Corpus): { text: boolean; speech: boolean; history: boolean } {
  const u = corpus.utterances;
  const perDialogue = new Map<string, number>();
  for (const x of u) if (x.dialogue) perDialogue.set(x.dialogue, (perDialogue.get(x.dialogue) ?? 0) + 1);
  return {
    text: u.some((x) => x.text.trim() !== ''),
    speech: u.some((x) => x.audioPath !== null),
    history: [...perDialogue.values()].some((n) => n > 1),
  };
}

const WHY: Record<Need, string> = {
  text: 'the corpus has no transcripts',
  speech: 'the corpus has no audio',
  history: 'the corpus has no dialogue history (every dialogue is one utterance)',
  pretrain: 'the speech encoder cannot be pretrained',
};

export interface AblationPlan {
  rows: (AblationRowSpec & { cell: string; settings: Record<string, unknown> })[];
  skipped: { id: string; table: AblationTable; name: string; reason: string }[];
  cells: CellSpec[];
  /** The history length the history rows use (0 where the corpus has none). */
  history: number;
}

/** Which rows run (and in which cell), and which are left out and why. Validates every cell's config. */
export function planAblation(
  cfg: LemerConfig,
  corpus: Corpus,
  opts: { rows?: string[]; tables?: AblationTable[] } = {},
): AblationPlan {
  const can = corpusAbilities(corpus);
  const known = ABLATION_ROWS.map((r) => r.id);
  const bad = (opts.rows ?? []).filter((r) => !known.includes(r));
  if (bad.length) throw new Error(`--rows: no row ${bad.join(', ')} (rows: ${known.join(', ')})`);
  const history = can.history ? (cfg.text.history > 0 ? cfg.text.history : 10) : 0;
  const pre = pretrainSource(cfg);
  const ok: Record<Need, boolean> = {
    text: can.text,
    speech: can.speech,
    history: can.history,
    pretrain: !('error' in pre),
  };
  const why: Record<Need, string> = { ...WHY, pretrain: 'error' in pre ? pre.error : WHY.pretrain };
  const plan: AblationPlan = { rows: [], skipped: [], cells: [], history };
  const byHash = new Map<string, string>();
  for (const r of ABLATION_ROWS) {
    if (opts.rows?.length && !opts.rows.includes(r.id)) continue;
    if (opts.tables?.length && !opts.tables.includes(r.table)) continue;
    const missing = r.needs.find((n) => !ok[n]);
    if (missing) {
      plan.skipped.push({ id: r.id, table: r.table, name: r.name, reason: why[missing] });
      continue;
    }
    const settings = Object.fromEntries(
      Object.entries(r.set).map(([k, v]) => [k, v === HISTORY ? history : v === PRETRAIN ? ok.pretrain : v]),
    );
    const config = withConfigValues(cfg, settings, `ablation row ${r.id}`);
    const key = `${r.model} ${configHash(config)}`;
    let cell = byHash.get(key);
    if (cell === undefined) {
      // A stable folder name, whichever rows were chosen: reruns with other --rows reuse it.
      cell = r.cell ?? r.id;
      byHash.set(key, cell);
      plan.cells.push({ name: cell, model: r.model, config });
    }
    const name = can.history ? r.name : r.name.replace('+ history + ', '+ ');
    plan.rows.push({
      ...r,
      name: r.id.startsWith('B') && !ok.pretrain ? name.replace('+ 2nd stage + ', '+ ') : name,
      cell,
      settings,
    });
  }
  if (plan.rows.length === 0)
    throw new Error(
      `no ablation row applies: ${plan.skipped.map((s) => `${s.id}: ${s.reason}`).join('; ') || 'none chosen'}`,
    );
  return plan;
}

export interface AblationResult {
  format: 'lemer-ablation';
  title: string;
  corpus: string;
  labels: string[];
  history: number;
  rows: {
    id: string;
    table: AblationTable;
    name: string;
    model: RunModel;
    settings: Record<string, unknown>;
    cell: string;
    paper: { wa: number; ua: number } | null;
    result: Omit<CellOutcome, 'name'> | null;
  }[];
  skipped: AblationPlan['skipped'];
  out: string;
  files: { markdown: string; json: string; svg: string; png: string };
  codeVersion: string;
}

export interface AblateOptions extends CellRunOptions {
  rows?: string[];
  tables?: AblationTable[];
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');

function settingsText(s: Record<string, unknown>): string {
  return Object.entries(s)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(', ');
}

export function ablationMarkdown(r: Omit<AblationResult, 'files'>): string {
  const out = [
    `# ${r.title}`,
    '',
    `Corpus ${r.corpus}; classes ${r.labels.join(', ')}. Each row is a cross-validation (mean ± population std over`,
    'folds, each fold counting once; pooled = over all test utterances), percent. The paper columns are its IEMOCAP',
    'figures (BERT-base, wav2vec2-base), for orientation only: another corpus and other encoders.',
    '',
    mdRow(['table', 'sys', 'model', 'settings', 'folds', 'WA', 'UA', 'pooled UA', 'paper WA', 'paper UA']),
    mdRow(['---:', '---', '---', '---', '---:', '---:', '---:', '---:', '---:', '---:']),
  ];
  for (const x of r.rows) {
    const res = x.result;
    out.push(
      mdRow([
        x.table,
        x.id,
        x.name,
        `${x.model}: ${settingsText(x.settings)}${x.cell !== x.id ? ` (cell ${x.cell})` : ''}`,
        res ? res.folds.length : '–',
        res ? `${f2(res.mean.wa)} ± ${f2(res.std.wa)}` : 'not run yet',
        res ? `${f2(res.mean.ua)} ± ${f2(res.std.ua)}` : '',
        res ? f2(res.pooled.ua) : '',
        x.paper ? f2(x.paper.wa) : '',
        x.paper ? f2(x.paper.ua) : '',
      ]),
    );
  }
  if (r.skipped.length) {
    out.push('', '## Rows left out', '');
    for (const s of r.skipped) out.push(`- ${s.id} (${s.name}): ${s.reason}.`);
  }
  out.push('', '![ablation](ablation.png)', '', 'Cells: `cells/<sys>/` (each a `lemer cv` folder).', '');
  return out.join('\n');
}

/** Mean UA per row as bars, each fold's UA as points. */
export async function ablationSvg(r: Omit<AblationResult, 'files'>): Promise<string> {
  const order = r.rows.map((x) => `${x.id} ${x.name}`);
  const bars = r.rows
    .filter((x) => x.result)
    .map((x) => ({ row: `${x.id} ${x.name}`, table: `Table ${x.table}`, ua: x.result!.mean.ua }));
  const points = r.rows.flatMap((x) =>
    (x.result?.folds ?? []).map((f) => ({ row: `${x.id} ${x.name}`, ua: f.ua, fold: f.name })),
  );
  const y = { field: 'row', type: 'nominal' as const, sort: order, title: null, axis: { labelLimit: 320 } };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: r.title, fontSize: 13 },
    background: 'white',
    padding: 12,
    width: 320,
    height: { step: 22 },
    layer: [
      {
        data: { values: bars },
        mark: { type: 'bar' },
        encoding: {
          y,
          x: {
            field: 'ua',
            type: 'quantitative',
            title: 'UA % (mean over folds; dots: folds)',
            scale: { domain: [0, 100] },
          },
          color: { field: 'table', type: 'nominal', title: null },
        },
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 16, color: '#333333', opacity: 0.5 },
        encoding: { y, x: { field: 'ua', type: 'quantitative' } },
      },
    ],
    config: { font: 'DejaVu Sans' },
  };
  return vegaLiteSvg(spec);
}

export async function runAblation(o: AblateOptions): Promise<AblationResult> {
  const plan = planAblation(o.config, o.corpus, { rows: o.rows, tables: o.tables });
  for (const s of plan.skipped) o.log?.(`row ${s.id} (${s.name}) left out: ${s.reason}`);
  const files = {
    markdown: join(o.out, 'ablation.md'),
    json: join(o.out, 'ablation.json'),
    svg: join(o.out, 'ablation.svg'),
    png: join(o.out, 'ablation.png'),
  };
  const version = codeVersion();
  const title = `Ablation on ${o.corpus.name} (Tables 1-3)`;
  let result: AblationResult | null = null;
  const write = async (done: CellOutcome[]) => {
    const body: Omit<AblationResult, 'files'> = {
      format: 'lemer-ablation',
      title,
      corpus: o.corpusSpec,
      labels: [...o.corpus.labels],
      history: plan.history,
      rows: plan.rows.map((x) => {
        const c = done.find((d) => d.name === x.cell);
        let res: Omit<CellOutcome, 'name'> | null = null;
        if (c) {
          const { name: _name, ...rest } = c;
          res = rest;
        }
        return {
          id: x.id,
          table: x.table,
          name: x.name,
          model: x.model,
          settings: x.settings,
          cell: x.cell,
          paper: x.paper,
          result: res,
        };
      }),
      skipped: plan.skipped,
      out: o.out,
      codeVersion: version,
    };
    result = { ...body, files };
    const svg = await ablationSvg(body);
    writeFileAtomic(files.svg, svg);
    writeFileAtomic(files.png, svgToPng(svg));
    writeFileAtomic(files.markdown, ablationMarkdown(body));
    writeFileAtomic(files.json, JSON.stringify(result, null, 2) + '\n');
  };
  await runCells(plan.cells, o, write);
  return result!;
}
