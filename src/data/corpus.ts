import { readEmodb } from './emodb.js';
import { readIemocap } from './iemocap.js';
import { readManifest } from './manifest.js';
import { parseMeldSplits, readMeld } from './meld.js';
import type { Corpus } from './types.js';

export type CorpusKind = 'iemocap' | 'emodb' | 'meld' | 'manifest' | 'demo';

export interface CorpusSpec {
  kind: CorpusKind;
  /** Release folder (iemocap, emodb, meld), manifest file, or the demo corpus' folder (optional). */
  path?: string;
}

const FORMS = [
  'iemocap:<dir>',
  'emodb:<dir>',
  'meld:<dir>',
  'manifest:<file.jsonl|file.csv>',
  'demo',
  'demo:<dir>',
];

/** Parses a corpus spec such as `iemocap:/data/IEMOCAP_full_release` or `demo`. */
export function parseCorpusSpec(spec: string): CorpusSpec {
  const s = spec.trim();
  if (s === 'demo') return { kind: 'demo' };
  const colon = s.indexOf(':');
  const kind = colon < 0 ? s : s.slice(0, colon);
  const path = colon < 0 ? '' : s.slice(colon + 1);
  const kinds: CorpusKind[] = ['iemocap', 'emodb', 'meld', 'manifest', 'demo'];
  if (!(kinds as string[]).includes(kind) || colon < 0 || path === '') {
    const hint =
      colon < 0 && (kinds as string[]).includes(kind) ? ` ("${kind}" needs a path after the colon)` : '';
    throw new Error(`invalid corpus "${spec}"${hint}; accepted forms: ${FORMS.join(', ')}`);
  }
  return { kind: kind as CorpusKind, path };
}

export interface LoadCorpusOptions {
  /**
   * The label set, in order. For a manifest, a row with another label is an error. For the
   * built-in corpora, utterances are restricted to these labels (each must exist in the corpus).
   */
  labels?: string[];
  /** '4' (ang/hap/sad/neu, the default) or 'all' the corpus' classes (iemocap, emodb, meld). */
  classes?: '4' | 'all';
  /** MELD split(s): 'train' (default), 'dev', 'test', or several joined by '+' ('train+dev'). */
  split?: string;
  /** Called with each of the corpus' warnings once it is read. */
  onWarning?: (msg: string) => void;
  /** IEMOCAP: go on without missing Session folders (with a warning). */
  allowMissingSessions?: boolean;
  /** IEMOCAP: skip (with a counted warning) labelled turns whose wav is missing, instead of an error. */
  skipMissingAudio?: boolean;
  /** IEMOCAP: skip (with a counted warning) labelled turns with no transcript, instead of an error. */
  skipMissingTranscripts?: boolean;
}

/** Reads any corpus the project knows, by spec string or parsed spec. */
export async function loadCorpus(spec: string | CorpusSpec, opts: LoadCorpusOptions = {}): Promise<Corpus> {
  const s = typeof spec === 'string' ? parseCorpusSpec(spec) : spec;
  const classes = opts.classes ?? '4';
  const needPath = (): string => {
    if (!s.path) throw new Error(`corpus "${s.kind}" needs a path (accepted forms: ${FORMS.join(', ')})`);
    return s.path;
  };
  let corpus: Corpus;
  const early: string[] = [];
  if (opts.split !== undefined && s.kind !== 'meld')
    early.push(`split "${opts.split}" ignored: only MELD has splits`);
  switch (s.kind) {
    case 'iemocap':
      corpus = await readIemocap(needPath(), {
        classes,
        allowMissingSessions: opts.allowMissingSessions,
        onMissingAudio: opts.skipMissingAudio ? 'skip' : 'error',
        onMissingTranscript: opts.skipMissingTranscripts ? 'skip' : 'error',
      });
      break;
    case 'emodb':
      corpus = await readEmodb(needPath(), { classes });
      break;
    case 'meld':
      corpus = await readMeld(needPath(), { split: parseMeldSplits(opts.split ?? 'train'), classes });
      break;
    case 'manifest':
      return report(await readManifest(needPath(), { labels: opts.labels }), early, opts.onWarning);
    case 'demo': {
      // Loaded lazily: the synthetic corpus generator is only needed for `demo`.
      const { loadDemoCorpus } = await import('./demo.js');
      corpus = await loadDemoCorpus(s.path ? { dir: s.path } : {});
      break;
    }
    default:
      throw new Error(
        `unknown corpus kind "${(s as { kind: string }).kind}"; accepted forms: ${FORMS.join(', ')}`,
      );
  }
  if (opts.labels) corpus = restrictLabels(corpus, opts.labels);
  return report(corpus, early, opts.onWarning);
}

function report(corpus: Corpus, early: string[], onWarning?: (msg: string) => void): Corpus {
  corpus.warnings.unshift(...early);
  if (onWarning) for (const w of corpus.warnings) onWarning(w);
  return corpus;
}

/**
 * Keeps only the utterances whose label is in `labels`, with `labels` as the label set (in that
 * order). A label the corpus does not have is an error: it would be a class with no examples.
 */
export function restrictLabels(corpus: Corpus, labels: string[]): Corpus {
  const missing = labels.filter((l) => !corpus.labels.includes(l));
  if (missing.length > 0) {
    throw new Error(
      `corpus ${corpus.name} has no label(s) ${missing.join(', ')} (its labels: ${corpus.labels.join(', ')})`,
    );
  }
  const keep = new Set(labels);
  const utterances = corpus.utterances.filter((u) => keep.has(u.label));
  const warnings = [...corpus.warnings];
  const dropped = corpus.utterances.length - utterances.length;
  if (dropped > 0)
    warnings.push(`${dropped} utterance(s) with labels outside [${labels.join(', ')}] left out`);
  return { ...corpus, labels: [...labels], utterances, warnings };
}
