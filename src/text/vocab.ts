/**
 * From-scratch BERT-style WordPiece vocabularies, for text encoders trained here (no
 * pretrained weights reach this machine). @huggingface/tokenizers cannot train, so this
 * is the trainer; the result is a complete tokenizer.json that the library loads.
 *
 * Training follows the Hugging Face WordPiece trainer: words (after the very normaliser
 * and pre-tokeniser the tokenizer will use) start as characters, word-internal ones
 * carrying the `##` prefix; the most frequent adjacent pair is merged into a new piece,
 * again and again, until the vocabulary is full or no pair occurs `minFrequency` times.
 * Frequent words thus end up whole, rarer ones as frequent pieces.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { writeFileAtomic } from '../util/fs.js';
import { bertTokenizerJson, MAX_INPUT_CHARS_PER_WORD, SPECIAL_TOKENS, SUBWORD_PREFIX } from './bert-json.js';

export interface VocabOptions {
  /** Target size including specials and the alphabet. Default 8000. */
  vocabSize?: number;
  /** A pair is merged only if it occurs at least this often (weighted by word counts). Default 2. */
  minFrequency?: number;
  /** Lowercase and strip accents (BERT-uncased). Default true. */
  lowercase?: boolean;
}

/**
 * Builds the vocabulary and returns the whole tokenizer.json object. Ids: [PAD]=0,
 * [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4; then the alphabet, each character followed by its
 * `##` form (every character seen, plus printable ASCII so that unseen English words
 * always split into pieces rather than [UNK]); then merged pieces in merge order. The
 * alphabet is always complete, so the vocabulary exceeds `vocabSize` only if the alphabet
 * alone does.
 */
export function buildWordPieceVocab(texts: string[], opts: VocabOptions = {}): Record<string, unknown> {
  const vocabSize = opts.vocabSize ?? 8000;
  const minFrequency = opts.minFrequency ?? 2;
  const lowercase = opts.lowercase ?? true;
  if (!Number.isInteger(vocabSize) || vocabSize < SPECIAL_TOKENS.length) {
    throw new Error(
      `buildWordPieceVocab: vocabSize must be an integer >= ${SPECIAL_TOKENS.length}, got ${vocabSize}`,
    );
  }
  if (vocabSize >= PAIR_BASE) throw new Error(`buildWordPieceVocab: vocabSize ${vocabSize} is too large`);

  // The library's own normaliser and pre-tokeniser (taken from a specials-only tokenizer
  // of the same configuration), so that training sees words exactly as encoding will.
  const specialsOnly = Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, i]));
  const { normalizer, pre_tokenizer: preTokenizer } = new Tokenizer(
    bertTokenizerJson(specialsOnly, { lowercase }),
    {},
  ) as {
    normalizer: { normalize(text: string): string };
    pre_tokenizer: { pre_tokenize_text(text: string): string[] };
  };
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const w of preTokenizer.pre_tokenize_text(normalizer.normalize(text))) {
      wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }

  const charCounts = new Map<string, number>();
  for (let cp = 0x21; cp <= 0x7e; cp++) {
    const c = String.fromCodePoint(cp);
    if (!lowercase || c === c.toLowerCase()) charCounts.set(c, 0);
  }
  const words: { chars: string[]; count: number }[] = [];
  // Sorted so that ids never depend on the order of the input texts.
  for (const [w, count] of [...wordCounts].sort((x, y) => cmpStr(x[0], y[0]))) {
    const chars = [...w];
    if (chars.length > MAX_INPUT_CHARS_PER_WORD) continue; // such words become [UNK] anyway
    for (const c of chars) charCounts.set(c, (charCounts.get(c) ?? 0) + count);
    words.push({ chars, count });
  }

  const tokens: string[] = [...SPECIAL_TOKENS];
  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const add = (t: string): number => {
    let id = idOf.get(t);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(t);
      idOf.set(t, id);
    }
    return id;
  };
  const alphabet = [...charCounts].sort((x, y) => y[1] - x[1] || cmpStr(x[0], y[0]));
  for (const [c] of alphabet) {
    add(c);
    add(SUBWORD_PREFIX + c);
  }

  const seqs = words.map((w) => w.chars.map((c, i) => idOf.get(i === 0 ? c : SUBWORD_PREFIX + c) as number));
  const counts = words.map((w) => w.count);
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const heap = new PairHeap();
  const bump = (key: number, delta: number, wi: number, touched: Set<number>): void => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + delta);
    if (delta > 0) {
      let s = pairWords.get(key);
      if (!s) pairWords.set(key, (s = new Set()));
      s.add(wi);
    }
    touched.add(key);
  };
  const countWord = (wi: number, sign: 1 | -1, touched: Set<number>): void => {
    const s = seqs[wi];
    for (let i = 0; i + 1 < s.length; i++) bump(s[i] * PAIR_BASE + s[i + 1], sign * counts[wi], wi, touched);
  };
  const initial = new Set<number>();
  seqs.forEach((_, wi) => countWord(wi, 1, initial));
  for (const key of initial) heap.push(pairCount.get(key) as number, key);

  while (tokens.length < vocabSize && heap.size > 0) {
    const [count, key] = heap.pop();
    if (pairCount.get(key) !== count) continue; // stale entry: the pair's count changed since
    if (count < minFrequency || count <= 0) break; // the best pair is too rare: so are all others
    const a = Math.floor(key / PAIR_BASE);
    const b = key % PAIR_BASE;
    // b is never word-initial, so it always carries the prefix.
    const merged = add(tokens[a] + tokens[b].slice(SUBWORD_PREFIX.length));
    const touched = new Set<number>();
    for (const wi of pairWords.get(key) ?? []) {
      const s = seqs[wi];
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) has = true;
      if (!has) continue;
      countWord(wi, -1, touched);
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(s[i]);
      }
      seqs[wi] = out;
      countWord(wi, 1, touched);
    }
    pairWords.delete(key);
    for (const k of touched) {
      const c = pairCount.get(k) as number;
      if (c > 0) heap.push(c, k);
      else pairCount.delete(k);
    }
  }

  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  return bertTokenizerJson(vocab, { lowercase }, 'buildWordPieceVocab');
}

/** Writes a tokenizer.json object (atomically). */
export function saveTokenizerJson(obj: Record<string, unknown>, path: string): void {
  writeFileAtomic(path, JSON.stringify(obj, null, 2) + '\n');
}

/** Pairs of ids packed in one number: a * PAIR_BASE + b (exact below 2^53). */
const PAIR_BASE = 2 ** 21;

/** Code-unit order, independent of the locale. */
function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Max-heap of (count, pair key); ties go to the smaller key, so training is deterministic. */
class PairHeap {
  private c: number[] = [];
  private k: number[] = [];

  get size(): number {
    return this.c.length;
  }

  private above(i: number, j: number): boolean {
    return this.c[i] > this.c[j] || (this.c[i] === this.c[j] && this.k[i] < this.k[j]);
  }

  private swap(i: number, j: number): void {
    [this.c[i], this.c[j]] = [this.c[j], this.c[i]];
    [this.k[i], this.k[j]] = [this.k[j], this.k[i]];
  }

  push(count: number, key: number): void {
    this.c.push(count);
    this.k.push(key);
    let i = this.c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.c[0], this.k[0]];
    const lastC = this.c.pop() as number;
    const lastK = this.k.pop() as number;
    if (this.c.length > 0) {
      this.c[0] = lastC;
      this.k[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.c.length && this.above(l, m)) m = l;
        if (r < this.c.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}
