import { test } from 'node:test';
import assert from 'node:assert/strict';
import { historyFor, selectHistory } from '../../src/data/index.js';
import type { Corpus, Utterance } from '../../src/data/index.js';

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
const opts = (o: { maxTurns?: number; maxTokens?: number } = {}) => ({ ...o, countTokens: words });

test('selectHistory: hand-checked cases', () => {
  const h = ['a b', 'c d e', 'f'];
  assert.deepEqual(selectHistory(h, 'g h', opts()), ['a b', 'c d e', 'f']);
  assert.deepEqual(selectHistory(h, 'g h', opts({ maxTurns: 2 })), ['c d e', 'f']);
  assert.deepEqual(selectHistory(h, 'g h', opts({ maxTokens: 8 })), ['a b', 'c d e', 'f']); // exactly fits
  assert.deepEqual(selectHistory(h, 'g h', opts({ maxTokens: 7 })), ['c d e', 'f']);
  assert.deepEqual(selectHistory(h, 'g h', opts({ maxTokens: 5 })), ['f']);
  assert.deepEqual(selectHistory(h, 'g h', opts({ maxTokens: 3 })), ['f']);
  assert.deepEqual(selectHistory(h, 'g h', opts({ maxTokens: 2 })), []); // the current utterance alone fills it
  // The oldest goes first even when it is short: history stays a contiguous recent window.
  assert.deepEqual(selectHistory(['a', 'b b b b b', 'c'], 'd', opts({ maxTokens: 4 })), ['c']);
  // The input is not modified.
  assert.deepEqual(h, ['a b', 'c d e', 'f']);
});

test('selectHistory: edge cases', () => {
  // The current utterance alone over the budget: no history, the utterance itself is kept by the caller.
  assert.deepEqual(selectHistory(['a', 'b'], 'w w w w', opts({ maxTokens: 3 })), []);
  assert.deepEqual(selectHistory([], 'x', opts()), []);
  assert.deepEqual(selectHistory(['a', 'b'], 'x', opts({ maxTurns: 0 })), []);
  // Empty turns cost nothing and are kept in place.
  assert.deepEqual(selectHistory(['a', '', 'b'], 'x', opts({ maxTokens: 3 })), ['a', '', 'b']);
  // Defaults: 10 turns, 150 tokens.
  const twelve = Array.from({ length: 12 }, (_, i) => `t${i}`);
  assert.deepEqual(selectHistory(twelve, 'now', opts()), twelve.slice(2));
  const long = Array.from({ length: 10 }, (_, i) => Array(20).fill(`w${i}`).join(' '));
  const cur = Array(10).fill('c').join(' ');
  const kept = selectHistory(long, cur, opts()); // 10 x 20 + 10 = 210 > 150: 7 x 20 + 10 = 150 fits
  assert.deepEqual(kept, long.slice(3));
  // A tokenizer with separators is the caller's count function.
  assert.deepEqual(selectHistory(['a', 'b'], 'x', { maxTokens: 4, countTokens: (s) => words(s) + 1 }), ['b']);
});

function utt(id: string, dialogue: string, turn: number, text: string): Utterance {
  return { id, audioPath: null, text, label: 'neu', speaker: 's', session: 'S', dialogue, turn };
}

test('historyFor: from the utterances ordered by turn, without dialogueTurns', () => {
  const corpus: Corpus = {
    name: 't',
    labels: ['neu'],
    warnings: [],
    // Deliberately not in turn order, with another dialogue interleaved.
    utterances: [
      utt('d1_2', 'd1', 2, 'third one'),
      utt('x_0', 'x', 0, 'elsewhere'),
      utt('d1_0', 'd1', 0, 'first'),
      utt('d1_1', 'd1', 1, 'second turn'),
      utt('d1_3', 'd1', 3, 'now'),
    ],
  };
  const u = corpus.utterances[4];
  assert.deepEqual(historyFor(corpus, u, opts()), ['first', 'second turn', 'third one']);
  assert.deepEqual(historyFor(corpus, u, opts({ maxTokens: 5 })), ['second turn', 'third one']);
  assert.deepEqual(historyFor(corpus, u, opts({ maxTurns: 1 })), ['third one']);
  assert.deepEqual(historyFor(corpus, corpus.utterances[2], opts()), []);
  assert.deepEqual(historyFor(corpus, corpus.utterances[1], opts()), []);
  // Utterances added later are seen (the per-corpus index is rebuilt).
  corpus.utterances.push(utt('d1_4', 'd1', 4, 'later'));
  assert.deepEqual(historyFor(corpus, corpus.utterances[5], opts({ maxTurns: 2 })), ['third one', 'now']);
});

test('historyFor: dialogueTurns include unlabelled turns; empty texts skipped', () => {
  const corpus: Corpus = {
    name: 't',
    labels: ['neu'],
    warnings: [],
    utterances: [utt('a', 'd', 0, 'hello'), utt('c', 'd', 3, 'bye now')],
    dialogueTurns: new Map([
      [
        'd',
        [
          { id: 'a', text: 'hello', speaker: 'x' },
          { id: 'b', text: 'unlabelled reply', speaker: 'y' },
          { id: 'e', text: '  ', speaker: 'y' },
          { id: 'c', text: 'bye now', speaker: 'x' },
        ],
      ],
    ]),
  };
  assert.deepEqual(historyFor(corpus, corpus.utterances[1], opts()), ['hello', 'unlabelled reply']);
  assert.deepEqual(historyFor(corpus, corpus.utterances[1], opts({ maxTokens: 4 })), ['unlabelled reply']);
  assert.deepEqual(historyFor(corpus, corpus.utterances[0], opts()), []);
  // An utterance missing from dialogueTurns falls back to the corpus' utterances.
  const stray = utt('z', 'd', 5, 'late');
  corpus.utterances.push(stray);
  assert.deepEqual(historyFor(corpus, stray, opts()), ['hello', 'bye now']);
});
