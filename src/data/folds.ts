import type { Corpus, Utterance } from './types.js';
import { mulberry32 } from '../util/random.js';

/** One cross-validation fold: indices into corpus.utterances, each list ascending. */
export interface Fold {
  name: string;
  train: number[];
  test: number[];
  valid?: number[];
}

export type GroupKey = 'session' | 'speaker';
export type SplitName = 'train' | 'valid' | 'test';

/**
 * How to carve a validation set out of a fold's training part: whole speakers (or sessions),
 * so validation speakers are unseen in training as test speakers are; or a random fraction of
 * the training utterances. Both seeded, so a run is reproducible.
 */
export type ValidationSpec =
  { by: GroupKey; count?: number; seed?: number } | { fraction: number; seed?: number };

const natural = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

const rng = mulberry32;

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

function shuffle<T>(xs: T[], rand: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * Leave-one-group-out: one fold per distinct value of `key` (IEMOCAP: 5 sessions; EmoDB: 10
 * speakers), in natural order, named by the held-out group. Optionally carves a validation set.
 */
export function leaveOneGroupOut(
  utts: Utterance[],
  key: GroupKey,
  opts: { validation?: ValidationSpec } = {},
): Fold[] {
  const groups = [...new Set(utts.map((u) => u[key]))].sort(natural);
  if (groups.length < 2) {
    throw new Error(
      `leave-one-${key}-out needs at least two ${key}s, got ${groups.length}${groups.length ? ` (${groups[0]})` : ''}`,
    );
  }
  return groups.map((g) => {
    const fold: Fold = { name: g, train: [], test: [] };
    utts.forEach((u, i) => (u[key] === g ? fold.test : fold.train).push(i));
    return opts.validation ? carveValidation(utts, fold, opts.validation) : fold;
  });
}

/**
 * One fold from a fixed assignment (a manifest's split column, MELD's train/dev/test). If
 * `assign` gives no 'valid' utterances and `validation` is set, one is carved from train.
 */
export function fixedSplit(
  utts: Utterance[],
  assign: (u: Utterance, index: number) => SplitName,
  opts: { name?: string; validation?: ValidationSpec } = {},
): Fold {
  const parts: Record<SplitName, number[]> = { train: [], valid: [], test: [] };
  utts.forEach((u, i) => {
    const s = assign(u, i);
    if (!(s in parts))
      throw new Error(
        `fixedSplit: utterance ${u.id} assigned to "${String(s)}" (expected train, valid or test)`,
      );
    parts[s].push(i);
  });
  if (parts.train.length === 0) throw new Error('fixedSplit: no utterance is assigned to train');
  if (parts.test.length === 0) throw new Error('fixedSplit: no utterance is assigned to test');
  const fold: Fold = { name: opts.name ?? 'fixed', train: parts.train, test: parts.test };
  if (parts.valid.length > 0) fold.valid = parts.valid;
  else if (opts.validation) return carveValidation(utts, fold, opts.validation);
  return fold;
}

/** Moves part of `fold.train` to `fold.valid` (see ValidationSpec). Returns a new fold. */
export function carveValidation(utts: Utterance[], fold: Fold, spec: ValidationSpec): Fold {
  const rand = rng((spec.seed ?? 0) ^ hash(fold.name));
  const pick = new Set<number>();
  if ('by' in spec) {
    const key = spec.by;
    const groups = [...new Set(fold.train.map((i) => utts[i][key]))].sort(natural);
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count >= groups.length) {
      throw new Error(
        `fold ${fold.name}: cannot hold out ${count} ${key}(s) for validation from ${groups.length} training ${key}(s)`,
      );
    }
    const chosen = new Set(shuffle(groups, rand).slice(0, count));
    for (const i of fold.train) if (chosen.has(utts[i][key])) pick.add(i);
  } else {
    const f = spec.fraction;
    if (!(f > 0 && f < 1))
      throw new Error(`validation fraction must be between 0 and 1 (exclusive), got ${f}`);
    const n = Math.min(fold.train.length - 1, Math.max(1, Math.round(f * fold.train.length)));
    for (const i of shuffle(fold.train, rand).slice(0, n)) pick.add(i);
  }
  return {
    name: fold.name,
    train: fold.train.filter((i) => !pick.has(i)),
    test: [...fold.test],
    valid: [...(fold.valid ?? []), ...pick].sort((a, b) => a - b),
  };
}

/**
 * Maps a split-like session name (a manifest's fold column, MELD's split) to a split, or
 * undefined for other names: train/training, valid/validation/val/dev, test/eval.
 */
export function splitOfSession(session: string): SplitName | undefined {
  const s = session.trim().toLowerCase();
  if (s === 'train' || s === 'training') return 'train';
  if (s === 'valid' || s === 'validation' || s === 'val' || s === 'dev') return 'valid';
  if (s === 'test' || s === 'eval' || s === 'evaluation') return 'test';
  return undefined;
}

/**
 * The corpus' usual protocol: when every session is a split name (MELD, a manifest with a
 * train/valid/test fold column), one fixed split, where a corpus with no 'test' part (MELD's
 * train+dev here) tests on its validation part; otherwise leave-one-session-out (IEMOCAP:
 * sessions; EmoDB: session = speaker).
 */
export function defaultFolds(corpus: Corpus, opts: { validation?: ValidationSpec } = {}): Fold[] {
  const utts = corpus.utterances;
  const splits = utts.map((u) => splitOfSession(u.session));
  if (utts.length > 0 && splits.every((s) => s !== undefined)) {
    const hasTest = splits.includes('test');
    return [
      fixedSplit(utts, (_u, i) => (!hasTest && splits[i] === 'valid' ? 'test' : splits[i]!), {
        name: 'fixed',
        validation: opts.validation,
      }),
    ];
  }
  return leaveOneGroupOut(utts, 'session', opts);
}

/**
 * Checks the properties every set of cross-validation folds must have, and throws naming the
 * first broken one: indices in range, no utterance in two test sets, test sets covering every
 * utterance (when `complete`), train/valid/test disjoint in each fold, and, given `key`, no
 * group in both the training and the test part of a fold.
 */
export function checkFolds(
  utts: Utterance[],
  folds: Fold[],
  opts: { key?: GroupKey; complete?: boolean } = {},
): void {
  const tested = new Map<number, string>();
  for (const f of folds) {
    const parts = { train: f.train, test: f.test, valid: f.valid ?? [] };
    const where = new Map<number, string>();
    for (const [name, idx] of Object.entries(parts)) {
      for (const i of idx) {
        if (!Number.isInteger(i) || i < 0 || i >= utts.length)
          throw new Error(`fold ${f.name}: ${name} index ${i} out of range`);
        const other = where.get(i);
        if (other) throw new Error(`fold ${f.name}: utterance ${utts[i].id} is in both ${other} and ${name}`);
        where.set(i, name);
      }
    }
    for (const i of f.test) {
      const other = tested.get(i);
      if (other !== undefined)
        throw new Error(`utterance ${utts[i].id} is in the test sets of folds ${other} and ${f.name}`);
      tested.set(i, f.name);
    }
    if (opts.key) {
      const key = opts.key;
      const trainGroups = new Set(f.train.map((i) => utts[i][key]));
      for (const i of f.test) {
        if (trainGroups.has(utts[i][key]))
          throw new Error(`fold ${f.name}: ${key} ${utts[i][key]} is in both train and test`);
      }
    }
  }
  if (opts.complete !== false && tested.size !== utts.length) {
    const missing = utts.findIndex((_u, i) => !tested.has(i));
    throw new Error(`${utts.length - tested.size} utterance(s) in no test set (first: ${utts[missing].id})`);
  }
}
