import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultFolds, loadCorpus, parseCorpusSpec, restrictLabels } from '../../src/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-corpus-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('parseCorpusSpec: accepted forms', () => {
  assert.deepEqual(parseCorpusSpec('iemocap:/data/IEMOCAP_full_release'), {
    kind: 'iemocap',
    path: '/data/IEMOCAP_full_release',
  });
  assert.deepEqual(parseCorpusSpec('emodb:../shared/data/emodb'), {
    kind: 'emodb',
    path: '../shared/data/emodb',
  });
  assert.deepEqual(parseCorpusSpec('meld:data/meld'), { kind: 'meld', path: 'data/meld' });
  assert.deepEqual(parseCorpusSpec('manifest:C:/corpora/x.csv'), {
    kind: 'manifest',
    path: 'C:/corpora/x.csv',
  }); // only the first colon splits
  assert.deepEqual(parseCorpusSpec('demo'), { kind: 'demo' });
  assert.deepEqual(parseCorpusSpec(' demo:/tmp/demo '), { kind: 'demo', path: '/tmp/demo' });
});

test('parseCorpusSpec: errors list the accepted forms', () => {
  for (const bad of ['iemocap', 'emodb:', 'ravdess:/x', '/data/IEMOCAP', '']) {
    assert.throws(
      () => parseCorpusSpec(bad),
      (e: Error) =>
        e.message.includes(`invalid corpus "${bad}"`) &&
        e.message.includes('iemocap:<dir>') &&
        e.message.includes('manifest:<file.jsonl|file.csv>') &&
        e.message.includes('demo'),
      bad,
    );
  }
  assert.throws(() => parseCorpusSpec('meld'), /"meld" needs a path after the colon/);
});

test('loadCorpus: manifest, with the label set and warnings reported', async () => {
  const p = join(tmp, 'm.jsonl');
  writeFileSync(
    p,
    [
      '{"id":"a","text":"x","label":"neu","speaker":"s1","oops":1}',
      '{"id":"b","text":"y","label":"sad","speaker":"s2"}',
    ].join('\n'),
  );
  const seen: string[] = [];
  const c = await loadCorpus(`manifest:${p}`, { onWarning: (w) => seen.push(w) });
  assert.deepEqual(c.labels, ['neu', 'sad']);
  assert.equal(c.utterances.length, 2);
  assert.equal(seen.length, 1);
  assert.match(seen[0], /unknown column\(s\) oops/);
  await assert.rejects(
    loadCorpus({ kind: 'manifest', path: p }, { labels: ['neu'] }),
    /m\.jsonl:2: label "sad" is not in the label set/,
  );
  const s = await loadCorpus({ kind: 'manifest', path: p }, { split: 'dev' });
  assert.match(s.warnings[0], /split "dev" ignored/);
});

test('loadCorpus: EmoDB and MELD through specs; labels restrict and order the classes', async () => {
  const wav = join(tmp, 'emodb', 'wav');
  mkdirSync(wav, { recursive: true });
  for (const n of ['03a01Wa.wav', '03a01Fa.wav', '08a02Ta.wav', '08a02La.wav'])
    writeFileSync(join(wav, n), 'RIFF');
  const four = await loadCorpus(`emodb:${join(tmp, 'emodb')}`);
  assert.deepEqual(four.utterances.map((u) => u.id).sort(), ['03a01Fa', '03a01Wa', '08a02Ta']);
  const all = await loadCorpus(`emodb:${join(tmp, 'emodb')}`, { classes: 'all' });
  assert.equal(all.utterances.length, 4);
  const two = await loadCorpus(`emodb:${join(tmp, 'emodb')}`, { labels: ['sad', 'ang'] });
  assert.deepEqual(two.labels, ['sad', 'ang']);
  assert.deepEqual(two.utterances.map((u) => u.label).sort(), ['ang', 'sad']);
  assert.match(two.warnings.at(-1)!, /^1 utterance\(s\) with labels outside \[sad, ang\] left out/);
  await assert.rejects(
    loadCorpus(`emodb:${join(tmp, 'emodb')}`, { labels: ['ang', 'fru'] }),
    /has no label\(s\) fru/,
  );

  const meld = join(tmp, 'meld');
  mkdirSync(meld);
  const header =
    'Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n';
  writeFileSync(
    join(meld, 'train_sent_emo.csv'),
    `${header}1,Hi.,Joey,joy,positive,0,0,1,1,a,b\n2,Oh.,Ross,fear,negative,0,1,1,1,a,b\n`,
  );
  writeFileSync(join(meld, 'dev_sent_emo.csv'), `${header}1,No!,Monica,anger,negative,0,0,1,1,a,b\n`);
  const m = await loadCorpus(`meld:${meld}`, { split: 'train+dev' });
  assert.deepEqual(
    m.utterances.map((u) => [u.id, u.session]),
    [
      ['train_dia0_utt0', 'train'],
      ['dev_dia0_utt0', 'dev'],
    ],
  );
  // The usual protocol for it: train on train, test on dev.
  const [fold] = defaultFolds(m);
  assert.deepEqual([fold.train, fold.test], [[0], [1]]);
  assert.equal((await loadCorpus(`meld:${meld}`, { classes: 'all' })).utterances.length, 2); // default split: train
  await assert.rejects(loadCorpus(`meld:${meld}`, { split: 'valid' }), /unknown MELD split "valid"/);
});

test('loadCorpus: IEMOCAP options pass through', async () => {
  const root = join(tmp, 'iemocap');
  const s = join(root, 'Session2');
  mkdirSync(join(s, 'dialog', 'EmoEvaluation'), { recursive: true });
  mkdirSync(join(s, 'dialog', 'transcriptions'), { recursive: true });
  writeFileSync(
    join(s, 'dialog', 'EmoEvaluation', 'Ses02F_impro01.txt'),
    '[1.0000 - 2.0000]\tSes02F_impro01_F000\tang\t[1.0, 4.0, 4.0]\n[2.0000 - 3.0000]\tSes02F_impro01_M000\tneu\t[3.0, 3.0, 3.0]\n',
  );
  writeFileSync(
    join(s, 'dialog', 'transcriptions', 'Ses02F_impro01.txt'),
    'Ses02F_impro01_F000 [001.0000-002.0000]: Stop it.\nSes02F_impro01_M000 [002.0000-003.0000]: Fine.\n',
  );
  await assert.rejects(loadCorpus(`iemocap:${root}`), /session folder missing: .*Session1/);
  await assert.rejects(
    loadCorpus(`iemocap:${root}`, { allowMissingSessions: true }),
    /wav missing for turn Ses02F_impro01_F000/,
  );
  const c = await loadCorpus(`iemocap:${root}`, { allowMissingSessions: true, skipMissingAudio: true });
  assert.equal(c.utterances.length, 0);
  assert.ok(c.warnings.some((w) => w.startsWith('2 labelled turn(s) with a missing wav')));
  assert.equal(c.warnings.filter((w) => /session folder missing/.test(w)).length, 4);
});

test('loadCorpus: the real EmoDB by spec', async (t) => {
  const dir = resolve('../shared/data/emodb');
  if (!existsSync(dir)) {
    t.skip(`EmoDB not found at ${dir} (see shared/data/README.md)`);
    return;
  }
  const c = await loadCorpus({ kind: 'emodb', path: dir });
  assert.equal(c.utterances.length, 339);
  const folds = defaultFolds(c);
  assert.equal(folds.length, 10); // leave-one-speaker-out
  assert.deepEqual(restrictLabels(c, ['neu']).utterances.length, 79);
});
