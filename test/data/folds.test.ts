import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkFolds,
  carveValidation,
  defaultFolds,
  fixedSplit,
  leaveOneGroupOut,
  splitOfSession,
} from '../../src/data/index.js';
import type { Corpus, Fold, Utterance } from '../../src/data/index.js';

/** IEMOCAP-like: 5 sessions x 2 speakers, uneven sizes, interleaved order. */
function iemocapLike(): Utterance[] {
  const utts: Utterance[] = [];
  for (let i = 0; i < 137; i++) {
    const s = `Ses0${((i * 7) % 5) + 1}`;
    const spk = `${s}_${i % 3 === 0 ? 'M' : 'F'}`;
    utts.push({
      id: `u${i}`,
      audioPath: null,
      text: '',
      label: ['ang', 'hap', 'sad', 'neu'][i % 4],
      speaker: spk,
      session: s,
      dialogue: `${s}_d${i % 4}`,
      turn: i,
    });
  }
  return utts;
}

/** The fold invariants, asserted directly (independent of checkFolds). */
function assertPartition(utts: Utterance[], folds: Fold[], key: 'session' | 'speaker') {
  const seen = new Map<number, string>();
  for (const f of folds) {
    for (const i of f.test) {
      assert.ok(!seen.has(i), `utterance ${i} in the test sets of ${seen.get(i)} and ${f.name}`);
      seen.set(i, f.name);
    }
    const train = new Set(f.train);
    const valid = new Set(f.valid ?? []);
    for (const i of f.test)
      assert.ok(!train.has(i) && !valid.has(i), `fold ${f.name}: ${i} in train/valid and test`);
    for (const i of valid) assert.ok(!train.has(i), `fold ${f.name}: ${i} in train and valid`);
    assert.equal(train.size + valid.size + f.test.length, utts.length, `fold ${f.name} loses utterances`);
    const trainGroups = new Set(f.train.map((i) => utts[i][key]));
    for (const i of f.test)
      assert.ok(!trainGroups.has(utts[i][key]), `fold ${f.name}: ${key} ${utts[i][key]} in train and test`);
    for (const list of [f.train, f.test, f.valid ?? []])
      assert.deepEqual(
        list,
        [...list].sort((a, b) => a - b),
      );
  }
  assert.equal(seen.size, utts.length, 'test sets do not cover every utterance');
}

test('leave-one-session-out and leave-one-speaker-out partition the corpus', () => {
  const utts = iemocapLike();
  const bySession = leaveOneGroupOut(utts, 'session');
  assert.deepEqual(
    bySession.map((f) => f.name),
    ['Ses01', 'Ses02', 'Ses03', 'Ses04', 'Ses05'],
  );
  assertPartition(utts, bySession, 'session');
  checkFolds(utts, bySession, { key: 'session' });
  for (const f of bySession) assert.ok(f.test.every((i) => utts[i].session === f.name));

  const bySpeaker = leaveOneGroupOut(utts, 'speaker');
  assert.equal(bySpeaker.length, 10);
  assertPartition(utts, bySpeaker, 'speaker');
  checkFolds(utts, bySpeaker, { key: 'speaker' });
  // Natural order: '2' before '10'.
  const numeric = [3, 10, 2, 10, 3].map((s, i) => ({ ...utts[i], speaker: String(s) }));
  assert.deepEqual(
    leaveOneGroupOut(numeric, 'speaker').map((f) => f.name),
    ['2', '3', '10'],
  );
  assert.throws(
    () =>
      leaveOneGroupOut(
        utts.filter((u) => u.session === 'Ses01'),
        'session',
      ),
    /at least two sessions/,
  );
});

test('validation by speaker: unseen speakers, seeded, still a partition', () => {
  const utts = iemocapLike();
  const folds = leaveOneGroupOut(utts, 'session', { validation: { by: 'speaker', seed: 1 } });
  assertPartition(utts, folds, 'session');
  for (const f of folds) {
    const validSpeakers = new Set(f.valid!.map((i) => utts[i].speaker));
    assert.equal(validSpeakers.size, 1);
    assert.ok(f.train.every((i) => !validSpeakers.has(utts[i].speaker)));
    assert.ok(f.valid!.every((i) => utts[i].session !== f.name));
  }
  const again = leaveOneGroupOut(utts, 'session', { validation: { by: 'speaker', seed: 1 } });
  assert.deepEqual(again, folds);
  const seeds = new Set(
    [0, 1, 2, 3, 4, 5, 6, 7].map((seed) =>
      JSON.stringify(
        leaveOneGroupOut(utts, 'session', { validation: { by: 'speaker', seed } }).map((f) => f.valid),
      ),
    ),
  );
  assert.ok(seeds.size > 1, 'the seed changes the choice');
  assert.throws(
    () => carveValidation(utts, folds[0], { by: 'speaker', count: 8 }),
    /cannot hold out 8 speaker/,
  );
});

test('validation by fraction: size, disjointness, determinism', () => {
  const utts = iemocapLike();
  const [f0] = leaveOneGroupOut(utts, 'session');
  const f = carveValidation(utts, f0, { fraction: 0.1, seed: 3 });
  assert.equal(f.valid!.length, Math.round(0.1 * f0.train.length));
  assert.equal(f.train.length + f.valid!.length, f0.train.length);
  assertPartition(utts, [f, ...leaveOneGroupOut(utts, 'session').slice(1)], 'session');
  assert.deepEqual(carveValidation(utts, f0, { fraction: 0.1, seed: 3 }), f);
  assert.throws(() => carveValidation(utts, f0, { fraction: 1.5 }), /between 0 and 1/);
});

test('fixedSplit and defaultFolds for split-named sessions', () => {
  const utts = iemocapLike().map((u, i) => ({
    ...u,
    session: ['train', 'train', 'train', 'dev', 'test'][i % 5],
  }));
  const f = fixedSplit(utts, (u) => splitOfSession(u.session)!);
  assert.equal(f.name, 'fixed');
  assert.ok(f.train.every((i) => utts[i].session === 'train'));
  assert.ok(f.valid!.every((i) => utts[i].session === 'dev'));
  assert.ok(f.test.every((i) => utts[i].session === 'test'));
  assert.equal(f.train.length + f.valid!.length + f.test.length, utts.length);
  checkFolds(utts, [f], { key: 'session', complete: false });
  assert.throws(() => checkFolds(utts, [f]), /in no test set/);

  const corpus = (u: Utterance[]): Corpus => ({
    name: 'c',
    labels: ['ang', 'hap', 'sad', 'neu'],
    utterances: u,
    warnings: [],
  });
  assert.deepEqual(defaultFolds(corpus(utts)), [f]);
  // MELD train+dev: dev is the test set.
  const trainDev = utts.filter((u) => u.session !== 'test');
  const [td] = defaultFolds(corpus(trainDev));
  assert.ok(td.test.length > 0 && td.test.every((i) => trainDev[i].session === 'dev'));
  assert.equal(td.valid, undefined);
  const [carved] = defaultFolds(corpus(trainDev), { validation: { fraction: 0.2 } });
  assert.ok(carved.valid!.every((i) => trainDev[i].session === 'train'));
  // Other session names: leave-one-session-out.
  assert.equal(defaultFolds(corpus(iemocapLike())).length, 5);

  assert.throws(() => fixedSplit(utts, () => 'train'), /no utterance is assigned to test/);
  assert.throws(() => fixedSplit(utts, () => 'holdout' as 'test'), /assigned to "holdout"/);
  assert.equal(splitOfSession('Validation'), 'valid');
  assert.equal(splitOfSession('Ses01'), undefined);
});

test('checkFolds catches each broken property', () => {
  const utts = iemocapLike();
  const good = leaveOneGroupOut(utts, 'session');
  const clone = () => good.map((f) => ({ ...f, train: [...f.train], test: [...f.test] }));
  let bad = clone();
  bad[1].test.push(bad[0].test[0]);
  assert.throws(() => checkFolds(utts, bad), /in both train and test|test sets of folds/);
  bad = clone();
  bad[0].test.pop();
  assert.throws(() => checkFolds(utts, bad), /1 utterance\(s\) in no test set/);
  bad = clone();
  const moved = bad[0].train.pop()!;
  bad[0].test.push(moved);
  bad[good.findIndex((f) => f.name === utts[moved].session)].test = bad[
    good.findIndex((f) => f.name === utts[moved].session)
  ].test.filter((i) => i !== moved);
  assert.throws(() => checkFolds(utts, bad, { key: 'session' }), /session Ses0\d is in both train and test/);
  bad = clone();
  bad[2].train.push(999);
  assert.throws(() => checkFolds(utts, bad), /index 999 out of range/);
});
