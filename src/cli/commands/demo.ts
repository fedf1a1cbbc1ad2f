/** `lemer demo generate`: makes (or finds) the synthetic demo corpus. */
import type { Command } from 'commander';
import { DEMO_DEFAULT_PER_CLASS, defaultDemoDir, loadDemoCorpus } from '../../data/demo.js';
import type { Progress } from '../../util/progress.js';
import { contextOf, intOption, jsonOption, writeJsonResult, type CliIo } from '../common.js';

interface GenerateOptions {
  dir?: string;
  perClass?: number;
  json?: string;
}

async function generate(cmd: Command, io: CliIo): Promise<void> {
  const ctx = contextOf(cmd, io);
  const opts = cmd.opts<GenerateOptions>();
  const dir = opts.dir ?? defaultDemoDir();
  let bar: Progress | undefined;
  const t0 = performance.now();
  const corpus = await loadDemoCorpus({
    dir,
    perClass: opts.perClass,
    onProgress: (done, total) => {
      bar ??= ctx.progress(total, 'synthesising');
      bar.update(done);
    },
  });
  bar?.stop();
  const generated = bar !== undefined;
  const seconds = (performance.now() - t0) / 1000;
  const perLabel = Object.fromEntries(
    corpus.labels.map((l) => [l, corpus.utterances.filter((u) => u.label === l).length]),
  );
  const speakers = new Set(corpus.utterances.map((u) => u.speaker)).size;
  ctx.print(
    [
      `${generated ? 'generated' : 'already there (reused)'}: ${corpus.name}, ${corpus.utterances.length} utterances ` +
        `(${corpus.labels.map((l) => `${l} ${perLabel[l]}`).join(', ')}), ${speakers} speakers` +
        (generated ? ` in ${seconds.toFixed(1)} s` : ''),
      `folder: ${dir}`,
      `use it with: --corpus demo${opts.dir ? `:${dir}` : ''}`,
    ].join('\n'),
  );
  writeJsonResult(opts.json, {
    dir,
    corpus: corpus.name,
    generated,
    seconds: Number(seconds.toFixed(3)),
    utterances: corpus.utterances.length,
    perLabel,
    speakers,
  });
}

export function registerDemo(program: Command, io: CliIo): void {
  const demo = program
    .command('demo')
    .description('the synthetic demo corpus (eSpeak NG speech; for trying lemer out, not for results)');
  const gen = demo
    .command('generate')
    .description('generate the demo corpus once (reused afterwards), with a progress bar')
    .option('--dir <dir>', 'where to put it (default: $LEMER_CACHE/demo-v1, else ~/.cache/lemer/demo-v1)')
    .option(
      '--per-class <n>',
      `utterances per class (default ${DEMO_DEFAULT_PER_CLASS}; a different number regenerates)`,
      intOption(1),
    );
  jsonOption(gen).action((_opts, cmd: Command) => generate(cmd, io));
}
