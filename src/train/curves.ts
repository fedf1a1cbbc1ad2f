/** Training curves as pictures: train loss and validation UA / WA per epoch, one line per fold. */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { EpochRecord } from './fit.js';

export async function curvesSvg(
  runs: { name: string; history: EpochRecord[] }[],
  title: string,
): Promise<string> {
  const values = runs.flatMap((r) =>
    r.history.flatMap((h) => [
      { fold: r.name, epoch: h.epoch, what: 'train loss', value: h.trainLoss },
      ...(h.valid
        ? [
            { fold: r.name, epoch: h.epoch, what: 'valid UA %', value: 100 * h.valid.ua },
            { fold: r.name, epoch: h.epoch, what: 'valid WA %', value: 100 * h.valid.wa },
          ]
        : []),
    ]),
  );
  const panel = (what: string) => ({
    transform: [{ filter: `datum.what === '${what}'` }],
    mark: { type: 'line' as const, point: true },
    width: 280,
    height: 180,
    title: what,
    encoding: {
      x: { field: 'epoch', type: 'quantitative' as const, axis: { tickMinStep: 1 } },
      y: { field: 'value', type: 'quantitative' as const, title: what, scale: { zero: false } },
      color: { field: 'fold', type: 'nominal' as const },
    },
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 13 },
    background: 'white',
    padding: 12,
    data: { values },
    hconcat: [panel('train loss'), panel('valid UA %'), panel('valid WA %')],
    config: { font: 'DejaVu Sans' },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
