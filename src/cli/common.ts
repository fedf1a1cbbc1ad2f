/** What every command shares: I/O, global options, config, logger, result files. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { LemerConfig } from '../config/schema.js';
import { checkCorpusAudio } from '../data/audio-check.js';
import { loadCorpus, parseCorpusSpec, parseLabelMap } from '../data/corpus.js';
import { defaultDemoDir, loadDemoCorpus } from '../data/demo.js';
import type { Corpus } from '../data/types.js';
import { writeFileAtomic } from '../util/fs.js';
import { createLogger, type Logger } from '../util/log.js';
import { createProgress, type Progress } from '../util/progress.js';

export interface Writable {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

/** Where a command writes: results to stdout, everything else (logs, progress) to stderr. */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
}

export interface GlobalOptions {
  config?: string;
  logLevel?: string;
}

export interface CommandContext {
  io: CliIo;
  log: Logger;
  /** The validated config: defaults, then --config's file. */
  config: LemerConfig;
  /** The --config file, where one was given. */
  configPath?: string;
  progress(total: number, label: string): Progress;
  /** Writes stdout text (adds the final newline). */
  print(text: string): void;
}

/** Builds a command's context from its parsed options (including the program's global ones). */
export function contextOf(cmd: Command, io: CliIo): CommandContext {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const log = createLogger({ level: g.logLevel, stream: io.stderr });
  const config = loadConfig(g.config);
  return {
    io,
    log,
    config,
    configPath: g.config,
    progress: (total, label) => createProgress({ total, label, stream: io.stderr }),
    print: (text) => void io.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

export const CORPUS_FORMS = 'iemocap:<dir> | emodb:<dir> | meld:<dir> | manifest:<file> | demo | demo:<dir>';

/** `--corpus <spec>`: the same option, with the same words, on every command that reads a corpus. */
export function corpusOptions(cmd: Command): Command {
  return cmd
    .option('--corpus <spec>', `corpus to read: ${CORPUS_FORMS} (default: the config's corpus, else demo)`)
    .option(
      '--labels <list>',
      "comma-separated label set, in order (default: the config's classes when --config is given)",
    )
    .addOption(
      new Option('--classes <set>', "built-in corpora: the paper's 4 classes or all").choices(['4', 'all']),
    )
    .option('--split <name>', "MELD: train, dev, test or several joined by '+'")
    .option(
      '--label-map <list>',
      "rename labels and keep only these, e.g. Joyful=hap,Mad=ang,Sad=sad,Neutral=neu (default: the config's labelMap)",
    )
    .addOption(
      new Option(
        '--invalid-utf8 <policy>',
        "invalid UTF-8 in text files: error (naming file and line) or warn (read as U+FFFD, counted) (default: the config's invalidUtf8)",
      ).choices(['error', 'warn']),
    )
    .option(
      '--skip-bad-audio',
      'where audio is decoded up front (training, cross-validation): leave out utterances whose audio does not decode, with a count, instead of failing',
    );
}

export interface CorpusCliOptions {
  corpus?: string;
  labels?: string;
  classes?: '4' | 'all';
  split?: string;
  labelMap?: string;
  invalidUtf8?: 'error' | 'warn';
  skipBadAudio?: boolean;
}

export interface LoadCorpusCliOptions {
  /**
   * Decode every audio file before returning (checkCorpusAudio, with a progress bar): a
   * clear error naming the files that do not decode, or with --skip-bad-audio their
   * utterances left out with a count in corpus.warnings. For commands that read audio.
   */
  checkAudio?: boolean;
}

/** Loads the corpus a command names; warnings go to the log and stay in corpus.warnings. */
export async function loadCorpusFromOptions(
  ctx: CommandContext,
  opts: CorpusCliOptions,
  load: LoadCorpusCliOptions = {},
): Promise<{ spec: string; corpus: Corpus }> {
  const spec = opts.corpus ?? ctx.config.corpus;
  let labels: string[] | undefined;
  if (opts.labels !== undefined) {
    labels = opts.labels
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (labels.length === 0)
      throw new Error('--labels: give at least one label, e.g. --labels ang,hap,sad,neu');
  } else if (ctx.configPath !== undefined) {
    labels = ctx.config.classes;
  }
  ctx.log.debug({ spec, labels }, 'reading corpus');
  const parsed = parseCorpusSpec(spec);
  if (parsed.kind === 'demo') await ensureDemo(ctx, parsed.path);
  const labelMap =
    opts.labelMap !== undefined ? parseLabelMap(opts.labelMap) : (ctx.config.labelMap ?? undefined);
  let corpus = await loadCorpus(spec, {
    labels,
    classes: opts.classes,
    split: opts.split,
    labelMap,
    invalidUtf8: opts.invalidUtf8 ?? ctx.config.invalidUtf8,
    onWarning: (m) => ctx.log.warn(m),
  });
  if (load.checkAudio) {
    const n = corpus.utterances.filter((u) => u.audioPath !== null).length;
    if (n > 0) {
      const bar = ctx.progress(n, 'checking audio');
      let report;
      try {
        ({ corpus, report } = await checkCorpusAudio(corpus, {
          onError: opts.skipBadAudio ? 'skip' : 'fail',
          onProgress: (done) => bar.update(done),
        }));
      } finally {
        bar.stop();
      }
      for (const w of report.warnings) ctx.log.warn(w);
      if (report.failed.length > 0) ctx.log.warn(corpus.warnings[corpus.warnings.length - 1]!);
    }
  }
  return { spec, corpus };
}

/** The first use of the demo corpus generates it: show that with a progress bar, not a silent wait. */
export async function ensureDemo(ctx: CommandContext, dir?: string): Promise<void> {
  let bar: Progress | undefined;
  await loadDemoCorpus({
    dir,
    onProgress: (done, total) => {
      if (!bar) {
        ctx.log.info(`generating the synthetic demo corpus once, in ${dir ?? defaultDemoDir()}`);
        bar = ctx.progress(total, 'synthesising');
      }
      bar.update(done);
    },
  });
  bar?.stop();
}

/** `--json <file>`: results, machine-readable, on every command that produces results. */
export function jsonOption(cmd: Command): Command {
  return cmd.option('--json <file>', 'also write the results to this file as JSON (written atomically)');
}

/** Writes a result file atomically (readers never see half a file). */
export function writeJsonResult(path: string | undefined, data: unknown): void {
  if (path === undefined) return;
  writeFileAtomic(path, JSON.stringify(data, null, 2) + '\n');
}

/** Parses a whole-number option value; commander's message names the option. */
export function intOption(min = 0): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`expected a whole number >= ${min}.`);
    return n;
  };
}

/** Left-aligned first column, right-aligned numbers, two spaces apart. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatSeconds(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s - 3600 * h - 60 * m;
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${sec.toFixed(0).padStart(2, '0')}s`
      : `${sec.toFixed(1)}s`;
}
