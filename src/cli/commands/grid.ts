/**
 * `lemer grid --param speech.labelK 25,50,100,200`: one cross-validation per value of one
 * config key (the paper's Figure 3), a folder per value, finished values kept; a table, a
 * plot and JSON of mean WA / UA per value.
 */
import type { Command } from 'commander';
import { runGrid, parseGridValues, type GridResult } from '../../train/grid.js';
import { contextOf, table, writeJsonResult, type CliIo } from '../common.js';
import { resolveRun, trainingOptions, type TrainCliOptions } from './cv.js';
import { cellsOnQueue, endWithFailures, queueOptions } from './worker.js';

interface GridCliOptions extends TrainCliOptions {
  param: string[];
  force?: boolean;
}

/** `--param key values` or `--param key=values`. */
export function parseParamOption(words: string[]): { param: string; values: unknown[] } {
  const joined = words.join(' ').trim();
  const m = /^([^\s=]+)\s*(?:=|\s)\s*(\S.*)$/.exec(joined);
  if (!m)
    throw new Error(
      `--param ${joined}: expected a config key and its values, e.g. --param speech.labelK 25,50,100,200`,
    );
  return { param: m[1], values: parseGridValues(m[1], m[2].replace(/\s+/g, '')) };
}

export function gridTable(r: GridResult): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  return table(
    [r.param, 'folds', 'WA %', 'UA %', 'pooled UA %'],
    r.cells.map((c) => [
      String(c.value),
      c.folds.length,
      `${f(c.mean.wa)} ± ${f(c.std.wa)}`,
      `${f(c.mean.ua)} ± ${f(c.std.ua)}`,
      f(c.pooled.ua),
    ]),
  );
}

export function registerGrid(program: Command, io: CliIo): void {
  queueOptions(
    trainingOptions(
      program
        .command('grid')
        .description(
          'cross-validate once per value of one config key (Figure 3: --param speech.labelK 25,50,100,200): table, plot, JSON; finished values are kept',
        ),
    ),
  )
    .requiredOption('--param <key-and-values...>', 'the config key and its comma-separated values')
    .option('--force', 'rerun every value, even those finished in an earlier run')
    .action(async (opts: GridCliOptions, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const { param, values } = parseParamOption(opts.param);
      const run = await resolveRun(ctx, opts, 'grid');
      const out = opts.out ? run.out : `${run.out}-${param.replace(/[^A-Za-z0-9._-]+/g, '_')}`;
      ctx.log.info(
        `grid: ${param} in ${values.map(String).join(', ')}, ${run.model} on ${run.spec} (${run.corpus.utterances.length} utterances), results in ${out}`,
      );
      const queued = opts.queue ? await cellsOnQueue(ctx, opts, run) : null;
      const ran = await runGrid({
        config: run.config,
        corpus: run.corpus,
        corpusSpec: run.spec,
        out,
        model: run.model,
        param,
        values,
        folds: opts.fold?.length ? opts.fold : undefined,
        force: opts.force ?? false,
        progress: ctx.progress,
        log: (m) => ctx.log.info(m),
        warn: (m) => ctx.log.warn(m),
        ...queued?.options,
      });
      const r = queued ? queued.finish(ran) : ran;
      ctx.print(`${r.title}\n\n${gridTable(r)}\n\nreport: ${r.files.markdown}`);
      writeJsonResult(opts.json, r);
      await endWithFailures(r);
    });
}
