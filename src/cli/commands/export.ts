/** `lemer export <run or checkpoint> --out <dir>`: a trained model as a self-contained model folder. */
import { Option, type Command } from 'commander';
import { exportRun } from '../../predict/from-run.js';
import { contextOf, jsonOption, loadCorpusFromOptions, writeJsonResult, type CliIo } from '../common.js';

interface ExportCliOptions {
  out: string;
  fold?: string;
  quantize?: 'int8';
  json?: string;
}

export function registerExport(program: Command, io: CliIo): void {
  jsonOption(
    program
      .command('export')
      .description(
        'write a trained model (a run of lemer train/cv, a fold of it, or a checkpoint; a score-fusion fold becomes one model) as a model folder for lemer predict and Lemer.load',
      )
      .argument('<run>', 'run folder, fold folder, or checkpoint folder (best/, last/)')
      .requiredOption('--out <dir>', 'the model folder to write (replaced atomically)')
      .option('--fold <name>', 'which fold of a cross-validation run (default: the only one)')
      .addOption(
        new Option(
          '--quantize <kind>',
          'also write an int8 weight-quantised graph, scored against fp32 on the fold test part',
        ).choices(['int8']),
      ),
  ).action(async (run: string, _opts, cmd: Command) => {
    const ctx = contextOf(cmd, io);
    const o = cmd.opts<ExportCliOptions>();
    let bar: ReturnType<typeof ctx.progress> | undefined;
    const r = await exportRun(run, o.out, {
      fold: o.fold,
      quantize: o.quantize ?? null,
      loadCorpus: async (cfg) =>
        (
          await loadCorpusFromOptions(
            { ...ctx, config: cfg },
            { corpus: cfg.corpus, labels: cfg.classes.join(',') },
          )
        ).corpus,
      log: (m) => ctx.log.info(m),
      progress: (done, total) => {
        bar ??= ctx.progress(total, 'scoring fp32 and int8');
        bar.update(done);
        if (done === total) {
          bar.stop();
          bar = undefined;
        }
      },
    });
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    ctx.print(
      `wrote ${r.dir}: ${r.manifest.kind} model (${r.manifest.labels.join(', ')}) from ${r.paths.checkpoint}\n` +
        Object.entries(r.files)
          .map(([f, n]) => `  ${f.padEnd(30)} ${mb(n)}`)
          .join('\n'),
    );
    if (r.int8Report) {
      const q = r.int8Report;
      const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
      ctx.print(
        `int8: ${r.int8!.matmuls} MatMuls quantised; on the fold's ${q.testUtterances} test utterances WA ${q.int8.wa.toFixed(2)}% vs fp32 ${q.fp32.wa.toFixed(2)}% ` +
          `(${signed(q.accuracyChange)} points), UA ${q.int8.ua.toFixed(2)}% vs ${q.fp32.ua.toFixed(2)}% (${signed(q.uaChange)} points), ` +
          `same label for ${(100 * q.agreement).toFixed(1)}%; ` +
          `${q.speedup.toFixed(2)}x the speed of fp32 in the graph (${q.fp32.graphSeconds.toFixed(2)} s vs ${q.int8.graphSeconds.toFixed(2)} s), ` +
          `${q.endToEndSpeedup.toFixed(2)}x end to end with decoding and features (${q.fp32.seconds.toFixed(2)} s vs ${q.int8.seconds.toFixed(2)} s)` +
          (q.run ? `; the training run scored WA ${q.run.wa.toFixed(2)}%, UA ${q.run.ua.toFixed(2)}%` : ''),
      );
    }
    writeJsonResult(o.json, {
      dir: r.dir,
      paths: r.paths,
      manifest: r.manifest,
      files: r.files,
      int8: r.int8Report ?? null,
    });
  });
}
