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
        'write a trained model (a run of lemer train/cv, a fold of it, or a checkpoint) as a model folder for lemer predict and Lemer.load',
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
      ctx.print(
        `int8: ${r.int8!.matmuls} MatMuls quantised; on the fold's ${q.testUtterances} test utterances WA ${q.int8.wa.toFixed(2)}% vs fp32 ${q.fp32.wa.toFixed(2)}% ` +
          `(${q.accuracyChange >= 0 ? '+' : ''}${q.accuracyChange.toFixed(2)} points, same label for ${(100 * q.agreement).toFixed(1)}%), ` +
          `${q.speedup.toFixed(2)}x the speed of fp32 (${q.fp32.seconds.toFixed(2)} s vs ${q.int8.seconds.toFixed(2)} s)`,
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
