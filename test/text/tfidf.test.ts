import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classTfidf, wordsForTfidf } from '../../src/text/tfidf.js';
import { MELD_TRAIN, readMeldTrain } from './meld-csv.js';

const close = (a: number, b: number, msg?: string): void =>
  assert.ok(Math.abs(a - b) < 1e-12, `${msg ?? ''} ${a} != ${b}`);

// Toy corpus: N = 4 utterances; df: a 1, b 3, c 2, d 2.
// pos document = a b a b c (length 5); neg document = c d b d d (length 5).
const TOY = [
  { tokens: ['a', 'b', 'a'], label: 'pos' },
  { tokens: ['b', 'c'], label: 'pos' },
  { tokens: ['c', 'd'], label: 'neg' },
  { tokens: ['b', 'd', 'd'], label: 'neg' },
];

test('class TF-IDF matches hand-computed scores', () => {
  const r = classTfidf(TOY, { topK: 10 });
  assert.deepEqual([...r.keys()], ['neg', 'pos']); // default: labels sorted
  const pos = r.get('pos')!;
  assert.deepEqual(
    pos.map((x) => x.token),
    ['a', 'c', 'b'],
  );
  close(pos[0].score, (2 / 5) * Math.log(4 / 1), 'a');
  close(pos[1].score, (1 / 5) * Math.log(4 / 2), 'c');
  close(pos[2].score, (2 / 5) * Math.log(4 / 3), 'b');
  const neg = r.get('neg')!;
  assert.deepEqual(
    neg.map((x) => x.token),
    ['d', 'c', 'b'],
  );
  close(neg[0].score, (3 / 5) * Math.log(2), 'd');
  close(neg[1].score, (1 / 5) * Math.log(2), 'c');
  close(neg[2].score, (1 / 5) * Math.log(4 / 3), 'b');
  // top K cuts.
  assert.deepEqual(
    classTfidf(TOY, { topK: 1 })
      .get('pos')!
      .map((x) => x.token),
    ['a'],
  );
});

test('exclude removes tokens before counting; labels restrict the classes and the utterances', () => {
  // Without 'a': pos document = b b c (length 3); df unchanged for the rest (a was only in d1).
  const pos = classTfidf(TOY, { topK: 10, exclude: (t) => t === 'a' }).get('pos')!;
  assert.deepEqual(
    pos.map((x) => x.token),
    ['c', 'b'],
  );
  close(pos[0].score, (1 / 3) * Math.log(2), 'c');
  close(pos[1].score, (2 / 3) * Math.log(4 / 3), 'b');

  // Only 'neg': N = 2, df c 1, d 2, b 1. d is in every utterance: score 0, ranked last.
  // c and b tie at (1/5) ln 2: the smaller token first.
  const r = classTfidf(TOY, { topK: 10, labels: ['neg'] });
  assert.deepEqual([...r.keys()], ['neg']);
  const neg = r.get('neg')!;
  assert.deepEqual(
    neg.map((x) => x.token),
    ['b', 'c', 'd'],
  );
  close(neg[0].score, (1 / 5) * Math.log(2));
  assert.equal(neg[2].score, 0);
  // A requested class with no utterances gets an empty list.
  assert.deepEqual(classTfidf(TOY, { topK: 3, labels: ['pos', 'fear'] }).get('fear'), []);
  assert.throws(() => classTfidf(TOY, { topK: -1 }), /topK/);
});

test('speech codes as numbers: numeric tie-breaking, not string order', () => {
  // Codes 10 and 2 tie in class x: 2 must come before 10 (as strings "10" < "2").
  const docs = [
    { tokens: [10, 2, 7], label: 'x' },
    { tokens: [7, 7, 7, 5], label: 'y' },
  ];
  const r = classTfidf(docs, { topK: 5 });
  // N = 2; df: 10 1, 2 1, 7 2, 5 1. x document length 3; y document length 4.
  assert.deepEqual(
    r.get('x')!.map((x) => x.token),
    [2, 10, 7],
  );
  close(r.get('x')![0].score, (1 / 3) * Math.log(2));
  assert.equal(r.get('x')![2].score, 0);
  assert.deepEqual(
    r.get('y')!.map((x) => x.token),
    [5, 7],
  );
  close(r.get('y')![0].score, (1 / 4) * Math.log(2));
  // String codes (tuples of group indices) work the same way.
  const s = classTfidf(
    [
      { tokens: ['3-17', '3-17', '5-2'], label: 'ang' },
      { tokens: ['5-2'], label: 'sad' },
    ],
    { topK: 1 },
  );
  assert.equal(s.get('ang')![0].token, '3-17');
});

test('wordsForTfidf: lowercase, punctuation and stop words out, inner apostrophes kept', () => {
  assert.deepEqual(wordsForTfidf("I don’t KNOW, it's 'great'!! rock'n'roll 42 — café…"), [
    'know',
    'great',
    "rock'n'roll",
    '42',
    'café',
  ]);
  assert.deepEqual(wordsForTfidf('Der Lappen liegt auf dem Eisschrank.', 'de'), [
    'lappen',
    'liegt',
    'eisschrank',
  ]);
  assert.deepEqual(wordsForTfidf('Was sind denn das für Tüten, die da unter dem Tisch stehen?', 'de'), [
    'tüten',
    'tisch',
    'stehen',
  ]);
  assert.deepEqual(wordsForTfidf('...!?'), []);
});

test('MELD train: plausible keywords for anger, joy, sadness, surprise, disgust', (t) => {
  const rows = readMeldTrain();
  if (!rows) {
    t.skip(`${MELD_TRAIN} is absent`);
    return;
  }
  assert.equal(rows.length, 9989);
  const docs = rows.map((r) => ({ tokens: wordsForTfidf(r.text), label: r.emotion }));
  const top = classTfidf(docs, { topK: 30 });
  const words = (label: string): string[] => top.get(label)!.map((x) => x.token);
  t.diagnostic(`anger: ${words('anger').join(' ')}`);
  t.diagnostic(`joy: ${words('joy').join(' ')}`);
  for (const [label, expected] of [
    ['anger', ['stop', 'fine']],
    ['joy', ['great', 'good', 'love', 'thank', 'nice']],
    ['sadness', ['sorry', 'bad', 'feel']],
    ['surprise', ['whoa', 'wow', 'believe']],
    ['disgust', ['ew', 'hate', 'ugh']],
  ] as const) {
    for (const w of expected)
      assert.ok(words(label).includes(w), `${label}: '${w}' not in ${words(label).join(' ')}`);
  }
  assert.equal(words('sadness')[0], 'sorry');
});
