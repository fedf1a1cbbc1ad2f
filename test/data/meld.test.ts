import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { historyFor, parseMeldSplits, readMeld, repairMojibake } from '../../src/data/index.js';

const REAL = resolve('../shared/data/meld');
const tmp = mkdtempSync(join(tmpdir(), 'lemer-meld-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const HEADER =
  'Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime';

function labelCounts(labels: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const l of labels) c[l] = (c[l] ?? 0) + 1;
  return c;
}

test('repairMojibake: UTF-8 read as cp1252/latin-1, once or twice, and C1 controls', () => {
  assert.equal(repairMojibake('don\u0092t'), 'don’t');
  assert.equal(repairMojibake('don\u00e2\u20ac\u2122t'), 'don’t'); // â€™
  assert.equal(repairMojibake('don\u00c3\u00a2\u00c2\u20ac\u00c2\u2122t'), 'don’t'); // Ã¢Â€Â™
  assert.equal(repairMojibake('caf\u00c3\u00a9'), 'café');
  assert.equal(repairMojibake('wait\u00e2\u20ac\u00a6 \u0093hi\u0094 \u0096'), 'wait… “hi” –');
  // Correct text is unchanged.
  for (const s of [
    'don’t',
    'café',
    'naïve “quoted” — … Ångström',
    'plain ASCII',
    'Tüten, Eisschrank',
    '£5 ¿qué?',
  ]) {
    assert.equal(repairMojibake(s), s);
  }
});

test('parseMeldSplits', () => {
  assert.deepEqual(parseMeldSplits('train'), ['train']);
  assert.deepEqual(parseMeldSplits('train+dev'), ['train', 'dev']);
  assert.throws(() => parseMeldSplits('train+valid'), /unknown MELD split "valid"/);
});

test('real MELD train/dev: counts, dialogue order, text', async (t) => {
  if (!existsSync(REAL)) {
    t.skip(`MELD not found at ${REAL} (see shared/data/README.md)`);
    return;
  }
  const train = await readMeld(REAL, { split: 'train', classes: 'all' });
  assert.equal(train.utterances.length, 9989);
  assert.equal(train.dialogueTurns!.size, 1038);
  assert.deepEqual(train.warnings, []);
  assert.deepEqual(labelCounts(train.utterances.map((u) => u.label)), {
    neu: 4710,
    hap: 1743,
    sur: 1205,
    ang: 1109,
    sad: 683,
    dis: 271,
    fea: 268,
  });
  const dev = await readMeld(REAL, { split: 'dev', classes: 'all' });
  assert.equal(dev.utterances.length, 1109);
  assert.equal(dev.dialogueTurns!.size, 114);

  const train4 = await readMeld(REAL, { split: 'train' });
  assert.equal(train4.utterances.length, 8245);
  assert.deepEqual(labelCounts(train4.utterances.map((u) => u.label)), {
    neu: 4710,
    hap: 1743,
    ang: 1109,
    sad: 683,
  });
  const both = await readMeld(REAL, { split: ['train', 'dev'], classes: '4' });
  assert.equal(both.utterances.length, 8245 + 897);
  assert.deepEqual([...new Set(both.utterances.map((u) => u.session))], ['train', 'dev']);

  const first = train.utterances[0];
  assert.deepEqual(
    {
      id: first.id,
      audio: first.audioPath,
      speaker: first.speaker,
      dialogue: first.dialogue,
      turn: first.turn,
      session: first.session,
    },
    {
      id: 'train_dia0_utt0',
      audio: null,
      speaker: 'Chandler',
      dialogue: 'train_dia0',
      turn: 0,
      session: 'train',
    },
  );
  assert.equal(
    first.text,
    'also I was the point person on my company’s transition from the KL-5 to GR-6 system.',
  );
  // No C1 control characters or mojibake survive.
  assert.ok(!train.utterances.some((u) => /[\u0080-\u009f]|â€|Ã/.test(u.text)));
  // Turns are dense positions even where Utterance_IDs skip (dialogue 1 has no utt6, utt7).
  const d1 = train.dialogueTurns!.get('train_dia1')!;
  assert.equal(d1.at(-1)!.id, 'train_dia1_utt8');
  const last = train.utterances.find((u) => u.id === 'train_dia1_utt8')!;
  assert.equal(last.turn, d1.length - 1);
  // Context in the 4-class view still sees the turns of the other emotions.
  const u4 = train4.utterances.find((u) => u.dialogue === 'train_dia1' && u.turn === 6)!;
  const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
  assert.equal(historyFor(train4, u4, { countTokens: words, maxTokens: 1000 }).length, 6);
});

test('fake MELD: rows out of order, quoted fields, cp1252 bytes, bad rows', async () => {
  const rows = [
    HEADER,
    '3,"Oh, no\u2026",Ross,sadness,negative,7,2,1,1,"00:00:03,000","00:00:04,000"',
    '1,Hey\u0092s here.,Monica,joy,positive,7,0,1,1,"00:00:01,000","00:00:02,000"',
    '2,"He said ""what?""",Chandler,surprise,positive,7,1,1,1,"00:00:02,000","00:00:03,000"',
    '4,Caf\u00c3\u00a9.,Rachel,neutral,neutral,2,0,1,1,"00:00:00,000","00:00:01,000"',
  ];
  writeFileSync(join(tmp, 'train_sent_emo.csv'), rows.join('\r\n') + '\r\n');
  const c = await readMeld(tmp, { split: 'train' });
  assert.deepEqual(
    c.utterances.map((u) => [u.id, u.label, u.turn, u.text]),
    [
      ['train_dia2_utt0', 'neu', 0, 'Café.'],
      ['train_dia7_utt0', 'hap', 0, 'Hey’s here.'],
      ['train_dia7_utt2', 'sad', 2, 'Oh, no…'],
    ],
  );
  assert.deepEqual(
    c.dialogueTurns!.get('train_dia7')!.map((t) => t.text),
    ['Hey’s here.', 'He said "what?"', 'Oh, no…'],
  );

  // A Windows-1252 file (not valid UTF-8) is decoded as such, with a warning.
  const cp = Buffer.concat([
    Buffer.from(`${HEADER}\n1,I`),
    Buffer.from([0x92]),
    Buffer.from('m fine.,Joey,neutral,neutral,0,0,1,1,a,b\n'),
  ]);
  writeFileSync(join(tmp, 'dev_sent_emo.csv'), cp);
  const d = await readMeld(tmp, { split: 'dev' });
  assert.equal(d.utterances[0].text, 'I’m fine.');
  assert.match(d.warnings[0], /not valid UTF-8, read as Windows-1252/);

  writeFileSync(
    join(tmp, 'test_sent_emo.csv'),
    `${HEADER}\n1,x,A,anger,n,0,0,1,1,a,b\n2,y,B,rage,n,0,1,1,1,a,b\n`,
  );
  await assert.rejects(readMeld(tmp, { split: 'test' }), /test_sent_emo\.csv:3: unknown emotion "rage"/);
  writeFileSync(
    join(tmp, 'test_sent_emo.csv'),
    `${HEADER}\n1,x,A,anger,n,0,0,1,1,a,b\n2,y,B,joy,n,0,0,1,1,a,b\n`,
  );
  await assert.rejects(
    readMeld(tmp, { split: 'test' }),
    /test_sent_emo\.csv:3: dialogue 0 utterance 0 repeats line 2/,
  );
  writeFileSync(join(tmp, 'test_sent_emo.csv'), 'Utterance,Speaker\nx,A\n');
  await assert.rejects(readMeld(tmp, { split: 'test' }), /column "emotion" missing/);
  await assert.rejects(
    readMeld(join(tmp, 'nope'), { split: 'train' }),
    /MELD file not readable: .*train_sent_emo\.csv/,
  );
});
