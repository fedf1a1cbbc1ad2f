import { readEmodb } from './emodb.js';
import { readIemocap } from './iemocap.js';
import { readManifest } from './manifest.js';
import { parseMeldSplits, readMeld } from './meld.js';
import type { Corpus } from './types.js';
import type { InvalidUtf8Policy } from './utf8.js';

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
  /**
   * '4' (ang/hap/sad/neu) or 'all' the corpus' classes (iemocap, emodb, meld). Default '4',
   * or 'all' with a label map (the map then chooses the classes).
   */
  classes?: '4' | 'all';
  /**
   * Renames labels and keeps only the mapped ones (`{ Joyful: 'hap', Mad: 'ang' }`); the
   * utterances left out are counted per label in `corpus.labelMap.dropped`. Keys are the
   * corpus' own labels (a manifest's as written; the built-in readers' codes). The label set
   * is `labels` when given (every target must be in it), else the targets in map order.
   */
  labelMap?: Record<string, string>;
  /** Invalid UTF-8 in text files: 'error' (default, naming file and line) or 'warn' (U+FFFD, counted). */
  invalidUtf8?: InvalidUtf8Policy;
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
  const mapped = opts.labelMap !== undefined && Object.keys(opts.labelMap).length > 0;
  const classes = opts.classes ?? (mapped ? 'all' : '4');
  const invalidUtf8 = opts.invalidUtf8;
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
        invalidUtf8,
      });
      break;
    case 'emodb':
      corpus = await readEmodb(needPath(), { classes });
      break;
    case 'meld':
      corpus = await readMeld(needPath(), {
        split: parseMeldSplits(opts.split ?? 'train'),
        classes,
        invalidUtf8,
      });
      break;
    case 'manifest':
      if (mapped) {
        corpus = applyLabelMap(await readManifest(needPath(), { invalidUtf8 }), opts.labelMap!, opts.labels);
        return report(corpus, early, opts.onWarning);
      }
      return report(
        await readManifest(needPath(), { labels: opts.labels, invalidUtf8 }),
        early,
        opts.onWarning,
      );
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
  if (mapped) corpus = applyLabelMap(corpus, opts.labelMap!, opts.labels);
  else if (opts.labels) corpus = restrictLabels(corpus, opts.labels);
  return report(corpus, early, opts.onWarning);
}

/**
 * Parses `--label-map Joyful=hap,Mad=ang,Sad=sad,Neutral=neu`: comma-separated `from=to`
 * pairs; several labels may map to one (`exc=hap,hap=hap`), a label may not appear twice.
 */
export function parseLabelMap(spec: string): Record<string, string> {
  const map: Record<string, string> = {};
  const parts = spec
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) throw new Error(`label map "${spec}" is empty (expected e.g. Joyful=hap,Mad=ang)`);
  for (const p of parts) {
    const eq = p.indexOf('=');
    const from = eq < 0 ? '' : p.slice(0, eq).trim();
    const to = eq < 0 ? '' : p.slice(eq + 1).trim();
    if (from === '' || to === '' || to.includes('='))
      throw new Error(`label map "${spec}": "${p}" is not of the form from=to (e.g. Joyful=hap)`);
    if (Object.hasOwn(map, from)) throw new Error(`label map "${spec}": label "${from}" is mapped twice`);
    map[from] = to;
  }
  return map;
}

/**
 * Renames labels by `map` and keeps only the utterances whose label is a key of it; the rest
 * are counted per label (`corpus.labelMap.dropped`, and one warning). A key the corpus does not
 * have is an error (a typo would silently drop a class), as is a target outside `labels`.
 */
export function applyLabelMap(corpus: Corpus, map: Record<string, string>, labels?: string[]): Corpus {
  const keys = Object.keys(map);
  const missing = keys.filter((k) => !corpus.labels.includes(k));
  if (missing.length > 0) {
    throw new Error(
      `label map: corpus ${corpus.name} has no label(s) ${missing.join(', ')} (its labels: ${corpus.labels.join(', ')})`,
    );
  }
  const targets = [...new Set(keys.map((k) => map[k]!))];
  if (labels) {
    const outside = targets.filter((t) => !labels.includes(t));
    if (outside.length > 0)
      throw new Error(
        `label map: target label(s) ${outside.join(', ')} not in the label set [${labels.join(', ')}]`,
      );
  }
  const dropped: Record<string, number> = {};
  const utterances = [];
  for (const u of corpus.utterances) {
    const to = Object.hasOwn(map, u.label) ? map[u.label] : undefined;
    if (to === undefined) dropped[u.label] = (dropped[u.label] ?? 0) + 1;
    else utterances.push(to === u.label ? u : { ...u, label: to });
  }
  const warnings = [...corpus.warnings];
  const nDropped = corpus.utterances.length - utterances.length;
  if (nDropped > 0) {
    const per = Object.entries(dropped)
      .map(([l, n]) => `${l} ${n}`)
      .join(', ');
    warnings.push(`label map: ${nDropped} utterance(s) with unmapped labels left out (${per})`);
  }
  return {
    ...corpus,
    labels: labels ? [...labels] : targets,
    utterances,
    warnings,
    labelMap: { map: { ...map }, dropped },
  };
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
