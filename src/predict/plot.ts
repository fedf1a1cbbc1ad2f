/**
 * The picture of a prediction (the paper's Figure 4): the waveform with the label-frame
 * attention as a strip under it, the transcript's words coloured by their label-token
 * attention, and the class probabilities. For a segmented recording: a timeline of the
 * segments coloured by predicted class, with each one's probability. vega-lite -> SVG;
 * resvg -> PNG (as src/eval/report.ts does).
 */
import { extname } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { svgToPng } from '../eval/report.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Prediction, SegmentPrediction, TokenWeight } from './lemer.js';

const FONT = 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif';
const WIDTH = 640;
// Diverging: negative cosine blue, zero white, positive red.
const WEIGHT_SCALE = { scheme: 'redblue', reverse: true, domainMid: 0 } as const;

/** Word pieces joined into words ("em", "##otion" -> "emotion"), each word's weight the mean of its pieces'. */
export function mergeWordPieces(tokens: TokenWeight[]): TokenWeight[] {
  const out: { token: string; sum: number; n: number }[] = [];
  for (const t of tokens) {
    if (t.token.startsWith('##') && out.length) {
      const w = out[out.length - 1];
      w.token += t.token.slice(2);
      w.sum += t.weight;
      w.n += 1;
    } else out.push({ token: t.token, sum: t.weight, n: 1 });
  }
  return out.map((w) => ({ token: w.token, weight: w.sum / w.n }));
}

/** Min and max of the samples in `bins` equal stretches: the waveform's outline at plot resolution. */
export function envelope(
  samples: Float32Array,
  sampleRate: number,
  bins = 800,
): { t: number; lo: number; hi: number }[] {
  const n = samples.length;
  const k = Math.max(1, Math.ceil(n / bins));
  const out: { t: number; lo: number; hi: number }[] = [];
  for (let i = 0; i < n; i += k) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = i; j < Math.min(n, i + k); j++) {
      const v = samples[j];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    out.push({ t: i / sampleRate, lo, hi });
  }
  return out;
}

async function render(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function probBars(probs: Record<string, number>, label: string): TopLevelSpec {
  const values = Object.entries(probs).map(([c, p]) => ({ c, p, top: c === label }));
  return {
    title: { text: 'class probabilities', fontSize: 12, anchor: 'start' },
    data: { values },
    width: WIDTH - 120,
    height: { step: 18 },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          y: { field: 'c', type: 'nominal', sort: null, title: null },
          x: {
            field: 'p',
            type: 'quantitative',
            scale: { domain: [0, 1] },
            title: null,
            axis: { format: '.0%' },
          },
          color: { condition: { test: 'datum.top', value: '#d6604d' }, value: '#9ecae1' },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 },
        encoding: {
          y: { field: 'c', type: 'nominal', sort: null },
          x: { field: 'p', type: 'quantitative' },
          text: { field: 'p', type: 'quantitative', format: '.1%' },
        },
      },
    ],
  } as unknown as TopLevelSpec;
}

export interface PlotOptions {
  /** The audio the prediction was made on (16 kHz mono), for the waveform. */
  samples?: Float32Array;
  sampleRate?: number;
  title?: string;
}

/** Figure 4 for one prediction, as SVG text. */
export async function predictionSvg(p: Prediction, opts: PlotOptions = {}): Promise<string> {
  const rows: unknown[] = [];
  const seconds =
    p.audio?.seconds ?? (opts.samples && opts.sampleRate ? opts.samples.length / opts.sampleRate : 0);
  const x = {
    field: 't',
    type: 'quantitative',
    scale: { domain: [0, seconds], nice: false, zero: false },
    title: null,
  };
  if (opts.samples && opts.sampleRate) {
    rows.push({
      title: { text: 'waveform', fontSize: 12, anchor: 'start' },
      data: { values: envelope(opts.samples, opts.sampleRate) },
      width: WIDTH,
      height: 90,
      mark: { type: 'area', color: '#555555', interpolate: 'step-after' },
      encoding: {
        x: { ...x, axis: { labels: false, ticks: false, domain: false, grid: false } },
        y: { field: 'lo', type: 'quantitative', title: null, axis: null },
        y2: { field: 'hi' },
      },
    });
  }
  if (p.frames?.length) {
    const hop = p.frames.length > 1 ? p.frames[1].time - p.frames[0].time : seconds;
    rows.push({
      title: { text: 'label-frame attention (G_s, mean over classes)', fontSize: 12, anchor: 'start' },
      data: { values: p.frames.map((f) => ({ t: f.time, t2: f.time + hop, w: f.weight })) },
      width: WIDTH,
      height: 26,
      mark: { type: 'rect' },
      encoding: {
        x: { ...x, title: 'time (s)' },
        x2: { field: 't2' },
        color: {
          field: 'w',
          type: 'quantitative',
          scale: WEIGHT_SCALE,
          legend: { title: 'weight', orient: 'right' },
        },
      },
    });
  }
  if (p.tokens?.length) {
    const words = mergeWordPieces(p.tokens);
    const values = words.map((w, i) => ({ i, token: w.token, w: w.weight }));
    rows.push({
      title: { text: 'label-token attention (G_t, mean over classes)', fontSize: 12, anchor: 'start' },
      data: { values },
      width: { step: Math.max(28, Math.min(90, 8 * Math.max(...words.map((w) => w.token.length)))) },
      height: 26,
      layer: [
        {
          mark: { type: 'rect', stroke: 'white' },
          encoding: {
            x: { field: 'i', type: 'ordinal', axis: null },
            color: { field: 'w', type: 'quantitative', scale: WEIGHT_SCALE, legend: null },
          },
        },
        {
          mark: { type: 'text', fontSize: 12 },
          encoding: { x: { field: 'i', type: 'ordinal' }, text: { field: 'token', type: 'nominal' } },
        },
      ],
    });
  } else if (p.transcript) {
    rows.push({
      title: {
        text: `transcript (${p.transcript.source}): ${p.transcript.text}`.slice(0, 120),
        fontSize: 12,
        anchor: 'start',
      },
      data: { values: [{}] },
      width: WIDTH,
      height: 1,
      mark: { type: 'point', opacity: 0 },
    });
  }
  rows.push(probBars(p.probs, p.label));
  const title =
    opts.title ??
    `${p.name ? `${p.name}: ` : ''}${p.label} (${(100 * p.probs[p.label]).toFixed(1)}%)${p.modality === 'speech' && p.method !== 'model' ? ', speech alone' : ''}`;
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 14 },
    background: 'white',
    padding: 12,
    vconcat: rows,
    spacing: 14,
    config: { font: FONT, view: { stroke: null } },
  } as unknown as TopLevelSpec);
}

/** The timeline of a segmented recording: one bar per segment, coloured by class. */
export async function segmentsSvg(
  segs: SegmentPrediction[],
  opts: { seconds?: number; title?: string } = {},
): Promise<string> {
  const seconds = opts.seconds ?? Math.max(1, ...segs.map((s) => s.end));
  const values = segs.map((s, i) => ({
    i,
    start: s.start,
    end: s.end,
    label: s.label,
    p: s.probs[s.label],
    text: `${s.label} ${(100 * s.probs[s.label]).toFixed(0)}%`,
  }));
  const labels = segs.length ? Object.keys(segs[0].probs) : [];
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: opts.title ?? `${segs.length} speech segments`, fontSize: 14 },
    background: 'white',
    padding: 12,
    data: { values },
    width: WIDTH,
    height: 60,
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5 },
        encoding: {
          x: {
            field: 'start',
            type: 'quantitative',
            scale: { domain: [0, seconds], nice: false },
            title: 'time (s)',
          },
          x2: { field: 'end' },
          color: {
            field: 'label',
            type: 'nominal',
            scale: { domain: labels, scheme: 'set2' },
            title: 'class',
          },
          opacity: {
            field: 'p',
            type: 'quantitative',
            scale: { domain: [0, 1], range: [0.35, 1] },
            legend: null,
          },
          tooltip: [{ field: 'start' }, { field: 'end' }, { field: 'text' }],
        },
      },
      ...(segs.length <= 40
        ? [
            {
              mark: { type: 'text', fontSize: 10, baseline: 'middle' },
              transform: [{ calculate: '(datum.start + datum.end) / 2', as: 'mid' }],
              encoding: {
                x: { field: 'mid', type: 'quantitative' },
                y: { value: 30 },
                text: { field: 'text' },
              },
            },
          ]
        : []),
    ],
    config: { font: FONT, view: { stroke: '#dddddd' } },
  } as unknown as TopLevelSpec);
}

/** Writes an SVG to `path` as SVG or PNG, chosen by the extension; atomic. */
export function writePlot(path: string, svg: string): void {
  const ext = extname(path).toLowerCase();
  if (ext === '.svg') writeFileAtomic(path, svg);
  else if (ext === '.png') writeFileAtomic(path, svgToPng(svg));
  else throw new Error(`--plot ${path}: the file name must end in .svg or .png`);
}
