import { test } from 'node:test';
import assert from 'node:assert/strict';
import { confusionMatrix, scores, summarizeFolds } from '../../src/eval/metrics.js';

const close = (a: number, b: number, msg?: string): void =>
  assert.ok(Math.abs(a - b) < 1e-12, `${msg ?? ''} ${a} != ${b}`);

test('confusion matrix: rows are true classes, columns predictions', () => {
  const cm = confusionMatrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3);
  assert.deepEqual(cm, [
    [2, 1, 0],
    [0, 1, 1],
    [0, 0, 1],
  ]);
  assert.throws(() => confusionMatrix([0, 1], [0], 2), /2 true labels but 1 predictions/);
  assert.throws(() => confusionMatrix([0, 2], [0, 1], 2), /true label 2 at index 1/);
  assert.throws(() => confusionMatrix([0, 1], [0, 0.5], 2), /prediction 0.5 at index 1/);
  assert.throws(() => confusionMatrix([], [], 0), /numClasses/);
});

test('WA is overall accuracy, UA the mean recall (hand-computed)', () => {
  const s = scores(confusionMatrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3), ['a', 'b', 'c']);
  close(s.wa, 4 / 6);
  close(s.ua, (2 / 3 + 1 / 2 + 1) / 3);
  assert.deepEqual(s.perClassRecall, { a: 2 / 3, b: 1 / 2, c: 1 });
  assert.deepEqual(s.support, { a: 3, b: 2, c: 1 });
  // UA differs from WA on imbalanced data: always predicting 'a' on 9 a + 1 b.
  const skew = scores(confusionMatrix([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], Array(10).fill(0), 2), ['a', 'b']);
  close(skew.wa, 0.9);
  close(skew.ua, 0.5);
});

test('UA averages only over classes with support; their recall is NaN', () => {
  // Class c has no true utterances (but is predicted once), class d neither.
  const s = scores(confusionMatrix([0, 1, 1], [0, 2, 1], 4), ['a', 'b', 'c', 'd']);
  close(s.wa, 2 / 3);
  close(s.ua, (1 + 1 / 2) / 2);
  assert.ok(Number.isNaN(s.perClassRecall.c) && Number.isNaN(s.perClassRecall.d));
  assert.equal(s.support.c, 0);
  assert.throws(() => scores([[1]], ['a', 'b']), /not 2 x 2/);
});

test('summarizeFolds: per fold, mean, population std and pooled (hand-computed)', () => {
  const labels = ['a', 'b', 'c'];
  const sum = summarizeFolds(
    [
      { name: 'f1', yTrue: [0, 0, 0, 1, 1, 2], yPred: [0, 0, 1, 1, 2, 2] }, // WA 4/6, UA 13/18
      { name: 'f2', yTrue: [0, 1, 2, 2], yPred: [0, 1, 2, 0] }, // WA 3/4, UA 15/18
    ],
    labels,
  );
  assert.deepEqual(
    sum.folds.map((f) => [f.name, f.n]),
    [
      ['f1', 6],
      ['f2', 4],
    ],
  );
  close(sum.folds[0].ua, 13 / 18);
  close(sum.folds[1].wa, 3 / 4);
  assert.deepEqual(sum.folds[1].perClassRecall, { a: 1, b: 1, c: 1 / 2 });
  close(sum.mean.wa, 17 / 24);
  close(sum.std.wa, 1 / 24);
  close(sum.mean.ua, 7 / 9);
  close(sum.std.ua, 1 / 18);
  assert.deepEqual(sum.pooled.confusion, [
    [3, 1, 0],
    [0, 2, 1],
    [1, 0, 2],
  ]);
  close(sum.pooled.wa, 7 / 10);
  close(sum.pooled.ua, (3 / 4 + 2 / 3 + 2 / 3) / 3);
  assert.equal(sum.pooled.n, 10);
  // A single fold has std 0.
  assert.equal(summarizeFolds([{ name: 'only', yTrue: [0, 1], yPred: [0, 0] }], labels).std.wa, 0);
});

test('summarizeFolds rejects bad folds, naming them', () => {
  assert.throws(() => summarizeFolds([], ['a']), /no folds/);
  assert.throws(
    () => summarizeFolds([{ name: 'Ses03', yTrue: [], yPred: [] }], ['a']),
    /'Ses03' has no predictions/,
  );
  assert.throws(
    () =>
      summarizeFolds(
        [
          { name: 'x', yTrue: [0], yPred: [0] },
          { name: 'x', yTrue: [0], yPred: [0] },
        ],
        ['a'],
      ),
    /'x' repeats/,
  );
  assert.throws(
    () => summarizeFolds([{ name: 'Ses02', yTrue: [0, 5], yPred: [0, 0] }], ['a', 'b']),
    /'Ses02'.*true label 5/,
  );
});
