/**
 * Class-based TF-IDF keywords (LE-MER sections 2.1 / 2.2): the words of each emotion
 * class that initialise the semantic label embeddings, and, generic over the token type,
 * the speech codes that initialise the tonal ones.
 */
import { STOP_WORDS } from './stopwords.js';

export interface TfidfDoc<T> {
  tokens: T[];
  label: string;
}

export interface TfidfOptions<T> {
  /** How many tokens to keep per class. */
  topK: number;
  /**
   * Classes to score, in this order. Documents with any other label are ignored
   * entirely (they count in neither tf nor N nor df). Default: every label seen, sorted.
   */
  labels?: string[];
  /** Tokens for which this is true are removed before any counting. */
  exclude?: (t: T) => boolean;
}

export interface ScoredToken<T> {
  token: T;
  score: number;
}

/**
 * Class-based TF-IDF.
 *
 * - One document per class: the tokens of all its utterances concatenated.
 * - tf(t, c) = count of t in class c's document / length of that document.
 * - idf(t) = ln(N / df(t)), N = number of utterances (empty ones included), df(t) =
 *   number of utterances containing t at least once. A token in every utterance scores 0.
 * - score = tf * idf; each class keeps its top K (fewer if it has fewer distinct tokens;
 *   zero scores are kept, they simply rank last).
 * - Ties: higher score first, then the smaller token (numbers numerically, otherwise by
 *   UTF-16 code units of String(token)), so results never depend on input order.
 *
 * Only training-fold documents may be passed here: the keywords shape label embeddings.
 */
export function classTfidf<T>(docs: TfidfDoc<T>[], opts: TfidfOptions<T>): Map<string, ScoredToken<T>[]> {
  const { topK, exclude } = opts;
  if (!Number.isInteger(topK) || topK < 0)
    throw new Error(`classTfidf: topK must be a non-negative integer, got ${topK}`);
  const labels = opts.labels ?? [...new Set(docs.map((d) => d.label))].sort();
  const wanted = new Set(labels);
  if (wanted.size !== labels.length)
    throw new Error(`classTfidf: repeated label in ${JSON.stringify(labels)}`);

  const classCounts = new Map<string, Map<T, number>>(labels.map((l) => [l, new Map()]));
  const classLength = new Map<string, number>(labels.map((l) => [l, 0]));
  const df = new Map<T, number>();
  let n = 0;
  for (const doc of docs) {
    if (!wanted.has(doc.label)) continue;
    n++;
    const counts = classCounts.get(doc.label) as Map<T, number>;
    const seen = new Set<T>();
    let len = 0;
    for (const t of doc.tokens) {
      if (exclude?.(t)) continue;
      len++;
      counts.set(t, (counts.get(t) ?? 0) + 1);
      seen.add(t);
    }
    classLength.set(doc.label, (classLength.get(doc.label) as number) + len);
    for (const t of seen) df.set(t, (df.get(t) ?? 0) + 1);
  }

  const out = new Map<string, ScoredToken<T>[]>();
  for (const label of labels) {
    const counts = classCounts.get(label) as Map<T, number>;
    const len = classLength.get(label) as number;
    const scored: ScoredToken<T>[] = [];
    for (const [token, count] of counts) {
      scored.push({ token, score: (count / len) * Math.log(n / (df.get(token) as number)) });
    }
    scored.sort((a, b) => b.score - a.score || compareTokens(a.token, b.token));
    out.set(label, scored.slice(0, topK));
  }
  return out;
}

function compareTokens<T>(a: T, b: T): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** A word: letters, digits and combining marks, with apostrophes allowed only inside. */
const WORD = /[\p{L}\p{N}\p{M}]+(?:'[\p{L}\p{N}\p{M}]+)*/gu;

/**
 * Words of a transcript for TF-IDF: NFC, lowercase, curly apostrophes made ASCII, split
 * on everything that is not a letter, digit or word-internal apostrophe (so punctuation
 * disappears), stop words of `lang` dropped.
 */
export function wordsForTfidf(text: string, lang: 'en' | 'de' = 'en'): string[] {
  const stop = STOP_WORDS[lang];
  const norm = text
    .normalize('NFC')
    .toLowerCase()
    .replace(/[\u2018\u2019\u02bc`´]/g, "'");
  return (norm.match(WORD) ?? []).filter((w) => !stop.has(w));
}
