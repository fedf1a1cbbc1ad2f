// Text front-end throughput: WordPiece encoding (with and without dialogue history) on
// real MELD sentences when ../shared/data is present, else on generated sentences, with
// a from-scratch vocabulary built by our own builder.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { readMeld } from '../../src/data/meld.js';
import { tokenizerFromJson } from '../../src/text/tokenizer.js';
import { buildWordPieceVocab } from '../../src/text/vocab.js';

const MELD_DIR = resolve('../shared/data/meld');

/** MELD train utterances in dialogue order, grouped by dialogue (null when the data is absent). */
async function meldDialogues(): Promise<string[][] | null> {
  if (!existsSync(MELD_DIR)) return null;
  const corpus = await readMeld(MELD_DIR, { split: 'train', classes: 'all' });
  const byDialogue = new Map<string, string[]>();
  for (const u of corpus.utterances) {
    const list = byDialogue.get(u.dialogue) ?? [];
    list[u.turn] = u.text;
    byDialogue.set(u.dialogue, list);
  }
  return [...byDialogue.values()].map((d) => d.filter((t) => t !== undefined));
}

/** Deterministic pseudo-English dialogues when the real data is absent. */
function generatedDialogues(): string[][] {
  const words =
    'i you we oh okay really think know never going what why great terrible sorry happy tired'.split(' ');
  const extra = 'unbelievable ridiculous wonderful catastrophe apartment coffee'.split(' ');
  let s = 12345;
  const rnd = (n: number): number => ((s = (s * 1103515245 + 12345) % 2147483648), s % n);
  return Array.from({ length: 1000 }, () =>
    Array.from({ length: 10 }, () => {
      const n = 3 + rnd(15);
      const ws = Array.from({ length: n }, () =>
        rnd(5) === 0 ? extra[rnd(extra.length)] : words[rnd(words.length)],
      );
      return ws.join(' ') + (rnd(3) === 0 ? '?' : '.');
    }),
  );
}

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

export async function benchTokenizer(): Promise<Record<string, number>> {
  const real = await meldDialogues();
  const dialogues = real ?? generatedDialogues();
  const sentences = dialogues.flat();
  let json: Record<string, unknown> = {};
  const buildS = time(() => (json = buildWordPieceVocab(sentences, { vocabSize: 8000 })));
  const tok = tokenizerFromJson(json, {}, 'benchTokenizer vocabulary');

  let pieces = 0;
  const plain = (): void => {
    pieces = 0;
    for (const s of sentences) {
      const e = tok.encode(s);
      pieces += e.currentEnd - e.currentStart;
    }
  };
  let histTokens = 0;
  const withHistory = (): void => {
    histTokens = 0;
    for (const dlg of dialogues) {
      dlg.forEach((s, i) => {
        histTokens += tok.encode(s, { history: dlg.slice(Math.max(0, i - 10), i), maxLength: 150 }).ids
          .length;
      });
    }
  };
  plain(); // warm-up: JIT and the library's regex caches
  const plainS = Math.min(time(plain), time(plain));
  withHistory();
  const histS = time(withHistory);
  return {
    real_meld_text: real ? 1 : 0,
    utterances: sentences.length,
    vocab_size: tok.vocabSize,
    vocab_build_s: buildS,
    tokens_per_s: pieces / plainS,
    utterances_per_s: sentences.length / plainS,
    // Each utterance with up to 10 previous turns, re-tokenised every time (no cache).
    history_utterances_per_s: sentences.length / histS,
    history_tokens_per_s: histTokens / histS,
  };
}
