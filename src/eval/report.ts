/**
 * Writes the result of a cross-validated run: `report.md` (tables for people),
 * `report.json` (the numbers for programs) and the pooled confusion matrix as a heat map
 * (`confusion.svg`, `confusion.png`). Every file is written atomically.
 */
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { stringify as toYaml } from 'yaml';
import { writeFileAtomic } from '../util/fs.js';
import type { Confusion, Summary } from './metrics.js';

export interface ReportOptions {
  title?: string;
  /** The run's configuration, copied into both reports. */
  config?: object;
}

export interface ReportFiles {
  markdown: string;
  json: string;
  svg: string;
  png: string;
}

export async function writeReport(
  dir: string,
  summary: Summary,
  opts: ReportOptions = {},
): Promise<ReportFiles> {
  const title = opts.title ?? 'Emotion recognition results';
  const files: ReportFiles = {
    markdown: join(dir, 'report.md'),
    json: join(dir, 'report.json'),
    svg: join(dir, 'confusion.svg'),
    png: join(dir, 'confusion.png'),
  };
  // JSON has no NaN (a class with no support has no recall): write null.
  const json = JSON.stringify(
    { title, config: opts.config ?? null, summary },
    (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
    2,
  );
  const svg = await confusionSvg(summary.pooled.confusion, summary.labels, `${title}: pooled confusion`);
  const png = svgToPng(svg);
  writeFileAtomic(files.json, json + '\n');
  writeFileAtomic(files.markdown, reportMarkdown(summary, title, opts.config));
  writeFileAtomic(files.svg, svg);
  writeFileAtomic(files.png, png);
  return files;
}

/** A fraction as a percentage with 2 decimals; '–' where undefined. */
export function pct(x: number): string {
  return Number.isFinite(x) ? (x * 100).toFixed(2) : '–';
}

/** Table cells must not contain pipes or line breaks. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function row(cells: (string | number)[]): string {
  return `| ${cells.map((c) => cell(String(c))).join(' | ')} |`;
}

function meanDefined(xs: number[]): number {
  const ok = xs.filter((x) => Number.isFinite(x));
  return ok.length > 0 ? ok.reduce((s, x) => s + x, 0) / ok.length : NaN;
}

export function reportMarkdown(summary: Summary, title: string, config?: object): string {
  const { labels, folds, mean, std, pooled } = summary;
  const out: string[] = [`# ${title}`, ''];
  out.push(
    `${pooled.n} utterances in ${folds.length} fold${folds.length === 1 ? '' : 's'}; classes: ${labels.join(', ')}.`,
    'WA = overall accuracy; UA = mean of the per-class recalls over the classes present in the fold.',
    'All figures are percentages; the mean is over folds (each fold counts once), ± the population standard deviation.',
    '',
    '## Results per fold',
    '',
    row(['fold', 'n', 'WA', 'UA', ...labels.map((l) => `recall ${l}`)]),
    row(['---', '---:', '---:', '---:', ...labels.map(() => '---:')]),
  );
  for (const f of folds) {
    out.push(row([f.name, f.n, pct(f.wa), pct(f.ua), ...labels.map((l) => pct(f.perClassRecall[l]))]));
  }
  out.push(
    row([
      '**mean ± std**',
      '',
      `${pct(mean.wa)} ± ${pct(std.wa)}`,
      `${pct(mean.ua)} ± ${pct(std.ua)}`,
      ...labels.map((l) => pct(meanDefined(folds.map((f) => f.perClassRecall[l])))),
    ]),
    row([
      '**pooled**',
      pooled.n,
      pct(pooled.wa),
      pct(pooled.ua),
      ...labels.map((l) => pct(pooled.perClassRecall[l])),
    ]),
    '',
    '## Pooled confusion matrix',
    '',
    'Rows: true class; columns: predicted class; counts.',
    '',
    ...confusionMarkdown(pooled.confusion, labels),
    '',
    '![pooled confusion matrix](confusion.png)',
    '',
  );
  if (folds.length > 1) {
    out.push('## Confusion matrix of each fold', '');
    for (const f of folds) out.push(`### ${f.name}`, '', ...confusionMarkdown(f.confusion, labels), '');
  }
  if (config !== undefined) out.push('## Configuration', '', '```yaml', toYaml(config).trimEnd(), '```', '');
  return out.join('\n');
}

function confusionMarkdown(cm: Confusion, labels: string[]): string[] {
  const lines = [
    row(['true \\ predicted', ...labels, 'total', 'recall']),
    row(['---', ...labels.map(() => '---:'), '---:', '---:']),
  ];
  labels.forEach((l, t) => {
    const total = cm[t].reduce((s, x) => s + x, 0);
    lines.push(row([`**${l}**`, ...cm[t], total, total > 0 ? pct(cm[t][t] / total) : '–']));
  });
  return lines;
}

/** Fonts named for the SVG; resvg takes the first it finds on the system. */
const FONT = 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif';

/**
 * The confusion matrix as a heat map: counts in the cells, colour = the share of the
 * true class's utterances (row-normalised, so small classes read as clearly as large
 * ones), with the row percentage under each count.
 */
export async function confusionSvg(cm: Confusion, labels: string[], title: string): Promise<string> {
  const values = labels.flatMap((t, ti) => {
    const total = cm[ti].reduce((s, x) => s + x, 0);
    return labels.map((p, pi) => {
      const share = total > 0 ? cm[ti][pi] / total : 0;
      const label = total > 0 ? `${(share * 100).toFixed(1)}%` : '';
      return { true: t, pred: p, count: cm[ti][pi], share, empty: total === 0, label };
    });
  });
  const step = Math.max(44, Math.min(72, 8 * Math.max(...labels.map((l) => l.length), 4)));
  const textColor = { condition: { test: 'datum.share > 0.65', value: 'white' }, value: '#222222' };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 13 },
    background: 'white',
    padding: 12,
    data: { values },
    width: { step },
    height: { step },
    encoding: {
      x: {
        field: 'pred',
        type: 'nominal',
        sort: labels,
        title: 'predicted',
        axis: {
          labelAngle: 0,
          orient: 'top',
          labelFontSize: 12,
          titleFontSize: 12,
          domain: false,
          ticks: false,
        },
      },
      y: {
        field: 'true',
        type: 'nominal',
        sort: labels,
        title: 'true',
        axis: { labelFontSize: 12, titleFontSize: 12, domain: false, ticks: false },
      },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: {
            // A class with no test utterances has no shares: grey, not "0%".
            condition: { test: 'datum.empty', value: '#e4e4e4' },
            field: 'share',
            type: 'quantitative',
            // From near-white, so that 0% and 10% cells differ (the 'blues' scheme starts light blue).
            scale: { domain: [0, 0.5, 1], range: ['#f7fbff', '#6baed6', '#08306b'] },
            legend: {
              title: 'share of row',
              format: '.0%',
              gradientLength: Math.max(80, step * labels.length - 20),
            },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 13, fontWeight: 'bold', baseline: 'middle', dy: -6 },
        encoding: { text: { field: 'count', type: 'quantitative' }, color: textColor },
      },
      {
        mark: { type: 'text', fontSize: 9, baseline: 'middle', dy: 9 },
        encoding: { text: { field: 'label', type: 'nominal' }, color: textColor },
      },
    ],
    config: { font: FONT, view: { stroke: null } },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders an SVG to PNG at twice its size (crisp on high-density screens). */
export function svgToPng(svg: string): Uint8Array {
  const png = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}
