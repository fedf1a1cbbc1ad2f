/**
 * `lemer ablate`: the rows of the paper's Tables 1-3 that apply to the corpus and its
 * encoders (text with / without history and label embeddings and their inits, speech
 * likewise, score fusion, LE-MER and the fusion variants C1-C4), each a cross-validation in
 * its own folder (finished ones kept), gathered into one table, plot and JSON.
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { ABLATION_ROWS, runAblation, type AblationResult, type AblationTable } from '../../train/ablate.js';
import { contextOf, corpusOptions, jsonOption, table, writeJsonResult, type CliIo } from '../common.js';
import { resolveRun, type TrainCliOptions } from './cv.js';
import { cellsOnQueue, endWithFailures, queueOptions } from './worker.js';

interface AblateCliOptions extends Omit<TrainCliOptions, 'model' | 'fusion'> {
  rows?: string;
  tables?: string;
  force?: boolean;
}

const list = (s: string | undefined) =>
  s === undefined
    ? undefined
    : s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');

export function ablationTable(r: AblationResult): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  return table(
    ['table', 'sys', 'model', 'folds', 'WA %', 'UA %', 'paper UA %'],
    r.rows.map((x) => [
      x.table,
      x.id,
      x.name,
      x.result ? x.result.folds.length : '-',
      x.result ? `${f(x.result.mean.wa)} ± ${f(x.result.std.wa)}` : '-',
      x.result ? `${f(x.result.mean.ua)} ± ${f(x.result.std.ua)}` : '-',
      x.paper ? f(x.paper.ua) : '',
    ]),
  );
}

export function registerAblate(program: Command, io: CliIo): void {
  queueOptions(
    jsonOption(
      corpusOptions(
        program
          .command('ablate')
          .description(
            "the rows of the paper's Tables 1-3 that apply to the corpus and encoders, each cross-validated, in one table (finished rows are kept)",
          ),
      ),
    ),
  )
    .option(
      '--set <key=value>',
      'set any config value for every row (repeatable), e.g. --set train.epochs=5',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--out <dir>', 'results folder (default runs/ablate-<corpus>)')
    .option(
      '--fold <name>',
      'only this fold (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--rows <ids>', `only these rows, comma-separated (${ABLATION_ROWS.map((r) => r.id).join(', ')})`)
    .addOption(new Option('--tables <list>', 'only the rows of these tables, e.g. 1,3'))
    .option('--force', 'rerun every row, even those finished in an earlier run')
    .action(async (opts: AblateCliOptions, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const tables = list(opts.tables)?.map((t) => {
        const n = Number(t);
        if (n !== 1 && n !== 2 && n !== 3) throw new Error(`--tables ${opts.tables}: tables are 1, 2 and 3`);
        return n as AblationTable;
      });
      const run = await resolveRun(ctx, { ...opts, model: undefined as never }, 'ablate');
      const out = opts.out
        ? run.out
        : resolve(`runs/ablate-${run.corpus.name.replace(/[^A-Za-z0-9._-]+/g, '_')}`);
      ctx.log.info(`ablate: ${run.spec} (${run.corpus.utterances.length} utterances), results in ${out}`);
      const queued = opts.queue ? await cellsOnQueue(ctx, opts, run) : null;
      const ran = await runAblation({
        config: run.config,
        corpus: run.corpus,
        corpusSpec: run.spec,
        out,
        rows: list(opts.rows),
        tables,
        folds: opts.fold?.length ? opts.fold : undefined,
        force: opts.force ?? false,
        progress: ctx.progress,
        log: (m) => ctx.log.info(m),
        warn: (m) => ctx.log.warn(m),
        ...queued?.options,
      });
      const r = queued ? queued.finish(ran) : ran;
      const skipped = r.skipped.map((s) => `  ${s.id} (${s.name}): ${s.reason}`).join('\n');
      ctx.print(
        `${r.title}\n\n${ablationTable(r)}${skipped ? `\n\nleft out:\n${skipped}` : ''}\n\nreport: ${r.files.markdown}`,
      );
      writeJsonResult(opts.json, r);
      await endWithFailures(r);
    });
}
