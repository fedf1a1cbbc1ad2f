/**
 * Emotion-recognition metrics as the paper reports them: WA (weighted accuracy = overall
 * accuracy) and UA (unweighted accuracy = mean of per-class recalls), per fold, their
 * mean and spread over folds, and pooled over all folds' predictions.
 */

/** counts[t][p]: how many utterances of true class t were predicted as class p. */
export type Confusion = number[][];

export interface Scores {
  /** Overall accuracy: trace / total. NaN when there are no predictions. */
  wa: number;
  /**
   * Mean recall over the classes with support > 0 (a class absent from the test data
   * has no recall and is left out rather than counted as 0). NaN when there are none.
   */
  ua: number;
  /** Recall of each class; NaN for a class with no support. */
  perClassRecall: Record<string, number>;
  /** Number of true utterances of each class. */
  support: Record<string, number>;
  confusion: Confusion;
}

export function confusionMatrix(yTrue: number[], yPred: number[], numClasses: number): Confusion {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`confusionMatrix: numClasses must be a positive integer, got ${numClasses}`);
  }
  if (yTrue.length !== yPred.length) {
    throw new Error(`confusionMatrix: ${yTrue.length} true labels but ${yPred.length} predictions`);
  }
  const m: Confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i];
    const p = yPred[i];
    for (const [what, v] of [
      ['true label', t],
      ['prediction', p],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v >= numClasses) {
        throw new Error(
          `confusionMatrix: ${what} ${v} at index ${i} is not a class index in [0, ${numClasses})`,
        );
      }
    }
    m[t][p]++;
  }
  return m;
}

export function scores(confusion: Confusion, labels: string[]): Scores {
  const c = labels.length;
  if (confusion.length !== c || confusion.some((row) => row.length !== c)) {
    throw new Error(`scores: the confusion matrix is not ${c} x ${c} (labels: ${labels.join(', ')})`);
  }
  if (new Set(labels).size !== c) throw new Error(`scores: repeated label in ${labels.join(', ')}`);
  let total = 0;
  let correct = 0;
  let recallSum = 0;
  let present = 0;
  const perClassRecall: Record<string, number> = {};
  const support: Record<string, number> = {};
  labels.forEach((label, t) => {
    const n = confusion[t].reduce((s, x) => s + x, 0);
    support[label] = n;
    total += n;
    correct += confusion[t][t];
    perClassRecall[label] = n > 0 ? confusion[t][t] / n : NaN;
    if (n > 0) {
      recallSum += confusion[t][t] / n;
      present++;
    }
  });
  return {
    wa: total > 0 ? correct / total : NaN,
    ua: present > 0 ? recallSum / present : NaN,
    perClassRecall,
    support,
    confusion: confusion.map((row) => [...row]),
  };
}

export interface FoldInput {
  name: string;
  yTrue: number[];
  yPred: number[];
}

export interface FoldScores {
  name: string;
  wa: number;
  ua: number;
  perClassRecall: Record<string, number>;
  n: number;
  confusion: Confusion;
}

export interface Summary {
  labels: string[];
  folds: FoldScores[];
  /** Unweighted mean over folds (each fold counts once, whatever its size). */
  mean: { wa: number; ua: number };
  /** Population standard deviation over folds (ddof = 0, as numpy's std). */
  std: { wa: number; ua: number };
  /** All folds' predictions taken together. */
  pooled: { wa: number; ua: number; confusion: Confusion; perClassRecall: Record<string, number>; n: number };
}

export function summarizeFolds(folds: FoldInput[], labels: string[]): Summary {
  if (folds.length === 0) throw new Error('summarizeFolds: no folds');
  const names = new Set<string>();
  const c = labels.length;
  const pooled: Confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  const out: FoldScores[] = folds.map((f) => {
    if (names.has(f.name)) throw new Error(`summarizeFolds: fold name '${f.name}' repeats`);
    names.add(f.name);
    if (f.yTrue.length === 0) throw new Error(`summarizeFolds: fold '${f.name}' has no predictions`);
    let cm: Confusion;
    try {
      cm = confusionMatrix(f.yTrue, f.yPred, c);
    } catch (err) {
      throw new Error(`summarizeFolds: fold '${f.name}': ${(err as Error).message}`);
    }
    cm.forEach((row, t) => row.forEach((x, p) => (pooled[t][p] += x)));
    const s = scores(cm, labels);
    return {
      name: f.name,
      wa: s.wa,
      ua: s.ua,
      perClassRecall: s.perClassRecall,
      n: f.yTrue.length,
      confusion: cm,
    };
  });
  const ps = scores(pooled, labels);
  return {
    labels: [...labels],
    folds: out,
    mean: { wa: mean(out.map((f) => f.wa)), ua: mean(out.map((f) => f.ua)) },
    std: { wa: std(out.map((f) => f.wa)), ua: std(out.map((f) => f.ua)) },
    pooled: {
      wa: ps.wa,
      ua: ps.ua,
      confusion: ps.confusion,
      perClassRecall: ps.perClassRecall,
      n: out.reduce((s, f) => s + f.n, 0),
    },
  };
}

function mean(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

function std(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length);
}
