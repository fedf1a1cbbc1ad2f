/** `lemer corpus info` and `lemer corpus folds`: what a corpus holds, and how it splits. */
import { Option, type Command } from 'commander';
import { checkCorpusAudio, type AudioFailure } from '../../data/audio-check.js';
import { checkFolds, leaveOneGroupOut, type GroupKey } from '../../data/folds.js';
import type { Corpus, Utterance } from '../../data/types.js';
import {
  contextOf,
  corpusOptions,
  formatSeconds,
  jsonOption,
  loadCorpusFromOptions,
  table,
  writeJsonResult,
  type CliIo,
  type CommandContext,
  type CorpusCliOptions,
} from '../common.js';

type Counts = Record<string, number>;

const natural = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

function countBy(utts: Utterance[], key: (u: Utterance) => string): Map<string, Utterance[]> {
  const m = new Map<string, Utterance[]>();
  for (const u of utts) {
    const k = key(u);
    const list = m.get(k);
    if (list) list.push(u);
    else m.set(k, [u]);
  }
  return new Map([...m.entries()].sort(([a], [b]) => natural(a, b)));
}

function labelCounts(labels: string[], utts: Utterance[]): Counts {
  const c: Counts = Object.fromEntries(labels.map((l) => [l, 0]));
  for (const u of utts) c[u.label] = (c[u.label] ?? 0) + 1;
  return c;
}

function groupSummary(
  labels: string[],
  groups: Map<string, Utterance[]>,
): Record<string, { total: number; labels: Counts }> {
  return Object.fromEntries(
    [...groups].map(([g, us]) => [g, { total: us.length, labels: labelCounts(labels, us) }]),
  );
}

/** Decodes every audio file (checkCorpusAudio, a few at a time) to sum durations; unreadable files are listed. */
async function measureDurations(
  ctx: CommandContext,
  corpus: Corpus,
): Promise<{ seconds: Map<string, number>; failed: AudioFailure[]; warnings: string[] }> {
  const n = corpus.utterances.filter((u) => u.audioPath !== null).length;
  const bar = ctx.progress(n, 'durations');
  try {
    const { report } = await checkCorpusAudio(corpus, { onError: 'skip', onProgress: (d) => bar.update(d) });
    const warnings = [...report.warnings];
    if (report.failed.length > 0)
      warnings.push(
        `${report.failed.length} audio file(s) could not be read and are not in the durations ` +
          `(all of them in --json under durations.unreadable; first: ${report.failed[0]!.error})`,
      );
    return { seconds: report.seconds, failed: report.failed, warnings };
  } finally {
    bar.stop();
  }
}

export interface CorpusInfo {
  corpus: string;
  spec: string;
  labels: string[];
  utterances: number;
  withAudio: number;
  textOnly: number;
  perLabel: Counts;
  sessions: Record<string, { total: number; labels: Counts }>;
  speakers: Record<string, { total: number; labels: Counts }>;
  dialogues: { count: number; minTurns: number; meanTurns: number; maxTurns: number };
  durations?: {
    totalSeconds: number;
    meanSeconds: number;
    perLabelSeconds: Record<string, number>;
    measured: number;
    /** Files that do not decode, with the decoder's message. */
    unreadable: AudioFailure[];
  };
  /** Where a label map was applied: the map and the utterances it left out, per original label. */
  labelMap?: { map: Record<string, string>; dropped: Record<string, number> };
  warnings: string[];
}

export function summariseCorpus(spec: string, corpus: Corpus): CorpusInfo {
  const utts = corpus.utterances;
  const dialogues = countBy(utts, (u) => u.dialogue);
  const sizes = [...dialogues.values()].map((d) => d.length);
  const withAudio = utts.filter((u) => u.audioPath !== null).length;
  return {
    corpus: corpus.name,
    spec,
    labels: corpus.labels,
    utterances: utts.length,
    withAudio,
    textOnly: utts.length - withAudio,
    perLabel: labelCounts(corpus.labels, utts),
    sessions: groupSummary(
      corpus.labels,
      countBy(utts, (u) => u.session),
    ),
    speakers: groupSummary(
      corpus.labels,
      countBy(utts, (u) => u.speaker),
    ),
    dialogues: {
      count: dialogues.size,
      minTurns: sizes.length ? Math.min(...sizes) : 0,
      meanTurns: sizes.length ? Number((utts.length / sizes.length).toFixed(2)) : 0,
      maxTurns: sizes.length ? Math.max(...sizes) : 0,
    },
    ...(corpus.labelMap ? { labelMap: corpus.labelMap } : {}),
    warnings: [...corpus.warnings],
  };
}

function groupTable(
  name: string,
  labels: string[],
  groups: Record<string, { total: number; labels: Counts }>,
  limit = 40,
): string {
  // Sorted again here: object keys that look like integers ('10') lose their order ('03').
  const entries = Object.entries(groups).sort(([a], [b]) => natural(a, b));
  const rows = entries.slice(0, limit).map(([g, s]) => [g, s.total, ...labels.map((l) => s.labels[l] ?? 0)]);
  const more =
    entries.length > limit ? `\n  ... and ${entries.length - limit} more (all of them in --json)` : '';
  const body = table([name, 'total', ...labels], rows)
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `${body}${more}`;
}

function renderInfo(info: CorpusInfo): string {
  const lines = [
    `corpus: ${info.corpus} (${info.spec})`,
    `utterances: ${info.utterances} (${info.withAudio} with audio, ${info.textOnly} text only)`,
    `labels: ${info.labels.map((l) => `${l} ${info.perLabel[l] ?? 0}`).join(', ')}`,
    '',
    `sessions: ${Object.keys(info.sessions).length}`,
    groupTable('session', info.labels, info.sessions),
    '',
    `speakers: ${Object.keys(info.speakers).length}`,
    groupTable('speaker', info.labels, info.speakers),
    '',
    `dialogues: ${info.dialogues.count} (utterances per dialogue: min ${info.dialogues.minTurns}, mean ${info.dialogues.meanTurns}, max ${info.dialogues.maxTurns})`,
  ];
  if (info.labelMap) {
    const m = Object.entries(info.labelMap.map).map(([from, to]) => `${from}=${to}`);
    const d = Object.entries(info.labelMap.dropped).sort(([x], [y]) => natural(x, y));
    const total = d.reduce((s, [, n]) => s + n, 0);
    lines.splice(
      3,
      0,
      `label map: ${m.join(', ')}`,
      `dropped by the label map: ${total}${d.length ? ` (${d.map(([l, n]) => `${l} ${n}`).join(', ')})` : ''}`,
    );
  }
  if (info.durations) {
    const d = info.durations;
    lines.push(
      `audio: ${formatSeconds(d.totalSeconds)} in ${d.measured} files (mean ${d.meanSeconds.toFixed(2)} s; ` +
        info.labels.map((l) => `${l} ${formatSeconds(d.perLabelSeconds[l] ?? 0)}`).join(', ') +
        ')',
    );
  }
  lines.push('', info.warnings.length ? `warnings (${info.warnings.length}):` : 'warnings: none');
  for (const w of info.warnings) lines.push(`  - ${w}`);
  return lines.join('\n');
}

interface InfoOptions extends CorpusCliOptions {
  durations?: boolean;
  json?: string;
}

async function info(cmd: Command, io: CliIo): Promise<void> {
  const ctx = contextOf(cmd, io);
  const opts = cmd.opts<InfoOptions>();
  const { spec, corpus } = await loadCorpusFromOptions(ctx, opts);
  const result = summariseCorpus(spec, corpus);
  if (opts.durations) {
    const { seconds, failed, warnings } = await measureDurations(ctx, corpus);
    const perLabelSeconds: Record<string, number> = Object.fromEntries(corpus.labels.map((l) => [l, 0]));
    let total = 0;
    for (const u of corpus.utterances) {
      const s = seconds.get(u.id);
      if (s === undefined) continue;
      total += s;
      perLabelSeconds[u.label] = (perLabelSeconds[u.label] ?? 0) + s;
    }
    result.durations = {
      totalSeconds: Number(total.toFixed(3)),
      meanSeconds: seconds.size ? Number((total / seconds.size).toFixed(3)) : 0,
      perLabelSeconds: Object.fromEntries(
        Object.entries(perLabelSeconds).map(([l, s]) => [l, Number(s.toFixed(3))]),
      ),
      measured: seconds.size,
      unreadable: failed,
    };
    for (const w of warnings) ctx.log.warn(w);
    result.warnings.push(...warnings);
  }
  ctx.print(renderInfo(result));
  writeJsonResult(opts.json, result);
}

export interface FoldSummary {
  name: string;
  train: number;
  test: number;
  testGroups: string[];
  trainLabels: Counts;
  testLabels: Counts;
}

interface FoldsOptions extends CorpusCliOptions {
  protocol?: GroupKey;
  json?: string;
}

async function folds(cmd: Command, io: CliIo): Promise<void> {
  const ctx = contextOf(cmd, io);
  const opts = cmd.opts<FoldsOptions>();
  const key: GroupKey = opts.protocol ?? ctx.config.protocol;
  const { spec, corpus } = await loadCorpusFromOptions(ctx, opts);
  const utts = corpus.utterances;
  const fs = leaveOneGroupOut(utts, key);
  // Throws, naming the first broken property, if any fold leaks.
  checkFolds(utts, fs, { key, complete: true });
  // The proof in numbers, computed here independently of checkFolds.
  const testedTimes = new Array<number>(utts.length).fill(0);
  let overlap = 0;
  let groupLeaks = 0;
  for (const f of fs) {
    for (const i of f.test) testedTimes[i]++;
    const train = new Set(f.train);
    overlap += f.test.filter((i) => train.has(i)).length;
    const trainGroups = new Set(f.train.map((i) => utts[i][key]));
    groupLeaks += new Set(f.test.map((i) => utts[i][key]).filter((g) => trainGroups.has(g))).size;
  }
  const summaries: FoldSummary[] = fs.map((f) => ({
    name: f.name,
    train: f.train.length,
    test: f.test.length,
    testGroups: [...new Set(f.test.map((i) => utts[i][key]))],
    trainLabels: labelCounts(
      corpus.labels,
      f.train.map((i) => utts[i]),
    ),
    testLabels: labelCounts(
      corpus.labels,
      f.test.map((i) => utts[i]),
    ),
  }));
  const checks = {
    utterances: utts.length,
    testedExactlyOnce: testedTimes.filter((t) => t === 1).length,
    trainTestOverlap: overlap,
    [`${key}sInTrainAndTest`]: groupLeaks,
    ok: overlap === 0 && groupLeaks === 0 && testedTimes.every((t) => t === 1),
  };
  const result = {
    corpus: corpus.name,
    spec,
    protocol: `leave-one-${key}-out`,
    labels: corpus.labels,
    folds: summaries,
    checks,
    warnings: corpus.warnings,
  };
  const rows = summaries.map((s) => [
    s.name,
    s.train,
    s.test,
    ...corpus.labels.map((l) => s.testLabels[l] ?? 0),
  ]);
  ctx.print(
    [
      `corpus: ${corpus.name} (${spec}), ${utts.length} utterances`,
      `protocol: leave-one-${key}-out, ${fs.length} folds`,
      '',
      table(['fold', 'train', 'test', ...corpus.labels.map((l) => `test ${l}`)], rows),
      '',
      `checks: ${checks.testedExactlyOnce}/${utts.length} utterances in exactly one test set; ` +
        `${overlap} in both train and test of a fold; ${groupLeaks} ${key}(s) in both train and test of a fold: ` +
        (checks.ok ? 'disjoint' : 'NOT DISJOINT'),
    ].join('\n'),
  );
  writeJsonResult(opts.json, result);
  if (!checks.ok) throw new Error('the folds are not disjoint (see the checks above)');
}

export function registerCorpus(program: Command, io: CliIo): void {
  const corpus = program
    .command('corpus')
    .description('inspect a corpus: counts, durations, cross-validation folds');

  const infoCmd = corpusOptions(
    corpus
      .command('info')
      .description(
        'counts per label, session and speaker, dialogues, warnings (and total audio duration with --durations)',
      ),
  ).option(
    '--durations',
    'decode every audio file to sum durations (reads all the audio: slow on big corpora)',
  );
  jsonOption(infoCmd).action((_opts, cmd: Command) => info(cmd, io));

  const foldsCmd = corpusOptions(
    corpus
      .command('folds')
      .description(
        'leave-one-group-out folds: sizes per fold and a check that train and test never share an utterance or group',
      ),
  ).addOption(
    new Option(
      '--protocol <key>',
      "group to hold out: session (the paper's protocol) or speaker (default: the config's protocol)",
    ).choices(['session', 'speaker']),
  );
  jsonOption(foldsCmd).action((_opts, cmd: Command) => folds(cmd, io));
}
